// Portable loops of rowops.h. Every rowops/<isa>.cpp includes this before its target pragma and calls these from
// functions with internal linkage and `flatten`, so the loops are inlined and vectorised there for that ISA.
// Nothing here names an ISA.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace pyfastnn {
namespace rowops_impl {

template <class T, int R>
inline void rank_k_rows(std::int64_t n_out, std::int64_t n_in, T* __restrict w, T* __restrict b,
                        const T* __restrict delta, std::int64_t ld_delta, const T* __restrict a, T eta, T decay,
                        T* __restrict delta_prev) {
    for (std::int64_t i = 0; i < n_out; ++i) {
        T* __restrict wi = w + i * n_in;
        T d[R];
        T dsum = 0;
        for (int r = 0; r < R; ++r) {
            d[r] = delta[r * ld_delta + i];
            dsum += d[r];
        }
        if (delta_prev != nullptr) {
            for (std::int64_t j = 0; j < n_in; ++j) {
                const T wij = wi[j];
                T upd = 0;
                for (int r = 0; r < R; ++r) {
                    delta_prev[r * n_in + j] += d[r] * wij;
                    upd += d[r] * a[r * n_in + j];
                }
                wi[j] = wij * decay - eta * upd;
            }
        } else {
            for (std::int64_t j = 0; j < n_in; ++j) {
                T upd = 0;
                for (int r = 0; r < R; ++r) upd += d[r] * a[r * n_in + j];
                wi[j] = wi[j] * decay - eta * upd;
            }
        }
        b[i] -= eta * dsum;
    }
}

template <class T>
inline void rank_k_step(std::int64_t rows, std::int64_t n_out, std::int64_t n_in, T* w, T* b, const T* delta,
                        std::int64_t ld_delta, const T* a, T eta, T decay, T* delta_prev) {
    // The row count is a template argument so the r loops unroll and j vectorises.
    switch (rows) {
        case 1: return rank_k_rows<T, 1>(n_out, n_in, w, b, delta, ld_delta, a, eta, decay, delta_prev);
        case 2: return rank_k_rows<T, 2>(n_out, n_in, w, b, delta, ld_delta, a, eta, decay, delta_prev);
        case 3: return rank_k_rows<T, 3>(n_out, n_in, w, b, delta, ld_delta, a, eta, decay, delta_prev);
        case 4: return rank_k_rows<T, 4>(n_out, n_in, w, b, delta, ld_delta, a, eta, decay, delta_prev);
        case 5: return rank_k_rows<T, 5>(n_out, n_in, w, b, delta, ld_delta, a, eta, decay, delta_prev);
        case 6: return rank_k_rows<T, 6>(n_out, n_in, w, b, delta, ld_delta, a, eta, decay, delta_prev);
        case 7: return rank_k_rows<T, 7>(n_out, n_in, w, b, delta, ld_delta, a, eta, decay, delta_prev);
        default: return rank_k_rows<T, 8>(n_out, n_in, w, b, delta, ld_delta, a, eta, decay, delta_prev);
    }
}

template <class T>
inline void bias_relu(std::int64_t rows, std::int64_t cols, T* z, const T* __restrict bias, T* out) {
    for (std::int64_t r = 0; r < rows; ++r) {
        T* zr = z + r * cols;
        T* o = out + r * cols;
        for (std::int64_t j = 0; j < cols; ++j) {
            const T v = zr[j] + bias[j];
            zr[j] = v;
            o[j] = v < T(0) ? T(0) : v;  // NaN stays NaN (max(v, 0) would drop it)
        }
    }
}

template <class T>
inline void relu_backward(std::int64_t n, const T* __restrict a, T* __restrict delta) {
    // times σ' = 0 rather than set to 0, so a NaN delta stays NaN as in the reference backend
    for (std::int64_t i = 0; i < n; ++i) delta[i] = a[i] > T(0) ? delta[i] : delta[i] * T(0);
}

// e^x in float without a libm call, so a loop of them vectorises: Cody-Waite reduction x = n ln2 + r,
// |r| <= ~ln2/2, a degree-6 polynomial for e^r (Cephes expf, ~1-2 ulp), times 2^n built in the exponent bits.
// e^x for x < -87.3 (below the normal floats) is returned as 0; NaN stays NaN. Only for x <= 0 (the softmax
// subtracts the row maximum first): past ln 2^127 the scale would be wrong.
inline float exp_no_libm(float x) {
    // n = round(x / ln2) by adding and removing 1.5·2^23 (exact below 2^22 in magnitude; std::floor would
    // keep the loop from vectorising: GCC does not vectorise it while math may trap).
    const float shifter = 12582912.0f;
    const float n = (x * 1.44269504088896341f + shifter) - shifter;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    // 2^n for n in [-126, 0] (x in [-87.3, 0]); outside, and for NaN, the select below or p decides.
    const float n_in = n >= -126.0f && n <= 127.0f ? n : -126.0f;
    const std::int32_t bits = (std::int32_t(n_in) + 127) * (1 << 23);
    return x < -87.3f ? 0.0f : p * __builtin_bit_cast(float, bits);  // (a memcpy there does not vectorise)
}

// Softmax of each row of z (+ bias when not null; z keeps z + bias), into out (which may be z): the row's
// exponentials in one vectorisable pass (float), then the sum and the division, as activations.cpp does it.
template <class T>
inline void softmax_rows(std::int64_t rows, std::int64_t cols, T* z, const T* __restrict bias, T* out) {
    for (std::int64_t r = 0; r < rows; ++r) {
        T* zr = z + r * cols;
        T* o = out + r * cols;
        if (bias != nullptr)
            for (std::int64_t j = 0; j < cols; ++j) zr[j] += bias[j];
        T mx = zr[0];
        for (std::int64_t j = 1; j < cols; ++j) mx = zr[j] > mx ? zr[j] : mx;
        if constexpr (sizeof(T) == sizeof(float)) {
            // Two passes so the second reads and writes one array only (out may be z): that one vectorises.
            for (std::int64_t j = 0; j < cols; ++j) o[j] = zr[j] - mx;
            for (std::int64_t j = 0; j < cols; ++j) o[j] = exp_no_libm(o[j]);
        } else {
            for (std::int64_t j = 0; j < cols; ++j) o[j] = std::exp(zr[j] - mx);
        }
        T sum = 0;
        for (std::int64_t j = 0; j < cols; ++j) sum += o[j];
        for (std::int64_t j = 0; j < cols; ++j) o[j] /= sum;
    }
}

// 16 independent partial sums per row of x: vectorisable without reassociating one sum (no -ffast-math).
constexpr int dot_lanes = 16;

template <class T, int R>
inline void dots_of_row(std::int64_t n_in, const T* __restrict wi, const T* __restrict x, T* out) {
    T acc[R][dot_lanes] = {};
    std::int64_t j = 0;
    for (; j + dot_lanes <= n_in; j += dot_lanes)
        for (int l = 0; l < dot_lanes; ++l) {
            const T wv = wi[j + l];
            for (int r = 0; r < R; ++r) acc[r][l] += wv * x[r * n_in + j + l];
        }
    for (int r = 0; r < R; ++r) {
        T sum = 0;
        for (int l = 0; l < dot_lanes; ++l) sum += acc[r][l];
        for (std::int64_t jj = j; jj < n_in; ++jj) sum += wi[jj] * x[r * n_in + jj];
        out[r] = sum;
    }
}

template <class T>
inline void small_batch_forward(std::int64_t rows, std::int64_t n_out, std::int64_t n_in, const T* __restrict w,
                                const T* __restrict b, const T* __restrict x, T* __restrict z, std::int64_t ldz) {
    // W row outer, rows of x inner: a row of W is read from memory once and stays in L1 for every row of x.
    for (std::int64_t i = 0; i < n_out; ++i) {
        const T* wi = w + i * n_in;
        std::int64_t r = 0;
        T d[4];
        for (; r + 4 <= rows; r += 4) {
            dots_of_row<T, 4>(n_in, wi, x + r * n_in, d);
            for (int q = 0; q < 4; ++q) z[(r + q) * ldz + i] = d[q] + b[i];
        }
        for (; r < rows; ++r) {
            dots_of_row<T, 1>(n_in, wi, x + r * n_in, d);
            z[r * ldz + i] = d[0] + b[i];
        }
    }
}

}  // namespace rowops_impl
}  // namespace pyfastnn

// Defines, inside namespace pyfastnn, the functions and the table of one ISA: ATTR is the attribute list that
// puts them under the TU's target (flatten inlines the loops above into them).
#define PYFASTNN_DEFINE_ROWOPS(T, NAME)                                                                          \
    namespace {                                                                                               \
    __attribute__((flatten)) void NAME##_rank_k(std::int64_t rows, std::int64_t n_out, std::int64_t n_in, T* w, \
                                                T* b, const T* d, std::int64_t ldd, const T* a, T eta,        \
                                                T decay, T* dp) {                                             \
        rowops_impl::rank_k_step<T>(rows, n_out, n_in, w, b, d, ldd, a, eta, decay, dp);                      \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_bias_relu(std::int64_t rows, std::int64_t cols, T* z, const T* bias,  \
                                                   T* out) {                                                  \
        rowops_impl::bias_relu<T>(rows, cols, z, bias, out);                                                  \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_relu_backward(std::int64_t n, const T* a, T* d) {                     \
        rowops_impl::relu_backward<T>(n, a, d);                                                               \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_small_fwd(std::int64_t rows, std::int64_t n_out, std::int64_t n_in,    \
                                                   const T* w, const T* b, const T* x, T* z, std::int64_t ldz) { \
        rowops_impl::small_batch_forward<T>(rows, n_out, n_in, w, b, x, z, ldz);                              \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_softmax(std::int64_t rows, std::int64_t cols, T* z, const T* bias,   \
                                                 T* out) {                                                    \
        rowops_impl::softmax_rows<T>(rows, cols, z, bias, out);                                               \
    }                                                                                                         \
    const rowops<T> NAME##_table = {NAME##_rank_k, NAME##_bias_relu, NAME##_relu_backward, NAME##_small_fwd,   \
                                    NAME##_softmax};                                                          \
    }
