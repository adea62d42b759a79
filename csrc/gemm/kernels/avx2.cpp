// AVX2 + FMA micro-kernels: float32 6 x 16, float64 6 x 8 (the classic Haswell shapes).
//
// C rows are contiguous, so the vector dimension is N: a tile row is 2 ymm (16 floats or 8 doubles). 6 x 2 = 12
// ymm accumulators + 2 for the B row + 1 broadcast = 15 of the 16 ymm registers. Two FMA pipes x 4-cycle latency
// need at least 8 independent accumulators; 12 gives slack. Per k step: 2 loads of B, 6 broadcasts, 12 FMAs. One
// template serves both dtypes through the `ymm<T>` intrinsics below.
//
// ISA code is confined to this translation unit: standard headers come first, then the target pragma, and
// everything compiled under it has internal linkage. Only avx2_f32_kernel() and avx2_f64_kernel() (baseline) are
// exported.
#include <cstdint>

#include "gemm/direct.h"
#include "gemm/kernel.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#if defined(__clang__)  // clang has no `#pragma GCC target`; this is its equivalent
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace pyfastnn {
namespace {

template <class T>
struct ymm;

template <>
struct ymm<float> {
    using v = __m256;
    static constexpr int lanes = 8;
    static v zero() { return _mm256_setzero_ps(); }
    static v set1(float x) { return _mm256_set1_ps(x); }
    static v load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, v x) { _mm256_storeu_ps(p, x); }
    static v mul(v a, v b) { return _mm256_mul_ps(a, b); }
    static v fmadd(v a, v b, v c) { return _mm256_fmadd_ps(a, b, c); }
};

template <>
struct ymm<double> {
    using v = __m256d;
    static constexpr int lanes = 4;
    static v zero() { return _mm256_setzero_pd(); }
    static v set1(double x) { return _mm256_set1_pd(x); }
    static v load(const double* p) { return _mm256_loadu_pd(p); }
    static void store(double* p, v x) { _mm256_storeu_pd(p, x); }
    static v mul(v a, v b) { return _mm256_mul_pd(a, b); }
    static v fmadd(v a, v b, v c) { return _mm256_fmadd_pd(a, b, c); }
};

constexpr int nv = 2;  // ymm per tile row
constexpr int mr = 6;

template <class T>
void ukernel(std::int64_t k, const T* __restrict a, std::int64_t a_step, const T* __restrict b, std::int64_t b_step,
             T* c, std::int64_t rs_c, T alpha, T beta) {
    using V = ymm<T>;
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
template void ukernel<float>(std::int64_t, const float*, std::int64_t, const float*, std::int64_t, float*,
                             std::int64_t, float, float);
template void ukernel<double>(std::int64_t, const double*, std::int64_t, const double*, std::int64_t, double*,
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
// Block sizes, float32: B micro-panel kc x nr = 256 x 16 x 4 B = 16 KiB in L1, A block mc x kc = 192 x 256 x 4 B =
// 192 KiB in L2 (sized for the 256 KiB L2 of older AVX2 cores too), B block kc x nc = 4 MiB in L3. float64: the
// same bytes with half the columns and rows: 256 x 8 x 8 B = 16 KiB, 96 x 256 x 8 B = 192 KiB, 8 MiB.
const gemm_kernel<float> f32 = {"avx2_f32_6x16", mr, 16, /*mc*/ 192, /*kc*/ 256, /*nc*/ 4096, ukernel<float>,
                                direct<float>};
const gemm_kernel<double> f64 = {"avx2_f64_6x8", mr, 8, /*mc*/ 96, /*kc*/ 256, /*nc*/ 4096, ukernel<double>,
                                 direct<double>};
}  // namespace
const gemm_kernel<float>* avx2_f32_kernel() { return &f32; }
const gemm_kernel<double>* avx2_f64_kernel() { return &f64; }
}  // namespace pyfastnn

#else

namespace pyfastnn {
const gemm_kernel<float>* avx2_f32_kernel() { return nullptr; }
const gemm_kernel<double>* avx2_f64_kernel() { return nullptr; }
}  // namespace pyfastnn

#endif
