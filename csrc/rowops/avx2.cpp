// Row operations compiled for avx2: the portable loops of rowops_impl.h, vectorised by the compiler under this
// file's target. Only the factories below (baseline code) are visible outside this translation unit.
#include "rowops/rowops.h"
#include "rowops/rowops_impl.h"

#if defined(__x86_64__) || defined(_M_X64)

#if defined(__clang__)  // clang has no `#pragma GCC target`; this is its equivalent
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace pyfastnn {
PYFASTNN_DEFINE_ROWOPS(float, avx2_f32)
PYFASTNN_DEFINE_ROWOPS(double, avx2_f64)
}  // namespace pyfastnn
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace pyfastnn {
const rowops<float>* avx2_rowops_f32() { return &avx2_f32_table; }
const rowops<double>* avx2_rowops_f64() { return &avx2_f64_table; }
}  // namespace pyfastnn

#else

namespace pyfastnn {
const rowops<float>* avx2_rowops_f32() { return nullptr; }
const rowops<double>* avx2_rowops_f64() { return nullptr; }
}  // namespace pyfastnn

#endif
