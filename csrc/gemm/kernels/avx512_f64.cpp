// AVX-512F float64 micro-kernels, 14 x 16 tile (and 8 x 16 for few rows).
//
// Tile choice (Zen 4 / Skylake-X): C rows are contiguous, so the vector dimension is N: a C row of the tile is
// 2 zmm (16 doubles) and the tile keeps 14 x 2 = 28 zmm accumulators, plus 2 zmm for the B row, plus 1-2 for the
// broadcast of A: 31 of the 32 zmm registers. Per k step: 2 vector loads of B, 14 broadcasts of A (folded into
// the FMAs as {1to8} memory operands), 28 FMAs. 28 independent accumulators cover the FMA latency (4 cycles) x
// throughput (1 zmm FMA per cycle on Zen 4, 2 on Skylake-X server) with room to spare, and loads stay at about
// one per FMA, well under the 2-3 loads per cycle of these cores.
//
// ISA code is confined to this translation unit: standard headers come first, then the target pragma, and
// everything compiled under it has internal linkage. Only avx512_f64_kernel() (baseline) is exported.
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
constexpr int lanes = 8;      // doubles per zmm
constexpr int nr = nv * lanes;

template <int mr>
void ukernel(std::int64_t k, const double* __restrict a, std::int64_t a_step, const double* __restrict b,
             std::int64_t b_step, double* c, std::int64_t rs_c, double alpha, double beta) {
    __m512d acc[mr][nv];
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) acc[r][v] = _mm512_setzero_pd();

    // C is touched only after the k loop; start pulling its lines in now so the store does not wait on memory.
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c + nr - 1), _MM_HINT_T0);
    }

    for (std::int64_t p = 0; p < k; ++p) {
        __m512d bv[nv];
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) bv[v] = _mm512_loadu_pd(b + v * lanes);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r) {
            const __m512d ar = _mm512_set1_pd(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) acc[r][v] = _mm512_fmadd_pd(ar, bv[v], acc[r][v]);
        }
        a += a_step;
        b += b_step;
    }

    const __m512d va = _mm512_set1_pd(alpha);
    if (beta == 0.0) {
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) _mm512_storeu_pd(c + r * rs_c + v * lanes, _mm512_mul_pd(va, acc[r][v]));
    } else {
        const __m512d vb = _mm512_set1_pd(beta);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) {
                double* cp = c + r * rs_c + v * lanes;
                _mm512_storeu_pd(cp, _mm512_fmadd_pd(va, acc[r][v], _mm512_mul_pd(vb, _mm512_loadu_pd(cp))));
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
// Block sizes for Zen 4 (32 KiB L1d, 1 MiB L2 per core): kc = 512 rather than float32's 256 because float64
// moves twice the C bytes per flop, and a longer k loop halves the C tile loads/stores (measured +5-10% at
// 1024-2048 with 2 threads); the A block mc x kc = 112 x 512 x 8 B = 448 KiB stays in L2, the B micro-panel
// (64 KiB) and A micro-panel (56 KiB) stream from L2, which delivers far more than the ~6 B/cycle they need.
// The 8 x 16 tile serves up to 128 rows when it pads less than 14-row tiles, as for float32.
const gemm_kernel<double> kernel_8 = {"avx512_f64_8x16", 8, nr, 112, 512, 4096, ukernel<8>, direct};
const gemm_kernel<double> kernel = {"avx512_f64_14x16", 14, nr, /*mc*/ 112, /*kc*/ 512, /*nc*/ 4096, ukernel<14>,
                                    direct, &kernel_8, /*small_m_max*/ 128};
}  // namespace
const gemm_kernel<double>* avx512_f64_kernel() { return &kernel; }
}  // namespace pyfastnn

#else

namespace pyfastnn {
const gemm_kernel<double>* avx512_f64_kernel() { return nullptr; }
}  // namespace pyfastnn

#endif
