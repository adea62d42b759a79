// Portable loops of rowops.h. Every rowops/<isa>.cpp includes this before its target pragma and calls these from
// functions with internal linkage and `flatten`, so the loops are inlined and vectorised there for that ISA.
// Nothing here names an ISA.
#pragma once

#include <cstdint>

namespace pyfastnn {
namespace rowops_impl {

template <class T>
inline void rank1_step(std::int64_t n_out, std::int64_t n_in, T* __restrict w, T* __restrict b,
                       const T* __restrict delta, const T* __restrict a, T eta, T decay, T* __restrict delta_prev) {
    if (delta_prev != nullptr) {
        for (std::int64_t j = 0; j < n_in; ++j) delta_prev[j] = T(0);
        for (std::int64_t i = 0; i < n_out; ++i) {
            T* __restrict wi = w + i * n_in;
            const T d = delta[i];
            const T step = eta * d;
            for (std::int64_t j = 0; j < n_in; ++j) {
                const T wij = wi[j];
                delta_prev[j] += d * wij;
                wi[j] = wij * decay - step * a[j];
            }
            b[i] -= step;
        }
        return;
    }
    for (std::int64_t i = 0; i < n_out; ++i) {
        T* __restrict wi = w + i * n_in;
        const T step = eta * delta[i];
        for (std::int64_t j = 0; j < n_in; ++j) wi[j] = wi[j] * decay - step * a[j];
        b[i] -= step;
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
            o[j] = v > T(0) ? v : T(0);
        }
    }
}

template <class T>
inline void relu_backward(std::int64_t n, const T* __restrict a, T* __restrict delta) {
    for (std::int64_t i = 0; i < n; ++i) delta[i] = a[i] > T(0) ? delta[i] : T(0);
}

template <class T>
inline void matvec_bias(std::int64_t n_out, std::int64_t n_in, const T* __restrict w, const T* __restrict b,
                        const T* __restrict x, T* __restrict z) {
    // 16 independent partial sums per row: vectorisable without reassociating one sum (no -ffast-math).
    constexpr int lanes = 16;
    for (std::int64_t i = 0; i < n_out; ++i) {
        const T* __restrict wi = w + i * n_in;
        T acc[lanes] = {};
        std::int64_t j = 0;
        for (; j + lanes <= n_in; j += lanes)
            for (int l = 0; l < lanes; ++l) acc[l] += wi[j + l] * x[j + l];
        T sum = 0;
        for (int l = 0; l < lanes; ++l) sum += acc[l];
        for (; j < n_in; ++j) sum += wi[j] * x[j];
        z[i] = sum + b[i];
    }
}

}  // namespace rowops_impl
}  // namespace pyfastnn

// Defines, inside namespace pyfastnn, the functions and the table of one ISA: ATTR is the attribute list that
// puts them under the TU's target (flatten inlines the loops above into them).
#define PYFASTNN_DEFINE_ROWOPS(T, NAME)                                                                          \
    namespace {                                                                                               \
    __attribute__((flatten)) void NAME##_rank1(std::int64_t n_out, std::int64_t n_in, T* w, T* b, const T* d,  \
                                               const T* a, T eta, T decay, T* dp) {                           \
        rowops_impl::rank1_step<T>(n_out, n_in, w, b, d, a, eta, decay, dp);                                   \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_bias_relu(std::int64_t rows, std::int64_t cols, T* z, const T* bias,  \
                                                   T* out) {                                                  \
        rowops_impl::bias_relu<T>(rows, cols, z, bias, out);                                                  \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_relu_backward(std::int64_t n, const T* a, T* d) {                     \
        rowops_impl::relu_backward<T>(n, a, d);                                                               \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_matvec(std::int64_t n_out, std::int64_t n_in, const T* w, const T* b,  \
                                                const T* x, T* z) {                                           \
        rowops_impl::matvec_bias<T>(n_out, n_in, w, b, x, z);                                                 \
    }                                                                                                         \
    const rowops<T> NAME##_table = {NAME##_rank1, NAME##_bias_relu, NAME##_relu_backward, NAME##_matvec};      \
    }
