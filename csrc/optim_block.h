// Portable loops of the dense optimizer steps on a block (optim.h, block_steps). optim.cpp (baseline) and
// optim_avx.cpp (AVX) include this before their target and call these from `flatten` functions, so the loops
// are inlined and vectorised there. Nothing here names an ISA.
#pragma once

#include <cstdint>

#include "optim.h"

// The blocks are rectangles of the GEMM's tiles, usually 64 columns wide (gemm.cpp, epilogue_spans).

namespace pyfastnn {
namespace optim_block {

template <class T>
inline void momentum_block(std::int64_t rows, std::int64_t cols, const T* __restrict g, std::int64_t ld_g,
                           T* __restrict p, T* __restrict vel, std::int64_t ld, const momentum_constants<T>& constants) {
    const momentum_constants<T> k = constants;  // a copy: stores to p and vel cannot change it
    for (std::int64_t r = 0; r < rows; ++r) {
        const T* __restrict gr = g + r * ld_g;
        T* __restrict pr = p + r * ld;
        T* __restrict vr = vel + r * ld;
        for (std::int64_t j = 0; j < cols; ++j) momentum_element(gr[j], pr[j], vr[j], k);
    }
}

template <class T>
inline void adam_block(std::int64_t rows, std::int64_t cols, const T* __restrict g, std::int64_t ld_g,
                       T* __restrict p, T* __restrict m, T* __restrict v, std::int64_t ld,
                       const adam_constants<T>& constants) {
    const adam_constants<T> k = constants;
    for (std::int64_t r = 0; r < rows; ++r) {
        const T* __restrict gr = g + r * ld_g;
        T* __restrict pr = p + r * ld;
        T* __restrict mr = m + r * ld;
        T* __restrict vr = v + r * ld;
        for (std::int64_t j = 0; j < cols; ++j) adam_element(gr[j], pr[j], mr[j], vr[j], k);
    }
}

}  // namespace optim_block
}  // namespace pyfastnn

// Defines NAME_table, a block_steps<T> of the loops above compiled under the including file's target.
#define PYFASTNN_DEFINE_BLOCK_STEPS(T, NAME)                                                                     \
    namespace {                                                                                               \
    __attribute__((flatten)) void NAME##_momentum(std::int64_t rows, std::int64_t cols, const T* g,            \
                                                  std::int64_t ld_g, T* p, T* vel, std::int64_t ld,            \
                                                  const momentum_constants<T>& k) {                            \
        optim_block::momentum_block<T>(rows, cols, g, ld_g, p, vel, ld, k);                                   \
    }                                                                                                         \
    __attribute__((flatten)) void NAME##_adam(std::int64_t rows, std::int64_t cols, const T* g, std::int64_t ld_g, \
                                              T* p, T* m, T* v, std::int64_t ld, const adam_constants<T>& k) {  \
        optim_block::adam_block<T>(rows, cols, g, ld_g, p, m, v, ld, k);                                      \
    }                                                                                                         \
    const block_steps<T> NAME##_table = {NAME##_momentum, NAME##_adam};                                       \
    }
