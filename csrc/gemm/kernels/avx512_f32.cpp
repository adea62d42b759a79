// AVX-512F float32 micro-kernels, 14 x 32 tile (and 8 x 32 for few rows).
//
// Tile choice (Zen 4 / Skylake-X): C rows are contiguous, so the vector dimension is N: a C row of the tile is
// 2 zmm (32 floats) and the tile keeps 14 x 2 = 28 zmm accumulators, plus 2 zmm for the B row, plus 1-2 for the
// broadcast of A: 31 of the 32 zmm registers. Per k step: 2 vector loads of B, 14 broadcasts of A (folded into
// the FMAs as {1to16} memory operands), 28 FMAs. 28 independent accumulators cover the FMA latency (4 cycles) x
// throughput (1 zmm FMA per cycle on Zen 4, 2 on Skylake-X server) with room to spare, and loads stay at about
// one per FMA, well under the 2-3 loads per cycle of these cores.
//
// ISA code is confined to this translation unit: standard headers come first, then the target pragma, and
// everything compiled under it has internal linkage. Only avx512_f32_kernel() (baseline) is exported.
#include <cstdint>

#include "gemm/direct.h"
#include "gemm/kernel.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")

namespace pyfastnn {
namespace {

constexpr int nv = 2;         // zmm per tile row
constexpr int lanes = 16;     // floats per zmm
constexpr int nr = nv * lanes;

template <int mr>
void ukernel(std::int64_t k, const float* __restrict a, std::int64_t a_step, const float* __restrict b,
             std::int64_t b_step, float* c, std::int64_t rs_c, float alpha, float beta) {
    __m512 acc[mr][nv];
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) acc[r][v] = _mm512_setzero_ps();

    // C is touched only after the k loop; start pulling its lines in now so the store does not wait on memory.
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c + nr - 1), _MM_HINT_T0);
    }

    for (std::int64_t p = 0; p < k; ++p) {
        __m512 bv[nv];
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) bv[v] = _mm512_loadu_ps(b + v * lanes);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r) {
            const __m512 ar = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
        }
        a += a_step;
        b += b_step;
    }

    const __m512 va = _mm512_set1_ps(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) _mm512_storeu_ps(c + r * rs_c + v * lanes, _mm512_mul_ps(va, acc[r][v]));
    } else {
        const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) {
                float* cp = c + r * rs_c + v * lanes;
                _mm512_storeu_ps(cp, _mm512_fmadd_ps(va, acc[r][v], _mm512_mul_ps(vb, _mm512_loadu_ps(cp))));
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
// Block sizes for Zen 4 (32 KiB L1d, 1 MiB L2 per core): the B micro-panel kc x nr = 256 x 32 x 4 B = 32 KiB
// streams through L1 next to the 14 KiB A micro-panel (L2 feeds both easily at ~7 B/cycle); the A block
// mc x kc = 336 x 256 x 4 B = 336 KiB sits in L2 with room for C and the B panel; the B block kc x nc = 4 MiB in L3.
// The 8 x 32 tile (16 accumulators, 2 B loads + 8 broadcasts per 16 FMAs) serves up to 128 rows when it pads
// less than 14-row tiles (32 rows: 4 tiles of 8 against 3 of 14, a quarter of whose FMAs were padding; one
// thread, 32x128x64 with B transposed: 6.1 µs against 8.1, 32x128x10: 1.64 against 2.05).
const gemm_kernel<float> kernel_8 = {"avx512_f32_8x32", 8, nr, 336, 256, 4096, ukernel<8>, direct};
const gemm_kernel<float> kernel = {"avx512_f32_14x32", 14, nr, /*mc*/ 336, /*kc*/ 256, /*nc*/ 4096, ukernel<14>,
                                   direct, &kernel_8, /*small_m_max*/ 128};
}  // namespace
const gemm_kernel<float>* avx512_f32_kernel() { return &kernel; }
}  // namespace pyfastnn

#else

namespace pyfastnn {
const gemm_kernel<float>* avx512_f32_kernel() { return nullptr; }
}  // namespace pyfastnn

#endif
