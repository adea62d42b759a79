// AVX2 + FMA float64 micro-kernel, 6 x 8 tile (the classic Haswell shape).
//
// C rows are contiguous, so the vector dimension is N: a tile row is 2 ymm (8 doubles). 6 x 2 = 12 ymm
// accumulators + 2 for the B row + 1 broadcast = 15 of the 16 ymm registers. Two FMA pipes x 4-cycle latency
// need at least 8 independent accumulators; 12 gives slack. Per k step: 2 loads of B, 6 broadcasts, 12 FMAs.
//
// ISA code is confined to this translation unit: standard headers come first, then the target pragma, and
// everything compiled under it has internal linkage. Only avx2_f64_kernel() (baseline) is exported.
#include <cstdint>

#include "gemm/direct.h"
#include "gemm/kernel.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace pyfastnn {
namespace {

constexpr int mr = 6;
constexpr int nv = 2;         // ymm per tile row
constexpr int lanes = 4;      // doubles per ymm
constexpr int nr = nv * lanes;

void ukernel(std::int64_t k, const double* __restrict a, std::int64_t a_step, const double* __restrict b,
             std::int64_t b_step, double* c, std::int64_t rs_c, double alpha, double beta) {
    __m256d acc[mr][nv];
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) acc[r][v] = _mm256_setzero_pd();

    // C is touched only after the k loop; start pulling its lines in now so the store does not wait on memory.
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c + nr - 1), _MM_HINT_T0);
    }

    for (std::int64_t p = 0; p < k; ++p) {
        __m256d bv[nv];
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) bv[v] = _mm256_loadu_pd(b + v * lanes);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r) {
            const __m256d ar = _mm256_set1_pd(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) acc[r][v] = _mm256_fmadd_pd(ar, bv[v], acc[r][v]);
        }
        a += a_step;
        b += b_step;
    }

    const __m256d va = _mm256_set1_pd(alpha);
    if (beta == 0.0) {
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) _mm256_storeu_pd(c + r * rs_c + v * lanes, _mm256_mul_pd(va, acc[r][v]));
    } else {
        const __m256d vb = _mm256_set1_pd(beta);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) {
                double* cp = c + r * rs_c + v * lanes;
                _mm256_storeu_pd(cp, _mm256_fmadd_pd(va, acc[r][v], _mm256_mul_pd(vb, _mm256_loadu_pd(cp))));
            }
    }
}

__attribute__((flatten)) void direct(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
                                     std::int64_t rs_a, std::int64_t cs_a, const double* b, std::int64_t rs_b,
                                     std::int64_t cs_b, double beta, double* c, std::int64_t rs_c, double* work) {
    direct_gemm<double, true>(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, work);
}

}  // namespace
}  // namespace pyfastnn

#pragma GCC pop_options

namespace pyfastnn {
namespace {
// Block sizes: B micro-panel kc x nr = 256 x 8 x 8 B = 16 KiB in L1, A block mc x kc = 96 x 256 x 8 B = 192 KiB
// in L2 (sized for the 256 KiB L2 of older AVX2 cores too), B block kc x nc = 8 MiB in L3.
const gemm_kernel<double> kernel = {"avx2_f64_6x8", mr, nr, /*mc*/ 96, /*kc*/ 256, /*nc*/ 4096, ukernel, direct};
}  // namespace
const gemm_kernel<double>* avx2_f64_kernel() { return &kernel; }
}  // namespace pyfastnn

#else

namespace pyfastnn {
const gemm_kernel<double>* avx2_f64_kernel() { return nullptr; }
}  // namespace pyfastnn

#endif
