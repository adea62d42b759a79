// AArch64 Advanced SIMD (NEON) float32 micro-kernel, 8 x 12 tile.
//
// Tile choice: C rows are contiguous, so the vector dimension is N: a tile row is 3 q registers (12 floats). The
// tile keeps 8 x 3 = 24 accumulators, plus 3 registers for the B row and 2 for the 8 values of A (the FMAs take
// their A operand by lane, `fmla v.4s, vb.4s, va.s[i]`, so A needs no broadcast): 29 of the 32 vector registers.
// This is the shape of the BLIS armv8a sgemm kernel (8 x 12). Per k step: 5 vector loads (2 of A, 3 of B),
// 24 FMAs. 24 independent accumulators cover FMA latency x throughput on the Neoverse cores (4 cycles x 2
// pipes on N1 = 8 chains needed, 4 x 4 on V1 = 16), and 5 loads per 24 FMAs is far under their 2-3 loads per cycle.
//
// NEON is part of the AArch64 base ISA, so this translation unit needs no target pragma and the dispatcher no
// feature check. Everything but the factory is inside `#if defined(__aarch64__)`; elsewhere the factory returns
// nullptr, as the x86 kernels' factories do on arm64, so the dispatcher sees the level as not compiled.
#include <cstdint>

#include "gemm/kernel.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include "gemm/direct.h"

namespace pyfastnn {
namespace {

constexpr int mr = 8;
constexpr int nv = 3;     // q registers per tile row
constexpr int lanes = 4;  // floats per q register
constexpr int nr = nv * lanes;

// acc[v] += b[v] * a[lane], for the nv vectors of one tile row (the lane must be a compile-time constant).
template <int lane>
inline void fma_row(float32x4_t (&acc)[nv], const float32x4_t (&bv)[nv], float32x4_t a) {
#pragma GCC unroll 4
    for (int v = 0; v < nv; ++v) acc[v] = vfmaq_laneq_f32(acc[v], bv[v], a, lane);
}

void ukernel(std::int64_t k, const float* __restrict a, std::int64_t a_step, const float* __restrict b,
             std::int64_t b_step, float* c, std::int64_t rs_c,
             float alpha, float beta) {
    float32x4_t acc[mr][nv];
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) acc[r][v] = vdupq_n_f32(0.0f);

    // C is touched only after the k loop; start pulling its lines in now so the store does not wait on memory.
    // A 48-byte tile row can straddle two cache lines: touch its first and last element.
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r) {
        __builtin_prefetch(c + r * rs_c, 0, 3);
        __builtin_prefetch(c + r * rs_c + nr - 1, 0, 3);
    }

    for (std::int64_t p = 0; p < k; ++p) {
        // The packed panels are only guaranteed 64-byte aligned at their start (a k step of B is 48 bytes), which
        // NEON loads do not need: vld1q has no alignment requirement.
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + lanes);
        float32x4_t bv[nv];
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) bv[v] = vld1q_f32(b + v * lanes);
        fma_row<0>(acc[0], bv, a0);
        fma_row<1>(acc[1], bv, a0);
        fma_row<2>(acc[2], bv, a0);
        fma_row<3>(acc[3], bv, a0);
        fma_row<0>(acc[4], bv, a1);
        fma_row<1>(acc[5], bv, a1);
        fma_row<2>(acc[6], bv, a1);
        fma_row<3>(acc[7], bv, a1);
        a += a_step;
        b += b_step;
    }

    const float32x4_t va = vdupq_n_f32(alpha);
    if (beta == 0.0f) {
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) vst1q_f32(c + r * rs_c + v * lanes, vmulq_f32(va, acc[r][v]));
    } else {
        const float32x4_t vb = vdupq_n_f32(beta);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) {
                float* cp = c + r * rs_c + v * lanes;
                // beta * C + alpha * acc, the alpha product fused (vfmaq_f32(x, y, z) = x + y * z).
                vst1q_f32(cp, vfmaq_f32(vmulq_f32(vb, vld1q_f32(cp)), va, acc[r][v]));
            }
    }
}

// The unpacked loops of direct.h, vectorised for NEON at the baseline target; fused multiply-add is always
// present on AArch64 (__builtin_fmaf is one fmadd/fmla, never a libm call).
__attribute__((flatten)) void direct(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                                     std::int64_t rs_a, std::int64_t cs_a, const float* b, std::int64_t rs_b,
                                     std::int64_t cs_b, float beta, float* c, std::int64_t rs_c, float* work) {
    direct_gemm<float, true>(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, work);
}

// Block sizes for a Neoverse-class core (64 KiB 4-way L1d, i.e. 16 KiB per way; 1 MiB private L2), following the
// BLIS analytical model: the B micro-panel stays in L1 while A micro-panels stream through it, so give the A
// micro-panel one way and the B micro-panel at most two. kc = 512: A micro-panel 8 x 512 x 4 B = 16 KiB (one
// way), B micro-panel 512 x 12 x 4 B = 24 KiB (within two). mc = 256: A block 256 x 512 x 4 B = 512 KiB, half
// of L2, the other half for the B micro-panel and C lines passing through. nc = 3072 (256 tiles of 12): B block
// 512 x 3072 x 4 B = 6 MiB, a share of the 32 MiB or larger system-level cache of Neoverse server parts; the
// layer widths of an MLP are rarely above it, so the jc loop is normally one pass.
const gemm_kernel<float> kernel = {"neon_f32_8x12", mr, nr, /*mc*/ 256, /*kc*/ 512, /*nc*/ 3072, ukernel, direct};

}  // namespace

const gemm_kernel<float>* neon_f32_kernel() { return &kernel; }

}  // namespace pyfastnn

#else

namespace pyfastnn {
const gemm_kernel<float>* neon_f32_kernel() { return nullptr; }
}  // namespace pyfastnn

#endif
