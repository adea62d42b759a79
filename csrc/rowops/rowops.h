// Row operations of the per-sample (B = 1) and elementwise paths, compiled once per ISA like the GEMM kernels.
// Portable declarations only: the loops are in rowops_impl.h, instantiated in each rowops/<isa>.cpp under its
// own target pragma.
#pragma once

#include <cstdint>

#include "optim.h"

namespace pyfastnn {

template <class T>
struct rowops {
    // Plain SGD for one layer and a small batch (1 <= rows <= 8), in one pass over W (n_out x n_in):
    // delta_prev = delta W with the old W (skipped when delta_prev is null; rows x n_in, accumulated into, so
    // zero it first), then W ← decay·W − eta·Σ_r delta[r]ᵀ a[r] and b ← b − eta·Σ_r delta[r].
    // delta has row stride ld_delta; a and delta_prev have row stride n_in.
    void (*rank_k_step)(std::int64_t rows, std::int64_t n_out, std::int64_t n_in, T* w, T* b, const T* delta,
                        std::int64_t ld_delta, const T* a, T eta, T decay, T* delta_prev);
    // rows x cols block: z += bias (row-wise), out = relu(z) (out may equal z).
    void (*bias_relu)(std::int64_t rows, std::int64_t cols, T* z, const T* bias, T* out);
    // delta ⊙= (a > 0), the ReLU derivative from the output.
    void (*relu_backward)(std::int64_t n, const T* a, T* delta);
    // z[r, i] = b[i] + Σ_j W[i, j] x[r, j] for a few rows r of x (rows x n_in) and the n_out rows of W
    // (n_out x n_in); z has row stride ldz. The forward pass of a small batch: each row of W is loaded once
    // for all rows of x.
    void (*small_batch_forward)(std::int64_t rows, std::int64_t n_out, std::int64_t n_in, const T* w, const T* b,
                                const T* x, T* z, std::int64_t ldz);
    // rows x cols block: z += bias (row-wise, skipped when bias is null), out = softmax of each row of z (out
    // may equal z). float32 takes its exponentials from a polynomial (~1-2 ulp) rather than libm.
    void (*softmax)(std::int64_t rows, std::int64_t cols, T* z, const T* bias, T* out);
    // out[0..n) = alpha·Σ_q val[q]·base[idx[q]·ld + 0..n), or out += that when accumulate: a weighted sum of a
    // few rows of a row-major matrix (the rows of an embedding table a sparse input picks, or the rows of a
    // delta that one column of a sparse batch meets). out must not overlap the rows read. prefetch: rows that
    // may be far in memory (a large table) are prefetched a few entries ahead.
    void (*gather_axpy)(std::int64_t count, const std::int32_t* idx, const T* val, const T* base, std::int64_t ld,
                        std::int64_t n, T alpha, T* out, bool accumulate, bool prefetch);
    // The small-batch kernels for a first layer stored as a table E = Wᵀ (n_in x ld_e, row-major), on the
    // columns 0..width of e (the caller offsets e, and z, to its slice). Forward: z[r, c] = Σ_j x[r, j] E[j, c]
    // for rows (1..8) rows of x (rows x n_in), no bias; z has row stride ldz.
    void (*table_small_forward)(std::int64_t rows, std::int64_t n_in, std::int64_t width, const T* e,
                                std::int64_t ld_e, const T* x, T* z, std::int64_t ldz);
    // Plain SGD on rows j = 0..count of E (width n_out, row stride n_out): E[j, :] ← decay·E[j, :] −
    // eta·Σ_r a[r, j]·delta[r, :] for rows (1..8) rows; a has row stride ld_a (the caller offsets it to the
    // first j), delta is rows x n_out. The bias is the caller's.
    void (*table_rank_k)(std::int64_t rows, std::int64_t count, std::int64_t n_out, T* e, const T* a,
                         std::int64_t ld_a, const T* delta, T eta, T decay);
    // The lazy optimizer steps of a sparse layer, one touched row of E (n weights p) at a time: its gradient
    // g = alpha·Σ_q val[q]·delta[idx[q]·ld + 0..n) (gather_axpy's sum), then on p with g either Adam (moments
    // m, v; adam_element, as adam_apply) or SGD with momentum
    // (velocity vel; sgd_update's formula). p and its state are each read and written once; the rows of delta
    // are a batch's (cached), and the caller prefetches the rows of p and of its state.
    void (*gather_adam)(std::int64_t count, const std::int32_t* idx, const T* val, const T* delta,
                        std::int64_t ld, std::int64_t n, T alpha, T* p, T* m, T* v, const adam_constants<T>& k);
    void (*gather_momentum)(std::int64_t count, const std::int32_t* idx, const T* val, const T* delta,
                            std::int64_t ld, std::int64_t n, T alpha, T* p, T* vel,
                            const momentum_constants<T>& k);
    // small_batch_forward that also returns the largest |W[i, j]| it read (+inf if one is infinite, NaN if one
    // is NaN), in the same pass: train_step's overflow bound reads no more of W.
    T (*small_batch_forward_max)(std::int64_t rows, std::int64_t n_out, std::int64_t n_in, const T* w, const T* b,
                                 const T* x, T* z, std::int64_t ldz);
};

const rowops<float>& active_rowops_f32();
const rowops<double>& active_rowops_f64();
template <class T>
const rowops<T>& active_rowops();
template <>
inline const rowops<float>& active_rowops<float>() { return active_rowops_f32(); }
template <>
inline const rowops<double>& active_rowops<double>() { return active_rowops_f64(); }

// Factories, one per ISA translation unit; nullptr where that ISA is not compiled for this architecture.
const rowops<float>* reference_rowops_f32();
const rowops<double>* reference_rowops_f64();
const rowops<float>* avx2_rowops_f32();
const rowops<double>* avx2_rowops_f64();
const rowops<float>* avx512_rowops_f32();
const rowops<double>* avx512_rowops_f64();

}  // namespace pyfastnn
