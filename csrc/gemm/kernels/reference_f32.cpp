// Reference float32 micro-kernel: portable C++, always built (see gemm/ref_ukernel.h).
#include "gemm/direct.h"
#include "gemm/kernel.h"
#include "gemm/ref_ukernel.h"

namespace pyfastnn {
namespace {

constexpr int mr = 4, nr = 8;  // 8 SSE2 accumulators: the widest the baseline target has registers for

void ukernel(std::int64_t k, const float* a, std::int64_t a_step, const float* b, std::int64_t b_step, float* c,
             std::int64_t rs_c, float alpha, float beta) {
    reference_ukernel<float, mr, nr>(k, a, a_step, b, b_step, c, rs_c, alpha, beta);
}

void direct(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a, std::int64_t rs_a,
            std::int64_t cs_a, const float* b, std::int64_t rs_b, std::int64_t cs_b, float beta, float* c,
            std::int64_t rs_c, float* work) {
    direct_gemm<float, false>(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, work);
}

const gemm_kernel<float> kernel = {"reference_f32_4x8", mr, nr, /*mc*/ 128, /*kc*/ 256, /*nc*/ 2048, ukernel, direct};

}  // namespace

const gemm_kernel<float>* reference_f32_kernel() { return &kernel; }

}  // namespace pyfastnn
