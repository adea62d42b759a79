// Portable loops of rowops.h. Every rowops/<isa>.cpp includes this before its target pragma and calls these from
// functions with internal linkage and `flatten`, so the loops are inlined and vectorised there for that ISA.
// Nothing here names an ISA.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "derivative_factor.h"
#include "optim.h"

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
    const derivative_factors<T> f = hidden_derivative_factors<T>();
    for (std::int64_t i = 0; i < n; ++i) delta[i] *= a[i] > T(0) ? f.one : f.zero;
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

// The bits of |v| as a signed integer of v's width: they order as the magnitudes do (infinity above every finite
// value, NaN above infinity), and a signed integer max vectorises where a floating-point one would not.
template <class T>
using magnitude_bits = typename std::conditional<sizeof(T) == 4, std::int32_t, std::int64_t>::type;

template <class T>
inline magnitude_bits<T> magnitude_of(T v) {
    magnitude_bits<T> u;
    std::memcpy(&u, &v, sizeof u);
    return u & std::numeric_limits<magnitude_bits<T>>::max();
}

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

// The largest magnitude_of(p[j]) over a row: a loop of its own (vectorised as an integer max), run while the row is
// still in L1 after its dot products (tracking it inside those loops made GCC spill their sums).
template <class T>
inline magnitude_bits<T> row_magnitude(std::int64_t n, const T* __restrict p) {
    magnitude_bits<T> m = 0;
    for (std::int64_t j = 0; j < n; ++j) m = std::max(m, magnitude_of(p[j]));
    return m;
}

// Returns 0, or with Track the largest |W[i, j]| (+inf when one is infinite, NaN when one is NaN).
template <class T, bool Track = false>
inline T small_batch_forward(std::int64_t rows, std::int64_t n_out, std::int64_t n_in, const T* __restrict w,
                             const T* __restrict b, const T* __restrict x, T* __restrict z, std::int64_t ldz) {
    magnitude_bits<T> top = 0;
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
        if constexpr (Track) top = std::max(top, row_magnitude(n_in, wi));
    }
    T v;
    std::memcpy(&v, &top, sizeof v);
    return v;
}

// A 32-byte vector of GCC's generic vector extension: each ISA's translation unit lowers it to its own registers
// (one AVX register, two SSE/NEON ones). Used where the auto-vectoriser is unreliable: for the gathered sums
// below, GCC -O3 jams two iterations of the row loop together and leaves the column loop scalar.
template <class T>
struct vec32_of;
template <>
struct vec32_of<float> {
    typedef float type __attribute__((vector_size(32)));
};
template <>
struct vec32_of<double> {
    typedef double type __attribute__((vector_size(32)));
};
template <class T>
using vec32 = typename vec32_of<T>::type;

// How many entries ahead the gathers below prefetch their rows: rows of a large table miss the caches, and
// the out-of-order window alone keeps too few of those misses in flight.
constexpr std::int64_t gather_prefetch_distance = 8;

// out (+)= alpha·Σ_q val[q]·row_q over NV vectors of columns, the partial sums held in NV registers while every
// row of the sum streams past once. prefetch_bytes > 0: also prefetch that many bytes of the row
// gather_prefetch_distance entries ahead (the first pass over a row prefetches all of it for the later ones).
template <class T, int NV>
inline void gather_vectors(std::int64_t count, const std::int32_t* __restrict idx, const T* __restrict val,
                           const T* __restrict base, std::int64_t ld, T alpha, T* __restrict out, bool accumulate,
                           std::int64_t prefetch_bytes) {
    constexpr int lanes = int(32 / sizeof(T));
    vec32<T> acc[NV];
    for (int c = 0; c < NV; ++c) acc[c] = vec32<T>{};
    for (std::int64_t q = 0; q < count; ++q) {
        if (prefetch_bytes > 0 && q + gather_prefetch_distance < count) {
            const char* ahead = reinterpret_cast<const char*>(base + std::int64_t(idx[q + gather_prefetch_distance]) * ld);
            for (std::int64_t b = 0; b < prefetch_bytes; b += 64) __builtin_prefetch(ahead + b);
        }
        const T v = val[q];
        const T* row = base + std::int64_t(idx[q]) * ld;
        for (int c = 0; c < NV; ++c) {
            vec32<T> r;
            std::memcpy(&r, row + c * lanes, sizeof r);  // an unaligned vector load
            acc[c] += v * r;
        }
    }
    for (int c = 0; c < NV; ++c) {
        vec32<T> o = alpha * acc[c];
        if (accumulate) {
            vec32<T> old;
            std::memcpy(&old, out + c * lanes, sizeof old);
            o += old;
        }
        std::memcpy(out + c * lanes, &o, sizeof o);
    }
}

template <class T>
inline void gather_axpy(std::int64_t count, const std::int32_t* __restrict idx, const T* __restrict val,
                        const T* __restrict base, std::int64_t ld, std::int64_t n, T alpha, T* __restrict out,
                        bool accumulate, bool prefetch) {
    constexpr int lanes = int(32 / sizeof(T));
    constexpr int wide = 8;  // vectors per pass: 8 accumulators + the broadcast fit AVX2's 16 registers
    std::int64_t prefetch_bytes = prefetch ? n * std::int64_t(sizeof(T)) : 0;
    std::int64_t j = 0;
    for (; j + wide * lanes <= n; j += wide * lanes) {
        gather_vectors<T, wide>(count, idx, val, base + j, ld, alpha, out + j, accumulate, prefetch_bytes);
        prefetch_bytes = 0;
    }
    for (; j + lanes <= n; j += lanes) {
        gather_vectors<T, 1>(count, idx, val, base + j, ld, alpha, out + j, accumulate, prefetch_bytes);
        prefetch_bytes = 0;
    }
    if (j == n) return;
    // The last columns (fewer than one vector), one at a time.
    for (; j < n; ++j) {
        T acc = 0;
        for (std::int64_t q = 0; q < count; ++q) acc += val[q] * base[std::int64_t(idx[q]) * ld + j];
        out[j] = accumulate ? out[j] + alpha * acc : alpha * acc;
    }
}

// The lazy optimizer steps on one row (see rowops.h): the gradient in chunks of gather_axpy's widest pass, each
// chunk's sums leaving the registers once into a buffer on the stack (L1), then the step over that chunk as a
// plain loop, which the compiler vectorises for the TU's ISA (the square roots and divisions in full width).
template <class T>
constexpr std::int64_t step_chunk = 8 * std::int64_t(32 / sizeof(T));

template <class T>
inline void gather_adam(std::int64_t count, const std::int32_t* idx, const T* val, const T* delta,
                        std::int64_t ld, std::int64_t n, T alpha, T* __restrict p, T* __restrict m,
                        T* __restrict v, const adam_constants<T>& constants) {
    const adam_constants<T> k = constants;  // a copy: stores to p, m, v cannot change it
    alignas(32) T g[step_chunk<T>];
    for (std::int64_t j0 = 0; j0 < n; j0 += step_chunk<T>) {
        const std::int64_t width = n - j0 < step_chunk<T> ? n - j0 : step_chunk<T>;
        gather_axpy<T>(count, idx, val, delta + j0, ld, width, alpha, g, false, false);
        for (std::int64_t j = 0; j < width; ++j) adam_element(g[j], p[j0 + j], m[j0 + j], v[j0 + j], k);
    }
}

template <class T>
inline void gather_momentum(std::int64_t count, const std::int32_t* idx, const T* val, const T* delta,
                            std::int64_t ld, std::int64_t n, T alpha, T* __restrict p, T* __restrict vel,
                            const momentum_constants<T>& constants) {
    const momentum_constants<T> k = constants;
    alignas(32) T g[step_chunk<T>];
    for (std::int64_t j0 = 0; j0 < n; j0 += step_chunk<T>) {
        const std::int64_t width = n - j0 < step_chunk<T> ? n - j0 : step_chunk<T>;
        gather_axpy<T>(count, idx, val, delta + j0, ld, width, alpha, g, false, false);
        for (std::int64_t j = 0; j < width; ++j) momentum_element(g[j], p[j0 + j], vel[j0 + j], k);
    }
}

// z (R rows x width) (+)= X E over rows j of the table (a block that stays in L2 while every column chunk passes
// over it): each row of E streams once past all rows of X, the sums of NV vectors of columns per row of X held
// in registers: R broadcasts + R·NV sums + one vector of E fit AVX2's 16 registers.
template <class T, int R>
inline void table_forward_rows(std::int64_t n_in, std::int64_t width, const T* __restrict e, std::int64_t ld_e,
                               const T* __restrict x, std::int64_t ld_x, T* __restrict z, std::int64_t ldz,
                               bool accumulate) {
    constexpr int lanes = int(32 / sizeof(T));
    constexpr int NV = (15 - R) / R > 8 ? 8 : (15 - R) / R;
    std::int64_t c0 = 0;
    for (; c0 + NV * lanes <= width; c0 += NV * lanes) {
        vec32<T> acc[R][NV];
        for (int r = 0; r < R; ++r)
            for (int v = 0; v < NV; ++v) {
                acc[r][v] = vec32<T>{};
                if (accumulate) std::memcpy(&acc[r][v], z + r * ldz + c0 + v * lanes, sizeof acc[r][v]);
            }
        for (std::int64_t j = 0; j < n_in; ++j) {
            T xs[R];
            for (int r = 0; r < R; ++r) xs[r] = x[r * ld_x + j];
            const T* ej = e + j * ld_e + c0;
            for (int v = 0; v < NV; ++v) {
                vec32<T> ev;
                std::memcpy(&ev, ej + v * lanes, sizeof ev);
                for (int r = 0; r < R; ++r) acc[r][v] += xs[r] * ev;
            }
        }
        for (int r = 0; r < R; ++r)
            for (int v = 0; v < NV; ++v) std::memcpy(z + r * ldz + c0 + v * lanes, &acc[r][v], sizeof acc[r][v]);
    }
    // The last columns (fewer than NV vectors), one at a time.
    for (std::int64_t c = c0; c < width; ++c)
        for (int r = 0; r < R; ++r) {
            T sum = accumulate ? z[r * ldz + c] : T(0);
            for (std::int64_t j = 0; j < n_in; ++j) sum += x[r * ld_x + j] * e[j * ld_e + c];
            z[r * ldz + c] = sum;
        }
}

// Rows of E per block of table_small_forward: 64 KB of the slice, so a block stays in L2 through its column
// chunks instead of every chunk streaming the whole table from memory.
template <class T>
inline std::int64_t table_block_rows(std::int64_t width) {
    const std::int64_t rows = (64 * 1024 / std::int64_t(sizeof(T))) / (width > 0 ? width : 1);
    return rows < 8 ? 8 : rows;
}

template <class T>
inline void table_small_forward(std::int64_t rows, std::int64_t n_in, std::int64_t width, const T* e,
                                std::int64_t ld_e, const T* x, T* z, std::int64_t ldz) {
    const std::int64_t block = table_block_rows<T>(width);
    for (std::int64_t j0 = 0; j0 < n_in; j0 += block) {
        const std::int64_t nj = n_in - j0 < block ? n_in - j0 : block;
        const T* eb = e + j0 * ld_e;
        const bool acc = j0 > 0;
        for (std::int64_t r = 0; r < rows;) {
            const std::int64_t left = rows - r;
            const T* xr = x + r * n_in + j0;
            T* zr = z + r * ldz;
            if (left >= 4) {
                table_forward_rows<T, 4>(nj, width, eb, ld_e, xr, n_in, zr, ldz, acc);
                r += 4;
            } else if (left == 3) {
                table_forward_rows<T, 3>(nj, width, eb, ld_e, xr, n_in, zr, ldz, acc);
                r += 3;
            } else if (left == 2) {
                table_forward_rows<T, 2>(nj, width, eb, ld_e, xr, n_in, zr, ldz, acc);
                r += 2;
            } else {
                table_forward_rows<T, 1>(nj, width, eb, ld_e, xr, n_in, zr, ldz, acc);
                r += 1;
            }
        }
    }
}

template <class T, int R>
inline void table_rank_k_rows(std::int64_t count, std::int64_t n_out, T* __restrict e, const T* __restrict a,
                              std::int64_t ld_a, const T* __restrict delta, T eta, T decay) {
    for (std::int64_t j = 0; j < count; ++j) {
        T* __restrict ej = e + j * n_out;
        T s[R];
        for (int r = 0; r < R; ++r) s[r] = eta * a[r * ld_a + j];
        for (std::int64_t c = 0; c < n_out; ++c) {
            T upd = 0;
            for (int r = 0; r < R; ++r) upd += s[r] * delta[r * n_out + c];
            ej[c] = ej[c] * decay - upd;
        }
    }
}

template <class T>
inline void table_rank_k(std::int64_t rows, std::int64_t count, std::int64_t n_out, T* e, const T* a,
                         std::int64_t ld_a, const T* delta, T eta, T decay) {
    switch (rows) {
        case 1: return table_rank_k_rows<T, 1>(count, n_out, e, a, ld_a, delta, eta, decay);
        case 2: return table_rank_k_rows<T, 2>(count, n_out, e, a, ld_a, delta, eta, decay);
        case 3: return table_rank_k_rows<T, 3>(count, n_out, e, a, ld_a, delta, eta, decay);
        case 4: return table_rank_k_rows<T, 4>(count, n_out, e, a, ld_a, delta, eta, decay);
        case 5: return table_rank_k_rows<T, 5>(count, n_out, e, a, ld_a, delta, eta, decay);
        case 6: return table_rank_k_rows<T, 6>(count, n_out, e, a, ld_a, delta, eta, decay);
        case 7: return table_rank_k_rows<T, 7>(count, n_out, e, a, ld_a, delta, eta, decay);
        default: return table_rank_k_rows<T, 8>(count, n_out, e, a, ld_a, delta, eta, decay);
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
    __attribute__((flatten)) T NAME##_small_fwd_max(std::int64_t rows, std::int64_t n_out, std::int64_t n_in, \
                                                    const T* w, const T* b, const T* x, T* z, std::int64_t ldz) { \
        return rowops_impl::small_batch_forward<T, true>(rows, n_out, n_in, w, b, x, z, ldz);                 \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_softmax(std::int64_t rows, std::int64_t cols, T* z, const T* bias,   \
                                                 T* out) {                                                    \
        rowops_impl::softmax_rows<T>(rows, cols, z, bias, out);                                               \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_gather_axpy(std::int64_t count, const std::int32_t* idx, const T* val, \
                                                     const T* base, std::int64_t ld, std::int64_t n, T alpha,  \
                                                     T* out, bool accumulate, bool prefetch) {                 \
        rowops_impl::gather_axpy<T>(count, idx, val, base, ld, n, alpha, out, accumulate, prefetch);          \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_table_fwd(std::int64_t rows, std::int64_t n_in, std::int64_t width,    \
                                                   const T* e, std::int64_t ld_e, const T* x, T* z,           \
                                                   std::int64_t ldz) {                                        \
        rowops_impl::table_small_forward<T>(rows, n_in, width, e, ld_e, x, z, ldz);                           \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_table_rank_k(std::int64_t rows, std::int64_t count, std::int64_t n_out, \
                                                      T* e, const T* a, std::int64_t ld_a, const T* d, T eta,  \
                                                      T decay) {                                              \
        rowops_impl::table_rank_k<T>(rows, count, n_out, e, a, ld_a, d, eta, decay);                          \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_gather_adam(std::int64_t count, const std::int32_t* idx, const T* val, \
                                                     const T* d, std::int64_t ld, std::int64_t n, T alpha,     \
                                                     T* p, T* m, T* v, const adam_constants<T>& k) {           \
        rowops_impl::gather_adam<T>(count, idx, val, d, ld, n, alpha, p, m, v, k);                            \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_gather_momentum(std::int64_t count, const std::int32_t* idx,          \
                                                         const T* val, const T* d, std::int64_t ld,            \
                                                         std::int64_t n, T alpha, T* p, T* vel,                \
                                                         const momentum_constants<T>& k) {                     \
        rowops_impl::gather_momentum<T>(count, idx, val, d, ld, n, alpha, p, vel, k);                         \
    }                                                                                                         \
    const rowops<T> NAME##_table = {NAME##_rank_k,       NAME##_bias_relu,   NAME##_relu_backward,             \
                                    NAME##_small_fwd,    NAME##_softmax,     NAME##_gather_axpy,               \
                                    NAME##_table_fwd,    NAME##_table_rank_k, NAME##_gather_adam,              \
                                    NAME##_gather_momentum, NAME##_small_fwd_max};                             \
    }
