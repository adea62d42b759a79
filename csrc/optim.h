// Fused parameter updates over contiguous arrays (one pass each). Portable header.
//
// Weight decay adds weight_decay·p to the gradient (L2); the caller passes 0 for biases. Formulas as in
// pyfastnn/_ref.py: SGD with momentum v ← μv + g, step v (Nesterov: g + μv); Adam with bias correction.
#pragma once

#include <cmath>
#include <cstdint>

namespace pyfastnn {

template <class T>
void sgd_update(std::int64_t n, T* p, const T* g, T* v, double lr, double momentum, bool nesterov,
                double weight_decay);

// step counts updates from 1.
template <class T>
void adam_update(std::int64_t n, T* p, const T* g, T* m, T* v, std::int64_t step, double lr, double beta1,
                 double beta2, double eps, double weight_decay);

// One Adam step's constants, worked out once for a step that updates many arrays or rows (the per-row update of a
// sparse layer would otherwise pay two pow() per row). The bias corrections c1 = 1 - β1^t and c2 = 1 - β2^t are
// folded into eta_c1 = η/c1 and inv_c2 = 1/c2, so a weight costs one division and one square root, not the three
// divisions of the textbook form η·(m/c1)/(√(v/c2) + ε) that pyfastnn/_ref.py writes: a few ulp from it, and
// about 1.7x cheaper where those operations bound the pass (a 256-bit division issues every ~3.5 cycles on
// Zen 3, a square root every ~5).
template <class T>
struct adam_constants {
    T b1, b2, one_b1, one_b2, eps, wd;
    bool decay;
    T eta_c1, inv_c2;
};

template <class T>
adam_constants<T> adam_constants_of(std::int64_t step, double lr, double beta1, double beta2, double eps,
                                    double weight_decay);

template <class T>
void adam_apply(std::int64_t n, T* p, const T* g, T* m, T* v, const adam_constants<T>& k);

// Adam on one weight p with its gradient g. The one definition of the update: adam_apply, the step the
// weight-gradient GEMM runs on each block it produces (optim_block.h) and the lazy row kernels of a sparse layer
// (rowops) all call it, so every path rounds alike.
template <class T>
inline void adam_element(T g, T& p, T& m, T& v, const adam_constants<T>& k) {
    const T gi = k.decay ? g + k.wd * p : g;
    m = m * k.b1 + k.one_b1 * gi;
    v = v * k.b2 + k.one_b2 * (gi * gi);
    p -= k.eta_c1 * m / (std::sqrt(v * k.inv_c2) + k.eps);
}

// The scalars of one step of SGD with momentum, rounded to T.
template <class T>
struct momentum_constants {
    T eta, mu, wd;
    bool decay, nesterov;
};

template <class T>
momentum_constants<T> momentum_constants_of(double lr, double momentum, bool nesterov, double weight_decay);

// SGD with momentum on one weight p with its gradient g: the formula of sgd_update, shared with the per-ISA row
// kernels of a sparse layer (rowops) so both round alike. Inline so that the loops over it vectorise.
template <class T>
inline void momentum_element(T g, T& p, T& vel, const momentum_constants<T>& k) {
    const T gi = k.decay ? g + k.wd * p : g;
    vel = vel * k.mu + gi;
    const T step = k.nesterov ? gi + k.mu * vel : vel;
    p -= k.eta * step;
}

}  // namespace pyfastnn

namespace pyfastnn {

// The dense optimizer steps on one rows x cols block of a weight matrix whose gradient block has just been
// computed (the weight-gradient GEMM hands each block over while it is in cache; mlp.cpp): g has row stride ld_g,
// p and its state row stride ld. The formulas of sgd_update (momentum_element) and adam_apply
// (adam_element), compiled per ISA without contracting a·b + c into an FMA, so on x86 the result is
// bit-identical to those two-pass updates whichever ISA level runs.
template <class T>
struct block_steps {
    void (*momentum)(std::int64_t rows, std::int64_t cols, const T* g, std::int64_t ld_g, T* p, T* vel,
                     std::int64_t ld, const momentum_constants<T>& k);
    void (*adam)(std::int64_t rows, std::int64_t cols, const T* g, std::int64_t ld_g, T* p, T* m, T* v,
                 std::int64_t ld, const adam_constants<T>& k);
};

// The steps of the ISA level the dispatcher chose (dispatch.h).
template <class T>
const block_steps<T>& active_block_steps();
template <>
const block_steps<float>& active_block_steps<float>();
template <>
const block_steps<double>& active_block_steps<double>();

// Factories: the baseline build (always) and the AVX one (nullptr where not compiled).
const block_steps<float>* reference_block_steps_f32();
const block_steps<double>* reference_block_steps_f64();
const block_steps<float>* avx_block_steps_f32();
const block_steps<double>* avx_block_steps_f64();

}  // namespace pyfastnn
