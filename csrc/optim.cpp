// Fused optimizer updates (see optim.h). Scalars are rounded to T first, as NumPy does with Python floats.
#include "optim.h"

#include <cmath>

#include "dispatch.h"
#include "optim_block.h"

namespace pyfastnn {

template <class T>
void sgd_update(std::int64_t n, T* p, const T* g, T* v, double lr, double momentum, bool nesterov,
                double weight_decay) {
    const T eta = T(lr), wd = T(weight_decay);
    if (momentum == 0.0) {
        for (std::int64_t i = 0; i < n; ++i) {
            const T gi = weight_decay != 0.0 ? g[i] + wd * p[i] : g[i];
            p[i] -= eta * gi;
        }
        return;
    }
    const momentum_constants<T> k = momentum_constants_of<T>(lr, momentum, nesterov, weight_decay);
    for (std::int64_t i = 0; i < n; ++i) momentum_element(g[i], p[i], v[i], k);
}

template <class T>
momentum_constants<T> momentum_constants_of(double lr, double momentum, bool nesterov, double weight_decay) {
    return {T(lr), T(momentum), T(weight_decay), weight_decay != 0.0, nesterov};
}

template <class T>
adam_constants<T> adam_constants_of(std::int64_t step, double lr, double beta1, double beta2, double eps,
                                    double weight_decay) {
    const double c1 = 1 - std::pow(beta1, double(step)), c2 = 1 - std::pow(beta2, double(step));
    return {T(beta1), T(beta2), T(1 - beta1), T(1 - beta2), T(eps), T(weight_decay), weight_decay != 0.0,
            T(lr / c1), T(1 / c2)};
}

template <class T>
void adam_apply(std::int64_t n, T* p, const T* g, T* m, T* v, const adam_constants<T>& k) {
    for (std::int64_t i = 0; i < n; ++i) adam_element(g[i], p[i], m[i], v[i], k);
}

template <class T>
void adam_update(std::int64_t n, T* p, const T* g, T* m, T* v, std::int64_t step, double lr, double beta1,
                 double beta2, double eps, double weight_decay) {
    adam_apply(n, p, g, m, v, adam_constants_of<T>(step, lr, beta1, beta2, eps, weight_decay));
}

#define PYFASTNN_INSTANTIATE(T)                                                                                 \
    template void sgd_update<T>(std::int64_t, T*, const T*, T*, double, double, bool, double);                \
    template void adam_update<T>(std::int64_t, T*, const T*, T*, T*, std::int64_t, double, double, double,     \
                                 double, double);                                                              \
    template adam_constants<T> adam_constants_of<T>(std::int64_t, double, double, double, double, double);     \
    template momentum_constants<T> momentum_constants_of<T>(double, double, bool, double);                     \
    template void adam_apply<T>(std::int64_t, T*, const T*, T*, T*, const adam_constants<T>&);

PYFASTNN_INSTANTIATE(float)
PYFASTNN_INSTANTIATE(double)
#undef PYFASTNN_INSTANTIATE

PYFASTNN_DEFINE_BLOCK_STEPS(float, ref_f32)
PYFASTNN_DEFINE_BLOCK_STEPS(double, ref_f64)
const block_steps<float>* reference_block_steps_f32() { return &ref_f32_table; }
const block_steps<double>* reference_block_steps_f64() { return &ref_f64_table; }

namespace {
// Any x86 level above the baseline runs the AVX build (see optim_avx.cpp); neon runs the baseline one, which
// on aarch64 already has the full 128-bit vectors.
template <class T>
const block_steps<T>& pick_block_steps(const block_steps<T>* ref, const block_steps<T>* avx) {
    const isa_level level = current_isa();
    if ((level == isa_level::avx2 || level == isa_level::avx512) && avx != nullptr) return *avx;
    return *ref;
}
}  // namespace

template <>
const block_steps<float>& active_block_steps<float>() {
    return pick_block_steps<float>(reference_block_steps_f32(), avx_block_steps_f32());
}
template <>
const block_steps<double>& active_block_steps<double>() {
    return pick_block_steps<double>(reference_block_steps_f64(), avx_block_steps_f64());
}

}  // namespace pyfastnn
