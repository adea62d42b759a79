// The dense optimizer steps on a block (optim_block.h) vectorised for AVX: eight floats or four doubles per
// square root and division, twice the baseline's SSE2. The target is "avx2" without "fma" on purpose: with no
// FMA instruction available the compiler cannot contract a·b + c, so every element rounds exactly as in the
// baseline sgd_update / adam_apply (C++ lets GCC contract across statements by default). The AVX-512 level
// uses these too: the steps are bound by division and square-root throughput and by memory, not by width.
#include "optim.h"
#include "optim_block.h"

#if defined(__x86_64__) || defined(_M_X64)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
namespace pyfastnn {
PYFASTNN_DEFINE_BLOCK_STEPS(float, avx_f32)
PYFASTNN_DEFINE_BLOCK_STEPS(double, avx_f64)
}  // namespace pyfastnn
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace pyfastnn {
const block_steps<float>* avx_block_steps_f32() { return &avx_f32_table; }
const block_steps<double>* avx_block_steps_f64() { return &avx_f64_table; }
}  // namespace pyfastnn

#else

namespace pyfastnn {
const block_steps<float>* avx_block_steps_f32() { return nullptr; }
const block_steps<double>* avx_block_steps_f64() { return nullptr; }
}  // namespace pyfastnn

#endif
