// Picks the row operations of the ISA level the dispatcher chose (see dispatch.h), so PYFASTNN_ISA and set_isa
// govern them exactly as they govern the GEMM kernels.
#include "dispatch.h"
#include "rowops/rowops.h"

namespace pyfastnn {

namespace {
template <class T>
const rowops<T>& pick(const rowops<T>* ref, const rowops<T>* avx2, const rowops<T>* avx512) {
    switch (current_isa()) {
        case isa_level::avx512:
            if (avx512 != nullptr) return *avx512;
            [[fallthrough]];
        case isa_level::avx2:
            if (avx2 != nullptr) return *avx2;
            [[fallthrough]];
        default:
            return *ref;
    }
}
}  // namespace

const rowops<float>& active_rowops_f32() {
    return pick<float>(reference_rowops_f32(), avx2_rowops_f32(), avx512_rowops_f32());
}
const rowops<double>& active_rowops_f64() {
    return pick<double>(reference_rowops_f64(), avx2_rowops_f64(), avx512_rowops_f64());
}

}  // namespace pyfastnn
