// Fused optimizer updates (see optim.h). Scalars are rounded to T first, as NumPy does with Python floats.
#include "optim.h"

#include <cmath>

namespace pyfastnn {

template <class T>
void sgd_update(std::int64_t n, T* p, const T* g, T* v, double lr, double momentum, bool nesterov,
                double weight_decay) {
    const T eta = T(lr), mu = T(momentum), wd = T(weight_decay);
    if (momentum == 0.0) {
        for (std::int64_t i = 0; i < n; ++i) {
            const T gi = weight_decay != 0.0 ? g[i] + wd * p[i] : g[i];
            p[i] -= eta * gi;
        }
        return;
    }
    for (std::int64_t i = 0; i < n; ++i) {
        const T gi = weight_decay != 0.0 ? g[i] + wd * p[i] : g[i];
        v[i] = v[i] * mu + gi;
        const T step = nesterov ? gi + mu * v[i] : v[i];
        p[i] -= eta * step;
    }
}

template <class T>
void adam_update(std::int64_t n, T* p, const T* g, T* m, T* v, std::int64_t step, double lr, double beta1,
                 double beta2, double eps, double weight_decay) {
    const T b1 = T(beta1), b2 = T(beta2), one_b1 = T(1 - beta1), one_b2 = T(1 - beta2), wd = T(weight_decay);
    const T c1 = T(1 - std::pow(beta1, double(step))), c2 = T(1 - std::pow(beta2, double(step)));
    const T eta = T(lr), e = T(eps);
    for (std::int64_t i = 0; i < n; ++i) {
        const T gi = weight_decay != 0.0 ? g[i] + wd * p[i] : g[i];
        m[i] = m[i] * b1 + one_b1 * gi;
        v[i] = v[i] * b2 + one_b2 * (gi * gi);
        const T m_hat = m[i] / c1;
        const T v_hat = v[i] / c2;
        p[i] -= eta * m_hat / (std::sqrt(v_hat) + e);
    }
}

template void sgd_update<float>(std::int64_t, float*, const float*, float*, double, double, bool, double);
template void sgd_update<double>(std::int64_t, double*, const double*, double*, double, double, bool, double);
template void adam_update<float>(std::int64_t, float*, const float*, float*, float*, std::int64_t, double,
                                 double, double, double, double);
template void adam_update<double>(std::int64_t, double*, const double*, double*, double*, std::int64_t, double,
                                  double, double, double, double);

}  // namespace pyfastnn
