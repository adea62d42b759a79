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

// One Adam step's constants (bias corrections included), worked out once for a step that updates many arrays
// or rows: the per-row update of a sparse layer would otherwise pay two pow() per row. adam_apply divides by c1
// and c2 as the reference backend does; the lazy row kernels (rowops' gather_adam) multiply by eta_c1 = η/c1 and
// inv_c2 = 1/c2 instead, one division per weight instead of three (a few ulp apart).
template <class T>
struct adam_constants {
    T b1, b2, one_b1, one_b2, c1, c2, eta, eps, wd;
    bool decay;
    T eta_c1, inv_c2;
};

template <class T>
adam_constants<T> adam_constants_of(std::int64_t step, double lr, double beta1, double beta2, double eps,
                                    double weight_decay);

template <class T>
void adam_apply(std::int64_t n, T* p, const T* g, T* m, T* v, const adam_constants<T>& k);

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
