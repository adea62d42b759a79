// Contract between the GEMM loop framework (gemm.cpp) and the per-ISA micro-kernels (kernels/*.cpp).
//
// Portable declarations only: no intrinsics and no target attributes here, so including this header can never
// pull a wide instruction into baseline code. Each kernel translation unit defines its functions with internal
// linkage and exports one descriptor through a factory function declared at the bottom of this file.
#pragma once

#include <cstdint>

namespace pyfastnn {

// Micro-kernel: C[0:MR, 0:NR] = alpha * A_panel * B_panel + beta * C over a full MR x NR tile.
//   a: A micro-panel, k steps of MR contiguous values (column p of op(A), rows i..i+MR), a_step apart: MR when
//      packed, the column stride of op(A) when read in place (A given transposed).
//   b: B micro-panel, k steps of NR contiguous values (row p of op(B), columns j..j+NR), b_step apart: NR when
//      packed (then 64-byte aligned), the row stride of op(B) when read in place. May be unaligned.
//   c: tile origin; row stride rs_c, column stride 1 (C is row-major). May be unaligned.
//   beta == 0 must not read C (it may hold NaN garbage); k == 0 is allowed (C = beta * C).
template <class T>
using ukernel_fn = void (*)(std::int64_t k, const T* a, std::int64_t a_step, const T* b, std::int64_t b_step, T* c,
                            std::int64_t rs_c, T alpha, T beta);

// Unpacked path for small problems: C = alpha * op(A) op(B) + beta * C with general strides
// (op(A)(i, p) = a[i * rs_a + p * cs_a], op(B)(p, j) = b[p * rs_b + j * cs_b], C row-major with row stride rs_c).
// work must hold at least direct_work_size(k) elements (gemm/direct.h).
template <class T>
using direct_fn = void (*)(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t rs_a,
                           std::int64_t cs_a, const T* b, std::int64_t rs_b, std::int64_t cs_b, T beta, T* c,
                           std::int64_t rs_c, T* work);

// One micro-kernel and the block sizes that go with it (the block-size registry is this struct: one entry per
// ISA x dtype, next to the kernel it was tuned for).
template <class T>
struct gemm_kernel {
    const char* name;  // e.g. "avx512_f32_14x32"
    int mr, nr;        // register tile
    int mc, kc, nc;    // cache blocks: A block mc x kc (L2), B block kc x nc (L3), B micro-panel kc x nr (L1)
    ukernel_fn<T> ukernel;
    direct_fn<T> direct;
    // Optional kernel with fewer rows (same NR, block sizes and packing format) for problems of at most
    // small_m_max rows whose MR-row tiles it pads less: 32 rows are 3 tiles of 14 (24% padding) but 4 of 8.
    const gemm_kernel* small_m = nullptr;
    int small_m_max = 0;
};

// Factories, one per kernel translation unit. Each returns nullptr when the kernel is not compiled for this
// architecture (e.g. the x86 kernels on arm64), so the dispatcher can list what is built.
const gemm_kernel<float>* reference_f32_kernel();
const gemm_kernel<double>* reference_f64_kernel();
const gemm_kernel<float>* avx2_f32_kernel();
const gemm_kernel<double>* avx2_f64_kernel();
const gemm_kernel<float>* avx512_f32_kernel();
const gemm_kernel<double>* avx512_f64_kernel();
const gemm_kernel<float>* neon_f32_kernel();
const gemm_kernel<double>* neon_f64_kernel();

}  // namespace pyfastnn
