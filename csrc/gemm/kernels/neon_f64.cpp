// AArch64 Advanced SIMD (NEON) float64 micro-kernel, 8 x 6 tile.
//
// Tile choice: C rows are contiguous, so the vector dimension is N, 2 doubles per q register. 8 x 6 keeps
// 8 x 3 = 24 accumulators, plus 3 registers for the B row and 4 for the 8 values of A (taken by lane by the
// FMAs, `fmla v.2d, vb.2d, va.d[i]`): 31 of the 32 vector registers. Per k step: 7 vector loads (4 of A, 3 of B),
// 24 FMAs; 24 independent accumulators cover the FMA latency x pipes of the Neoverse cores (8 chains on N1,
// 16 on V1). The transposed shape, 6 x 8 (BLIS armv8a dgemm), has the same register and load counts; 8 rows is
// preferred here because it matches the float32 kernel's MR and divides the power-of-two batch sizes that are the
// M of an MLP's forward GEMMs, and 6 columns pad an output layer of 10 classes less (2 tiles, 12 columns) than 8
// (16 columns). (BLIS also ships an 8 x 6 armv8a kernel, for its unpacked "sup" path.)
//
// NEON is part of the AArch64 base ISA: no target pragma, no feature check. Everything but the factory is inside
// `#if defined(__aarch64__)`; elsewhere the factory returns nullptr and the level counts as not compiled.
#include <cstdint>

#include "gemm/kernel.h"

#if defined(__aarch64__)
#include <arm_neon.h>

#include "gemm/direct.h"

namespace pyfastnn {
namespace {

constexpr int mr = 8;
constexpr int nv = 3;     // q registers per tile row
constexpr int lanes = 2;  // doubles per q register
constexpr int nr = nv * lanes;

// acc[v] += b[v] * a[lane], for the nv vectors of one tile row (the lane must be a compile-time constant).
template <int lane>
inline void fma_row(float64x2_t (&acc)[nv], const float64x2_t (&bv)[nv], float64x2_t a) {
#pragma GCC unroll 4
    for (int v = 0; v < nv; ++v) acc[v] = vfmaq_laneq_f64(acc[v], bv[v], a, lane);
}

void ukernel(std::int64_t k, const double* __restrict a, std::int64_t a_step, const double* __restrict b,
             std::int64_t b_step, double* c, std::int64_t rs_c,
             double alpha, double beta) {
    float64x2_t acc[mr][nv];
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) acc[r][v] = vdupq_n_f64(0.0);

    // C is touched only after the k loop; start pulling its lines in now so the store does not wait on memory.
    // A 48-byte tile row can straddle two cache lines: touch its first and last element.
#pragma GCC unroll 32
    for (int r = 0; r < mr; ++r) {
        __builtin_prefetch(c + r * rs_c, 0, 3);
        __builtin_prefetch(c + r * rs_c + nr - 1, 0, 3);
    }

    for (std::int64_t p = 0; p < k; ++p) {
        // Only the start of a packed panel is 64-byte aligned (a k step of B is 48 bytes); vld1q does not care.
        float64x2_t av[mr / lanes];
#pragma GCC unroll 4
        for (int i = 0; i < mr / lanes; ++i) av[i] = vld1q_f64(a + i * lanes);
        float64x2_t bv[nv];
#pragma GCC unroll 4
        for (int v = 0; v < nv; ++v) bv[v] = vld1q_f64(b + v * lanes);
        fma_row<0>(acc[0], bv, av[0]);
        fma_row<1>(acc[1], bv, av[0]);
        fma_row<0>(acc[2], bv, av[1]);
        fma_row<1>(acc[3], bv, av[1]);
        fma_row<0>(acc[4], bv, av[2]);
        fma_row<1>(acc[5], bv, av[2]);
        fma_row<0>(acc[6], bv, av[3]);
        fma_row<1>(acc[7], bv, av[3]);
        a += a_step;
        b += b_step;
    }

    const float64x2_t va = vdupq_n_f64(alpha);
    if (beta == 0.0) {
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) vst1q_f64(c + r * rs_c + v * lanes, vmulq_f64(va, acc[r][v]));
    } else {
        const float64x2_t vb = vdupq_n_f64(beta);
#pragma GCC unroll 32
        for (int r = 0; r < mr; ++r)
#pragma GCC unroll 4
            for (int v = 0; v < nv; ++v) {
                double* cp = c + r * rs_c + v * lanes;
                // beta * C + alpha * acc, the alpha product fused (vfmaq_f64(x, y, z) = x + y * z).
                vst1q_f64(cp, vfmaq_f64(vmulq_f64(vb, vld1q_f64(cp)), va, acc[r][v]));
            }
    }
}

// The unpacked loops of direct.h, vectorised for NEON at the baseline target (AArch64 always has fused
// multiply-add, so __builtin_fma is an instruction, never a libm call).
__attribute__((flatten)) void direct(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
                                     std::int64_t rs_a, std::int64_t cs_a, const double* b, std::int64_t rs_b,
                                     std::int64_t cs_b, double beta, double* c, std::int64_t rs_c, double* work) {
    direct_gemm<double, true>(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, work);
}

// Block sizes for a Neoverse-class core (64 KiB 4-way L1d = 16 KiB per way, 1 MiB private L2), by the same BLIS
// analytical model as float32: the A micro-panel streaming through L1 gets one way, the resident B micro-panel at
// most two. kc = 256: A micro-panel 8 x 256 x 8 B = 16 KiB (one way), B micro-panel 256 x 6 x 8 B = 12 KiB.
// mc = 256: A block 256 x 256 x 8 B = 512 KiB, half of L2. nc = 3072 (512 tiles of 6): B block 256 x 3072 x 8 B
// = 6 MiB, a share of the system-level cache, and wider than most MLP layers so the jc loop is one pass.
const gemm_kernel<double> kernel = {"neon_f64_8x6", mr, nr, /*mc*/ 256, /*kc*/ 256, /*nc*/ 3072, ukernel, direct};

}  // namespace

const gemm_kernel<double>* neon_f64_kernel() { return &kernel; }

}  // namespace pyfastnn

#else

namespace pyfastnn {
const gemm_kernel<double>* neon_f64_kernel() { return nullptr; }
}  // namespace pyfastnn

#endif
