// GEMM entry points: C = alpha * op(A) * op(B) + beta * C, row-major C. Portable header.
//
// Structure (BLIS / GotoBLAS): jc loop over N in blocks of nc (B block kc x nc, packed, in L3), pc loop over K in
// blocks of kc, ic loop over M in blocks of mc (A block mc x kc, packed, in L2), macro-kernel over the MR x NR
// tiles of the block, register-blocked micro-kernel per tile (from the dispatch table). Small problems skip the
// packing; large ones split the tiles of each block over the thread pool.
#pragma once

#include <cstdint>

#include "gemm/blocking.h"
#include "gemm/kernel.h"

namespace pyfastnn {

// Work on C's final values done block by block while each block is still in cache: fn(ctx, i0, j0, rows, cols, v,
// ld) receives C(i0 + r, j0 + j) = v[r * ld + j] for r < rows, j < cols (v points into C). Every element of C is
// handed over exactly once, after it is stored; blocks are disjoint and may be handed over concurrently from the
// GEMM's threads.
template <class T>
struct gemm_epilogue {
    void (*fn)(void* ctx, std::int64_t i0, std::int64_t j0, std::int64_t rows, std::int64_t cols, const T* v,
               std::int64_t ld);
    void* ctx;
};

// General strides: op(A)(i, p) = a[i * rs_a + p * cs_a] (m x k), op(B)(p, j) = b[p * rs_b + j * cs_b] (k x n),
// C(i, j) = c[i * rs_c + j] (m x n, unit column stride). C must not overlap A or B. beta == 0 never reads C.
// ep: null, or an epilogue (above) that receives C's values.
template <class T>
void gemm_strided(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t rs_a,
                  std::int64_t cs_a, const T* b, std::int64_t rs_b, std::int64_t cs_b, T beta, T* c,
                  std::int64_t rs_c, const gemm_epilogue<T>* ep = nullptr);

// BLAS-like row-major form: A is stored m x k (k x m when trans_a) with leading dimension lda, B is stored k x n
// (n x k when trans_b) with leading dimension ldb, C is m x n with leading dimension ldc.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
          const gemm_epilogue<T>* ep = nullptr) {
    gemm_strided<T>(m, n, k, alpha, a, trans_a ? 1 : lda, trans_a ? lda : 1, b, trans_b ? 1 : ldb,
                    trans_b ? ldb : 1, beta, c, ldc, ep);
}

// Tunables of the driver (process-wide). Zero block sizes mean "the kernel's own (see gemm_kernel)".
struct gemm_params {
    // Problems with m * n * k below this, or with m <= direct_max_m (2 * direct_max_m when op(B) has strided
    // rows, i.e. B is given transposed), run the unpacked direct loop.
    std::int64_t direct_max_work = 0;
    std::int64_t direct_max_m = 0;
    // Problems with m * n * k below this run on one thread.
    std::int64_t parallel_min_work = 0;
    // Nonzero: problems of few rows may use the kernel's shorter tile (gemm_kernel::small_m); 0: never.
    std::int64_t small_m_tiles = 1;
    // Problems with k up to this read op(A) (when given transposed) and op(B) (when not) in place, unpacked.
    std::int64_t inplace_max_k = 64;
    int mc = 0, kc = 0, nc = 0;
};
gemm_params get_gemm_params();
void set_gemm_params(const gemm_params& p);  // throws std::invalid_argument on negative values

// The cache blocks a kernel runs with when gemm_params leaves them 0 (see gemm/blocking.h), resolved once for
// every kernel of every supported level on first use.
template <class T>
resolved_blocks kernel_blocks(const gemm_kernel<T>& kern);

extern template void gemm_strided<float>(std::int64_t, std::int64_t, std::int64_t, float, const float*,
                                         std::int64_t, std::int64_t, const float*, std::int64_t, std::int64_t,
                                         float, float*, std::int64_t, const gemm_epilogue<float>*);
extern template void gemm_strided<double>(std::int64_t, std::int64_t, std::int64_t, double, const double*,
                                          std::int64_t, std::int64_t, const double*, std::int64_t, std::int64_t,
                                          double, double*, std::int64_t, const gemm_epilogue<double>*);
extern template resolved_blocks kernel_blocks<float>(const gemm_kernel<float>&);
extern template resolved_blocks kernel_blocks<double>(const gemm_kernel<double>&);

}  // namespace pyfastnn
