// The first layer on a sparse input (rows of a CSR): the gather-and-sum forward pass and the updates of only the
// rows of the table E = W¹ᵀ that a batch uses. Everything after Z¹ is the dense engine (mlp.cpp). Portable
// header.
//
// A batch's entries are grouped by column first (a column → slot map, then the entries sorted by slot), so each
// touched row of E gets one summed gradient g_j = (1/B) Σ_i x_ij Δ_i and one write, and threads split the
// touched rows, never one row between two threads. No allocation once the per-thread scratch has grown.
#pragma once

#include <cstdint>

#include "mlp.h"

namespace pyfastnn {

// The CSR rows that make a batch: its row r is order[r] when order is set, else first + r.
struct batch_rows {
    const std::int64_t* order;
    std::int64_t first, count;
    std::int64_t operator[](std::int64_t r) const { return order != nullptr ? order[r] : first + r; }
};

// z (count x n_out, contiguous) = scale · X Wᵀ over the batch's rows of x; no bias.
template <class T>
void sparse_forward(const layer_view<T>& L, const csr_view<T>& x, const batch_rows& rows, T scale, T* z);

// dw (n_out x n_in elements in L's layout) = Δᵀ X / B: the whole gradient, zero outside the batch's columns.
// delta: count x n_out, contiguous.
template <class T>
void sparse_weight_gradient(const layer_view<T>& L, const csr_view<T>& x, const batch_rows& rows, const T* delta,
                            T* dw);

// One optimizer step of the first layer's weights (not its bias) from a sparse batch whose delta is done. For
// Adam, opt.step already counts this step. state1/state2: the layer's state arrays in its layout (the velocity,
// or Adam's first and second moments), null when the optimizer has none.
//
// Plain SGD keeps W = s·E with the scale *scale (the caller starts it at 1 and folds it back with fold_scale):
// weight decay then costs one multiplication of s per step instead of a pass over W, and the rows the batch
// uses move by −(η/s)·g_j; the result is the dense update W ← (1 − ηλ)W − ηg exactly (to rounding). Momentum
// and Adam: opt.lazy updates only the touched rows and their state (weight decay included for those rows);
// otherwise dw is zeroed, the touched rows' gradients are scattered into it, and the dense update runs over W.
template <class T>
void sparse_weight_update(const layer_view<T>& L, const csr_view<T>& x, const batch_rows& rows, const T* delta,
                          T* dw, const optimizer_spec<T>& opt, T* state1, T* state2, double* scale);

// E ← s·E and s ← 1: the stored table holds W itself again.
template <class T>
void fold_scale(const layer_view<T>& L, double* scale);

}  // namespace pyfastnn
