// Portable micro-kernel template used by the reference kernels (kernels/reference_f32.cpp, reference_f64.cpp).
// Plain C++ compiled at the baseline target: the correctness yardstick for the ISA kernels and the fallback on
// CPUs or architectures without one.
#pragma once

#include <cstdint>

namespace pyfastnn {

template <class T, int MR, int NR>
inline void reference_ukernel(std::int64_t k, const T* __restrict a, std::int64_t a_step, const T* __restrict b,
                              std::int64_t b_step, T* __restrict c, std::int64_t rs_c, T alpha, T beta) {
    T acc[MR][NR] = {};
    for (std::int64_t p = 0; p < k; ++p) {
        for (int r = 0; r < MR; ++r) {
            const T ar = a[r];
            for (int j = 0; j < NR; ++j) acc[r][j] += ar * b[j];
        }
        a += a_step;
        b += b_step;
    }
    for (int r = 0; r < MR; ++r) {
        T* cr = c + r * rs_c;
        if (beta == T(0)) {
            for (int j = 0; j < NR; ++j) cr[j] = alpha * acc[r][j];
        } else {
            for (int j = 0; j < NR; ++j) cr[j] = alpha * acc[r][j] + beta * cr[j];
        }
    }
}

}  // namespace pyfastnn
