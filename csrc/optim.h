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

}  // namespace pyfastnn
