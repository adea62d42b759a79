// pybind11 module pyfastnn._core: argument checks, GIL release and docstrings only; the math lives elsewhere.
#include <pybind11/pybind11.h>

#ifndef PYFASTNN_VERSION
#define PYFASTNN_VERSION "0.0.0"
#endif

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
    m.doc() = "pyfastnn compiled core";
    m.attr("__version__") = PYFASTNN_VERSION;
}
