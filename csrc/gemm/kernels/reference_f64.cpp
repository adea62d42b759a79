// Reference float64 micro-kernel: portable C++, always built (see gemm/ref_ukernel.h).
#include "gemm/direct.h"
#include "gemm/kernel.h"
#include "gemm/ref_ukernel.h"

namespace pyfastnn {
namespace {

constexpr int mr = 4, nr = 4;  // 8 SSE2 accumulators of two doubles

void ukernel(std::int64_t k, const double* a, std::int64_t a_step, const double* b, std::int64_t b_step, double* c,
             std::int64_t rs_c, double alpha, double beta) {
    reference_ukernel<double, mr, nr>(k, a, a_step, b, b_step, c, rs_c, alpha, beta);
}

void direct(std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a, std::int64_t rs_a,
            std::int64_t cs_a, const double* b, std::int64_t rs_b, std::int64_t cs_b, double beta, double* c,
            std::int64_t rs_c, double* work) {
    direct_gemm<double, false>(m, n, k, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, work);
}

const gemm_kernel<double> kernel = {"reference_f64_4x4", mr, nr, /*mc*/ 128, /*kc*/ 256, /*nc*/ 2048, ukernel, direct};

}  // namespace

const gemm_kernel<double>* reference_f64_kernel() { return &kernel; }

}  // namespace pyfastnn
