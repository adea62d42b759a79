// Row operations for the baseline ISA (always built).
#include "rowops/rowops.h"
#include "rowops/rowops_impl.h"

namespace pyfastnn {
PYFASTNN_DEFINE_ROWOPS(float, ref_f32)
PYFASTNN_DEFINE_ROWOPS(double, ref_f64)
const rowops<float>* reference_rowops_f32() { return &ref_f32_table; }
const rowops<double>* reference_rowops_f64() { return &ref_f64_table; }
}  // namespace pyfastnn
