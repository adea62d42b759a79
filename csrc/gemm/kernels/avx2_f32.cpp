// AVX2 + FMA float32 micro-kernel, 6 x 16 tile (the classic Haswell shape).
//
// C rows are contiguous, so the vector dimension is N: a tile row is 2 ymm (16 floats). 6 x 2 = 12 ymm
// accumulators + 2 for the B row + 1 broadcast = 15 of the 16 ymm registers. Two FMA pipes x 4-cycle latency
// need at least 8 independent accumulators; 12 gives slack. Per k step: 2 loads of B, 6 broadcasts, 12 FMAs.
//
// ISA code is confined to this translation unit: standard headers come first, then the target pragma, and
// everything compiled under it has internal linkage. Only avx2_f32_kernel() (baseline) is exported.
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
constexpr int lanes = 8;      // floats per ymm
constexpr int nr = nv * lanes;

void ukernel(std::int64_t k, const float* __restrict a, std::int64_t a_step, const float* __restrict b,
             std::int64_t b_step, float* c, std::int64_t rs_c, float alpha, float beta) {
    __m256 acc[mr][nv];
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) acc[r][v] = _mm256_setzero_ps();

    // C is touched only after the k loop; start pulling its lines in now so the store does not wait on memory.
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c + nr - 1), _MM_HINT_T0);
    }

    for (std::int64_t p = 0; p < k; ++p) {
        __m256 bv[nv];
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) bv[v] = _mm256_loadu_ps(b + v * lanes);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r) {
            const __m256 ar = _mm256_set1_ps(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
        }
        a += a_step;
        b += b_step;
    }

    const __m256 va = _mm256_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) _mm256_storeu_ps(c + r * rs_c + v * lanes, _mm256_mul_ps(va, acc[r][v]));
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) {
                float* cp = c + r * rs_c + v * lanes;
                _mm256_storeu_ps(cp, _mm256_fmadd_ps(va, acc[r][v], _mm256_mul_ps(vb, _mm256_loadu_ps(cp))));
            }
    }
}

__attribute__((flatten)) void direct(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                                     std::int64_t rs_a, std::int64_t cs_a, const float* b, std::int64_t rs_b,
                                     std::int64_t cs_b, float beta, float* c, std::int64_t rs_c, float* work) {
    direct_gemm<float, true>(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, work);
}

}  // namespace
}  // namespace pyfastnn

#pragma GCC pop_options

namespace pyfastnn {
namespace {
// Block sizes: B micro-panel kc x nr = 256 x 16 x 4 B = 16 KiB in L1, A block mc x kc = 192 x 256 x 4 B = 192 KiB
// in L2 (sized for the 256 KiB L2 of older AVX2 cores too), B block kc x nc = 4 MiB in L3.
const gemm_kernel<float> kernel = {"avx2_f32_6x16", mr, nr, /*mc*/ 192, /*kc*/ 256, /*nc*/ 4096, ukernel, direct};
}  // namespace
const gemm_kernel<float>* avx2_f32_kernel() { return &kernel; }
}  // namespace pyfastnn

#else

namespace pyfastnn {
const gemm_kernel<float>* avx2_f32_kernel() { return nullptr; }
}  // namespace pyfastnn

#endif
