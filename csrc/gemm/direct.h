// Unpacked GEMM for small problems, written as portable C++ that the compiler vectorises.
//
// Each kernel translation unit instantiates direct_gemm inside a function carrying its own target attribute and
// `flatten`, so the loops below are inlined there and vectorised for that ISA; nothing in this header names an ISA.
// (An out-of-line copy the compiler might also emit is baseline code, so sharing it between TUs is harmless.)
#pragma once

#include <cstdint>

namespace pyfastnn {
namespace direct_detail {

// a * b + c, fused when the instantiating TU has hardware FMA (the caller decides: in baseline code
// __builtin_fma would be a libm call, and -std=c++17 turns off automatic contraction).
template <bool fused>
inline float madd(float a, float b, float c) {
    if constexpr (fused) return __builtin_fmaf(a, b, c);
    else return a * b + c;
}
template <bool fused>
inline double madd(double a, double b, double c) {
    if constexpr (fused) return __builtin_fma(a, b, c);
    else return a * b + c;
}

// Lanes of independent partial sums in dot products: 64 bytes of float is one zmm / two ymm, enough
// independent chains to hide FMA latency without needing -ffast-math reassociation.
constexpr int dot_lanes = 16;

// Narrow op(B) given transposed (n <= dot_lanes, e.g. an output layer A·Wᵀ of 10 classes): op(B) is copied k
// steps at a time into rows of dot_lanes (zero padded), and four rows of C accumulate in registers.
constexpr int narrow_k_chunk = 256;

}  // namespace direct_detail

// Elements of `work` direct_gemm needs for a depth of k.
inline std::int64_t direct_work_size(std::int64_t k) {
    const std::int64_t narrow = std::int64_t(direct_detail::narrow_k_chunk) * direct_detail::dot_lanes;
    return k > narrow ? k : narrow;
}

template <class T, bool fused>
inline void direct_gemm(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t rs_a,
                        std::int64_t cs_a, const T* b, std::int64_t rs_b, std::int64_t cs_b, T beta, T* c,
                        std::int64_t rs_c, T* work) {
    using direct_detail::madd;
    constexpr int lanes = direct_detail::dot_lanes;

    // beta first, so the accumulation loops below are plain "+=" and beta == 0 never reads C.
    for (std::int64_t i = 0; i < m; ++i) {
        T* __restrict ci = c + i * rs_c;
        if (beta == T(0)) {
            for (std::int64_t j = 0; j < n; ++j) ci[j] = T(0);
        } else if (beta != T(1)) {
            for (std::int64_t j = 0; j < n; ++j) ci[j] *= beta;
        }
    }
    if (k == 0 || alpha == T(0)) return;

    if (cs_b == 1) {
        // Rows of op(B) are contiguous: C row i += sum_p (alpha A(i,p)) B(p,:). Four C rows share each B row
        // load, which is what keeps this loop from being purely load/store bound.
        std::int64_t i = 0;
        for (; i + 4 <= m; i += 4) {
            T* __restrict c0 = c + (i + 0) * rs_c;
            T* __restrict c1 = c + (i + 1) * rs_c;
            T* __restrict c2 = c + (i + 2) * rs_c;
            T* __restrict c3 = c + (i + 3) * rs_c;
            for (std::int64_t p = 0; p < k; ++p) {
                const T* __restrict bp = b + p * rs_b;
                const T a0 = alpha * a[(i + 0) * rs_a + p * cs_a];
                const T a1 = alpha * a[(i + 1) * rs_a + p * cs_a];
                const T a2 = alpha * a[(i + 2) * rs_a + p * cs_a];
                const T a3 = alpha * a[(i + 3) * rs_a + p * cs_a];
                for (std::int64_t j = 0; j < n; ++j) {
                    const T bj = bp[j];
                    c0[j] = madd<fused>(a0, bj, c0[j]);
                    c1[j] = madd<fused>(a1, bj, c1[j]);
                    c2[j] = madd<fused>(a2, bj, c2[j]);
                    c3[j] = madd<fused>(a3, bj, c3[j]);
                }
            }
        }
        for (; i < m; ++i) {
            T* __restrict ci = c + i * rs_c;
            for (std::int64_t p = 0; p < k; ++p) {
                const T* __restrict bp = b + p * rs_b;
                const T ai = alpha * a[i * rs_a + p * cs_a];
                for (std::int64_t j = 0; j < n; ++j) ci[j] = madd<fused>(ai, bp[j], ci[j]);
            }
        }
        return;
    }

    if (rs_b == 1 && n <= lanes) {
        // Few columns of op(B), given transposed: the dot-product form below would spend more on reducing its
        // 16 lanes per C element than on the products (320 reductions in 32x10x128). Instead op(B) is copied
        // into work as rows of `lanes` (columns past n zero), and each C row accumulates `lanes` sums at once,
        // four rows at a time so the FMA chains overlap: no reductions at all.
        constexpr std::int64_t chunk = direct_detail::narrow_k_chunk;
        for (std::int64_t p0 = 0; p0 < k; p0 += chunk) {
            const std::int64_t kc = k - p0 < chunk ? k - p0 : chunk;
            for (std::int64_t p = 0; p < kc; ++p) {
                T* __restrict w = work + p * lanes;
                for (std::int64_t j = 0; j < n; ++j) w[j] = b[(p0 + p) + j * cs_b];
                for (std::int64_t j = n; j < lanes; ++j) w[j] = T(0);
            }
            const T* __restrict bt = work;
            const T* a0 = a + p0 * cs_a;
            std::int64_t i = 0;
            for (; i + 4 <= m; i += 4) {
                // Four separate accumulator arrays, the l loop innermost: the shape the compiler keeps in
                // vector registers (one array of [4][lanes] it spilled, at ten times the time).
                T s0[lanes] = {}, s1[lanes] = {}, s2[lanes] = {}, s3[lanes] = {};
                const T* ar0 = a0 + (i + 0) * rs_a;
                const T* ar1 = a0 + (i + 1) * rs_a;
                const T* ar2 = a0 + (i + 2) * rs_a;
                const T* ar3 = a0 + (i + 3) * rs_a;
                for (std::int64_t p = 0; p < kc; ++p) {
                    const T* __restrict bp = bt + p * lanes;
                    const T x0 = ar0[p * cs_a], x1 = ar1[p * cs_a], x2 = ar2[p * cs_a], x3 = ar3[p * cs_a];
                    for (int l = 0; l < lanes; ++l) {
                        s0[l] = madd<fused>(x0, bp[l], s0[l]);
                        s1[l] = madd<fused>(x1, bp[l], s1[l]);
                        s2[l] = madd<fused>(x2, bp[l], s2[l]);
                        s3[l] = madd<fused>(x3, bp[l], s3[l]);
                    }
                }
                T* __restrict c0 = c + (i + 0) * rs_c;
                T* __restrict c1 = c + (i + 1) * rs_c;
                T* __restrict c2 = c + (i + 2) * rs_c;
                T* __restrict c3 = c + (i + 3) * rs_c;
                for (std::int64_t j = 0; j < n; ++j) {
                    c0[j] = madd<fused>(alpha, s0[j], c0[j]);
                    c1[j] = madd<fused>(alpha, s1[j], c1[j]);
                    c2[j] = madd<fused>(alpha, s2[j], c2[j]);
                    c3[j] = madd<fused>(alpha, s3[j], c3[j]);
                }
            }
            for (; i < m; ++i) {
                T s[lanes] = {};
                for (std::int64_t p = 0; p < kc; ++p) {
                    const T ar = a0[i * rs_a + p * cs_a];
                    for (int l = 0; l < lanes; ++l) s[l] = madd<fused>(ar, bt[p * lanes + l], s[l]);
                }
                T* __restrict ci = c + i * rs_c;
                for (std::int64_t j = 0; j < n; ++j) ci[j] = madd<fused>(alpha, s[j], ci[j]);
            }
        }
        return;
    }

    if (rs_b == 1) {
        // Columns of op(B) are contiguous (B given transposed): C(i,j) += alpha * dot(A(i,:), B(:,j)), with the
        // row of op(A) gathered into `work` when it is strided.
        for (std::int64_t i = 0; i < m; ++i) {
            const T* __restrict ai = a + i * rs_a;
            if (cs_a != 1) {
                for (std::int64_t p = 0; p < k; ++p) work[p] = a[i * rs_a + p * cs_a];
                ai = work;
            }
            T* __restrict ci = c + i * rs_c;
            std::int64_t j = 0;
            for (; j + 2 <= n; j += 2) {
                const T* __restrict b0 = b + (j + 0) * cs_b;
                const T* __restrict b1 = b + (j + 1) * cs_b;
                T s0[lanes] = {}, s1[lanes] = {};
                std::int64_t p = 0;
                for (; p + lanes <= k; p += lanes) {
                    for (int l = 0; l < lanes; ++l) {
                        s0[l] = madd<fused>(ai[p + l], b0[p + l], s0[l]);
                        s1[l] = madd<fused>(ai[p + l], b1[p + l], s1[l]);
                    }
                }
                T t0 = T(0), t1 = T(0);
                for (; p < k; ++p) {
                    t0 = madd<fused>(ai[p], b0[p], t0);
                    t1 = madd<fused>(ai[p], b1[p], t1);
                }
                for (int l = 0; l < lanes; ++l) {
                    t0 += s0[l];
                    t1 += s1[l];
                }
                ci[j + 0] = madd<fused>(alpha, t0, ci[j + 0]);
                ci[j + 1] = madd<fused>(alpha, t1, ci[j + 1]);
            }
            for (; j < n; ++j) {
                const T* __restrict bj = b + j * cs_b;
                T s[lanes] = {};
                std::int64_t p = 0;
                for (; p + lanes <= k; p += lanes)
                    for (int l = 0; l < lanes; ++l) s[l] = madd<fused>(ai[p + l], bj[p + l], s[l]);
                T t = T(0);
                for (; p < k; ++p) t = madd<fused>(ai[p], bj[p], t);
                for (int l = 0; l < lanes; ++l) t += s[l];
                ci[j] = madd<fused>(alpha, t, ci[j]);
            }
        }
        return;
    }

    // General strides (not produced by the Python bindings, kept so the contract holds for any caller).
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
            T t = T(0);
            for (std::int64_t p = 0; p < k; ++p) t = madd<fused>(a[i * rs_a + p * cs_a], b[p * rs_b + j * cs_b], t);
            c[i * rs_c + j] = madd<fused>(alpha, t, c[i * rs_c + j]);
        }
}

}  // namespace pyfastnn
