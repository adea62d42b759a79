// AVX-512F micro-kernels: float32 14 x 32 (and 8 x 32 for few rows), float64 14 x 16 (and 8 x 16).
//
// Tile choice (Zen 4 / Skylake-X): C rows are contiguous, so the vector dimension is N: a C row of the tile is
// 2 zmm (32 floats or 16 doubles) and the tile keeps 14 x 2 = 28 zmm accumulators, plus 2 zmm for the B row, plus
// 1-2 for the broadcast of A: 31 of the 32 zmm registers. Per k step: 2 vector loads of B, 14 broadcasts of A
// (folded into the FMAs as {1to16} / {1to8} memory operands), 28 FMAs. 28 independent accumulators cover the FMA
// latency (4 cycles) x throughput (1 zmm FMA per cycle on Zen 4, 2 on Skylake-X server) with room to spare, and
// loads stay at about one per FMA, well under the 2-3 loads per cycle of these cores. One template serves both
// dtypes through the `zmm<T>` intrinsics below.
//
// ISA code is confined to this translation unit: standard headers come first, then the target pragma, and
// everything compiled under it has internal linkage. Only avx512_f32_kernel() and avx512_f64_kernel() (baseline)
// are exported.
#include <cstdint>

#include "gemm/direct.h"
#include "gemm/kernel.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#if defined(__clang__)  // clang has no `#pragma GCC target`; this is its equivalent
#pragma clang attribute push(__attribute__((target("avx2,fma,avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")
#endif

namespace pyfastnn {
namespace {

template <class T>
struct zmm;

template <>
struct zmm<float> {
    using v = __m512;
    static constexpr int lanes = 16;
    static v zero() { return _mm512_setzero_ps(); }
    static v set1(float x) { return _mm512_set1_ps(x); }
    static v load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, v x) { _mm512_storeu_ps(p, x); }
    static v mul(v a, v b) { return _mm512_mul_ps(a, b); }
    static v fmadd(v a, v b, v c) { return _mm512_fmadd_ps(a, b, c); }
};

template <>
struct zmm<double> {
    using v = __m512d;
    static constexpr int lanes = 8;
    static v zero() { return _mm512_setzero_pd(); }
    static v set1(double x) { return _mm512_set1_pd(x); }
    static v load(const double* p) { return _mm512_loadu_pd(p); }
    static void store(double* p, v x) { _mm512_storeu_pd(p, x); }
    static v mul(v a, v b) { return _mm512_mul_pd(a, b); }
    static v fmadd(v a, v b, v c) { return _mm512_fmadd_pd(a, b, c); }
};

constexpr int nv = 2;  // zmm per tile row

template <class T, int mr>
void ukernel(std::int64_t k, const T* __restrict a, std::int64_t a_step, const T* __restrict b, std::int64_t b_step,
             T* c, std::int64_t rs_c, T alpha, T beta) {
    using V = zmm<T>;
    constexpr int lanes = V::lanes;
    constexpr int nr = nv * lanes;
    typename V::v acc[mr][nv];
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) acc[r][v] = V::zero();

    // C is touched only after the k loop; start pulling its lines in now so the store does not wait on memory.
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + r * rs_c + nr - 1), _MM_HINT_T0);
    }

    for (std::int64_t p = 0; p < k; ++p) {
        typename V::v bv[nv];
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) bv[v] = V::load(b + v * lanes);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r) {
            const typename V::v ar = V::set1(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) acc[r][v] = V::fmadd(ar, bv[v], acc[r][v]);
        }
        a += a_step;
        b += b_step;
    }

    const typename V::v va = V::set1(alpha);
    if (beta == T(0)) {
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) V::store(c + r * rs_c + v * lanes, V::mul(va, acc[r][v]));
    } else {
        const typename V::v vb = V::set1(beta);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) {
                T* cp = c + r * rs_c + v * lanes;
                V::store(cp, V::fmadd(va, acc[r][v], V::mul(vb, V::load(cp))));
            }
    }
}

template <class T>
__attribute__((flatten)) void direct(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                                     std::int64_t rs_a, std::int64_t cs_a, const T* b, std::int64_t rs_b,
                                     std::int64_t cs_b, T beta, T* c, std::int64_t rs_c, T* work) {
    direct_gemm<T, true>(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, work);
}

// Instantiated here, under the target pragma.
template void ukernel<float, 8>(std::int64_t, const float*, std::int64_t, const float*, std::int64_t, float*,
                                std::int64_t, float, float);
template void ukernel<float, 14>(std::int64_t, const float*, std::int64_t, const float*, std::int64_t, float*,
                                 std::int64_t, float, float);
template void ukernel<double, 8>(std::int64_t, const double*, std::int64_t, const double*, std::int64_t, double*,
                                 std::int64_t, double, double);
template void ukernel<double, 14>(std::int64_t, const double*, std::int64_t, const double*, std::int64_t, double*,
                                  std::int64_t, double, double);
template void direct<float>(std::int64_t, std::int64_t, std::int64_t, float, const float*, std::int64_t,
                            std::int64_t, const float*, std::int64_t, std::int64_t, float, float*, std::int64_t,
                            float*);
template void direct<double>(std::int64_t, std::int64_t, std::int64_t, double, const double*, std::int64_t,
                             std::int64_t, const double*, std::int64_t, std::int64_t, double, double*, std::int64_t,
                             double*);

}  // namespace
}  // namespace pyfastnn

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace pyfastnn {
namespace {
// float32 block sizes for Zen 4 (32 KiB L1d, 1 MiB L2 per core): the B micro-panel kc x nr = 256 x 32 x 4 B =
// 32 KiB streams through L1 next to the 14 KiB A micro-panel (L2 feeds both easily at ~7 B/cycle); the A block
// mc x kc = 336 x 256 x 4 B = 336 KiB sits in L2 with room for C and the B panel; the B block kc x nc = 4 MiB in L3.
// The 8 x 32 tile (16 accumulators, 2 B loads + 8 broadcasts per 16 FMAs) serves up to 128 rows when it pads
// less than 14-row tiles (32 rows: 4 tiles of 8 against 3 of 14, a quarter of whose FMAs were padding; one
// thread, 32x128x64 with B transposed: 6.1 µs against 8.1, 32x128x10: 1.64 against 2.05).
const gemm_kernel<float> f32_8 = {"avx512_f32_8x32", 8, 32, 336, 256, 4096, ukernel<float, 8>, direct<float>};
const gemm_kernel<float> f32 = {"avx512_f32_14x32", 14, 32, /*mc*/ 336, /*kc*/ 256, /*nc*/ 4096,
                                ukernel<float, 14>, direct<float>, &f32_8, /*small_m_max*/ 128};
// float64: kc = 512 rather than float32's 256 because float64 moves twice the C bytes per flop, and a longer k
// loop halves the C tile loads/stores (measured +5-10% at 1024-2048 with 2 threads); the A block
// mc x kc = 112 x 512 x 8 B = 448 KiB stays in L2, the B micro-panel (64 KiB) and A micro-panel (56 KiB) stream
// from L2, which delivers far more than the ~6 B/cycle they need. The 8 x 16 tile serves up to 128 rows when it
// pads less than 14-row tiles, as for float32.
const gemm_kernel<double> f64_8 = {"avx512_f64_8x16", 8, 16, 112, 512, 4096, ukernel<double, 8>, direct<double>};
const gemm_kernel<double> f64 = {"avx512_f64_14x16", 14, 16, /*mc*/ 112, /*kc*/ 512, /*nc*/ 4096,
                                 ukernel<double, 14>, direct<double>, &f64_8, /*small_m_max*/ 128};
}  // namespace
const gemm_kernel<float>* avx512_f32_kernel() { return &f32; }
const gemm_kernel<double>* avx512_f64_kernel() { return &f64; }
}  // namespace pyfastnn

#else

namespace pyfastnn {
const gemm_kernel<float>* avx512_f32_kernel() { return nullptr; }
const gemm_kernel<double>* avx512_f64_kernel() { return nullptr; }
}  // namespace pyfastnn

#endif
