// Fused parameter updates over contiguous arrays (one pass each). Portable header.
//
// Weight decay adds weight_decay·p to the gradient (L2); the caller passes 0 for biases. Formulas as in
// pyfastnn/_ref.py: SGD with momentum v ← μv + g, step v (Nesterov: g + μv); Adam with bias correction.
#pragma once

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
// or rows: the per-row update of a sparse layer would otherwise pay two pow() per row.
template <class T>
struct adam_constants {
    T b1, b2, one_b1, one_b2, c1, c2, eta, eps, wd;
    bool decay;
};

template <class T>
adam_constants<T> adam_constants_of(std::int64_t step, double lr, double beta1, double beta2, double eps,
                                    double weight_decay);

template <class T>
void adam_apply(std::int64_t n, T* p, const T* g, T* m, T* v, const adam_constants<T>& k);

}  // namespace pyfastnn
