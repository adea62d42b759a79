#pragma once
// Dtype comparison for the bindings.

#include <pybind11/numpy.h>

namespace pyfastnn {

// The same dtype by value. Dtype objects are not unique (an unpickled float32 array carries a new dtype object), so
// identity alone would reject valid arrays; NumPy's equivalence still tells byte-swapped data apart.
inline bool same_dtype(const pybind11::dtype& a, const pybind11::dtype& b) {
    return a.is(b) || pybind11::detail::npy_api::get().PyArray_EquivTypes_(a.ptr(), b.ptr());
}

}  // namespace pyfastnn
