// pybind11 module pyfastnn._core: argument checks, GIL release and docstrings only; the math lives elsewhere.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "dispatch.h"
#include "dtype_check.h"
#include "gemm/gemm.h"
#include "threads.h"

#ifndef PYFASTNN_VERSION
#define PYFASTNN_VERSION "0.0.0"
#endif

namespace py = pybind11;

namespace pyfastnn {
namespace {

std::string shape_str(const py::array& x) {
    std::string s = "(";
    for (py::ssize_t d = 0; d < x.ndim(); ++d) {
        if (d) s += ", ";
        s += std::to_string(x.shape(d));
    }
    return s + (x.ndim() == 1 ? ",)" : ")");
}

std::string dtype_str(const py::array& x) { return py::str(x.dtype()).cast<std::string>(); }

// The argument must be a numpy.ndarray itself: converting a list (or anything else) would silently write the
// result into a temporary for `out`, and hide copies for the inputs.
py::array as_array(const py::handle& obj, const char* name) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string("gemm: ") + name + " must be a numpy.ndarray, got " +
                             py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
    return py::reinterpret_borrow<py::array>(obj);
}

void check_matrix(const py::array& x, const char* name) {
    if (x.ndim() != 2)
        throw py::value_error(std::string("gemm: ") + name + " must be 2-D, got " + std::to_string(x.ndim()) +
                              "-D with shape " + shape_str(x));
    if (!(x.flags() & py::array::c_style))
        throw py::value_error(std::string("gemm: ") + name + " must be C-contiguous (row-major); got an array " +
                              "with strides (" + std::to_string(x.strides(0)) + ", " + std::to_string(x.strides(1)) +
                              "); pass numpy.ascontiguousarray(" + name + ")");
}

bool overlaps(const py::array& x, const py::array& y) {
    if (x.nbytes() == 0 || y.nbytes() == 0) return false;
    const auto x0 = reinterpret_cast<std::uintptr_t>(x.data()), y0 = reinterpret_cast<std::uintptr_t>(y.data());
    return x0 < y0 + std::uintptr_t(y.nbytes()) && y0 < x0 + std::uintptr_t(x.nbytes());
}

// A malformed PYFASTNN_GEMM_BLOCKS cannot raise inside the GEMM (it also runs in pool workers), which ignores it:
// the Python entry points of the GEMM say so instead.
void check_blocks_env() {
    if (!blocks_env_error().empty()) throw py::value_error(blocks_env_error());
}

template <class T>
void run_gemm(const py::array& a, const py::array& b, py::array& out, bool trans_a, bool trans_b, std::int64_t m,
              std::int64_t n, std::int64_t k, double alpha, double beta) {
    const T* pa = static_cast<const T*>(a.data());
    const T* pb = static_cast<const T*>(b.data());
    T* pc = static_cast<T*>(out.mutable_data());
    const std::int64_t lda = a.shape(1), ldb = b.shape(1), ldc = out.shape(1);
    py::gil_scoped_release release;
    gemm<T>(trans_a, trans_b, m, n, k, T(alpha), pa, lda, pb, ldb, T(beta), pc, ldc);
}

void gemm_py(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj, bool trans_a, bool trans_b,
             double alpha, double beta) {
    py::array a = as_array(a_obj, "a"), b = as_array(b_obj, "b"), out = as_array(out_obj, "out");
    const bool f32 = same_dtype(out.dtype(), py::dtype::of<float>());
    const bool f64 = same_dtype(out.dtype(), py::dtype::of<double>());
    if (!f32 && !f64)
        throw py::type_error("gemm: out must be float32 or float64, got " + dtype_str(out));
    if (!same_dtype(a.dtype(), out.dtype()) || !same_dtype(b.dtype(), out.dtype()))
        throw py::type_error("gemm: a, b and out must have the same dtype (float32 or float64), got a " +
                             dtype_str(a) + ", b " + dtype_str(b) + ", out " + dtype_str(out));
    check_matrix(a, "a");
    check_matrix(b, "b");
    check_matrix(out, "out");
    if (!out.writeable()) throw py::value_error("gemm: out must be writable, got a read-only array");

    const std::int64_t m = trans_a ? a.shape(1) : a.shape(0), ka = trans_a ? a.shape(0) : a.shape(1);
    const std::int64_t kb = trans_b ? b.shape(1) : b.shape(0), n = trans_b ? b.shape(0) : b.shape(1);
    const std::string op_a = trans_a ? "a.T" : "a", op_b = trans_b ? "b.T" : "b";
    if (ka != kb)
        throw py::value_error("gemm: inner dimensions differ: " + op_a + " is (" + std::to_string(m) + ", " +
                              std::to_string(ka) + ") but " + op_b + " is (" + std::to_string(kb) + ", " +
                              std::to_string(n) + ")");
    if (out.shape(0) != m || out.shape(1) != n)
        throw py::value_error("gemm: out must have shape (" + std::to_string(m) + ", " + std::to_string(n) +
                              ") for " + op_a + " @ " + op_b + ", got " + shape_str(out));
    if (overlaps(out, a) || overlaps(out, b))
        throw py::value_error("gemm: out must not share memory with a or b");

    check_blocks_env();
    if (f32) run_gemm<float>(a, b, out, trans_a, trans_b, m, n, ka, alpha, beta);
    else run_gemm<double>(a, b, out, trans_a, trans_b, m, n, ka, alpha, beta);
}

template <class T>
py::dict kernel_dict(const gemm_kernel<T>& k) {
    py::dict d;
    d["kernel"] = k.name;
    d["mr"] = k.mr;
    d["nr"] = k.nr;
    // The blocks the driver uses (model, override or the kernel's own) and, as measured_*, the kernel's own.
    const resolved_blocks r = kernel_blocks(k);
    d["mc"] = r.blocks.mc;
    d["kc"] = r.blocks.kc;
    d["nc"] = r.blocks.nc;
    d["blocks_source"] = r.source;
    d["measured_blocks"] = py::make_tuple(k.mc, k.kc, k.nc);
    if (k.small_m != nullptr) {
        d["small_m_kernel"] = k.small_m->name;
        d["small_m_max"] = k.small_m_max;
    }
    return d;
}

py::dict cache_dict(const cache_level& c) {
    py::dict d;
    d["size"] = c.size;
    d["ways"] = c.ways;
    d["line"] = c.line;
    d["shared_by"] = c.shared_by;
    return d;
}

cache_level cache_from(const py::object& o, const char* name) {
    cache_level c;
    if (o.is_none()) return c;
    const auto t = o.cast<py::tuple>();
    if (t.size() < 3 || t.size() > 4)
        throw py::value_error(std::string("_gemm_model_blocks: ") + name +
                              " must be (size, ways, line) or (size, ways, line, shared_by)");
    c.size = t[0].cast<std::int64_t>();
    c.ways = t[1].cast<int>();
    c.line = t[2].cast<int>();
    c.shared_by = t.size() == 4 ? t[3].cast<int>() : 1;
    return c;
}

py::dict cpu_info() {
    check_blocks_env();
    const cpu_features& f = detect_cpu();
    py::dict d;
    d["arch"] = f.arch;
    d["vendor"] = f.vendor;
    d["features"] = f.feature_names();
    d["os_avx"] = f.os_avx;
    d["os_avx512"] = f.os_avx512;
    py::list supported, compiled;
    py::dict per_isa;
    for (int i = 0; i < isa_level_count; ++i) {
        const auto level = static_cast<isa_level>(i);
        if (isa_compiled(level)) compiled.append(isa_name(level));
        if (isa_supported(level)) {
            supported.append(isa_name(level));
            const kernel_table& t = kernels_for(level);
            py::dict k;
            k["float32"] = kernel_dict(*t.f32);
            k["float64"] = kernel_dict(*t.f64);
            per_isa[isa_name(level)] = k;
        }
    }
    d["isa_supported"] = supported;
    d["compiled_kernels"] = compiled;
    d["isa"] = isa_name(current_isa());
    const kernel_table& t = active_kernels();
    d["float32"] = kernel_dict(*t.f32);
    d["float64"] = kernel_dict(*t.f64);
    d["kernels"] = per_isa;
    d["num_threads"] = get_num_threads();
    const cache_info& caches = detect_caches();
    py::dict cd;
    cd["source"] = caches.source;
    cd["l1d"] = cache_dict(caches.l1d);
    cd["l2"] = cache_dict(caches.l2);
    cd["l3"] = cache_dict(caches.l3);
    d["caches"] = cd;
    return d;
}

void set_isa_py(const std::string& name) {
    isa_level level;
    if (!parse_isa(name, &level))
        throw py::value_error("set_isa: unknown ISA level '" + name +
                              "'; expected one of reference, avx2, avx512, neon");
    if (!isa_supported(level)) {
        std::string have;
        for (isa_level l : supported_isas()) have += std::string(have.empty() ? "" : ", ") + isa_name(l);
        throw py::value_error("set_isa: ISA level '" + name + "' is not supported on this CPU/build; supported: " +
                              have);
    }
    set_isa(level);
}

}  // namespace
void register_nn(py::module_& m);  // bindings_nn.cpp: the network kernels
}  // namespace pyfastnn

PYBIND11_MODULE(_core, m) {
    using namespace pyfastnn;
    register_nn(m);
    m.doc() = "pyfastnn compiled core";
    m.attr("__version__") = PYFASTNN_VERSION;

    m.def("gemm", &gemm_py, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("trans_a") = false,
          py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
          R"doc(out = alpha * op(a) @ op(b) + beta * out, in place; op(x) = x.T when trans_x.

Parameters
----------
a : ndarray, shape (m, k), or (k, m) when trans_a
b : ndarray, shape (k, n), or (n, k) when trans_b
out : ndarray, shape (m, n)
    Written in place. a, b and out: 2-D, C-contiguous, all float32 or all float64; out writable and not
    sharing memory with a or b. With beta == 0 the old contents of out are never read (NaN is fine).
trans_a, trans_b : bool
alpha, beta : float

Raises TypeError for a non-array or a dtype mismatch, ValueError for a wrong shape, layout or overlap.
The GIL is released during the computation.)doc");
    m.def("cpu_info", &cpu_info,
          "Detected CPU features, OS register support, supported/compiled/active ISA levels and the tile and block "
          "sizes of the kernels (dict).");
    m.def("set_isa", &set_isa_py, py::arg("name"),
          "Select the kernel level: 'reference', 'avx2', 'avx512' (x86-64) or 'neon' (arm64). ValueError if "
          "unknown or unsupported here.");
    m.def("get_isa", [] { return std::string(isa_name(current_isa())); }, "The active kernel level (str).");
    m.def(
        "set_num_threads",
        [](int n) {
            if (n < 1 || n > max_threads)
                throw py::value_error("set_num_threads: n must be between 1 and " + std::to_string(max_threads) +
                                      ", got " + std::to_string(n));
            set_num_threads(n);
        },
        py::arg("n"), "Threads used by the compiled kernels (>= 1).");
    m.def("get_num_threads", &get_num_threads, "Threads used by the compiled kernels.");
    m.def(
        "_thread_stats",
        [] {
            const thread_stats s = get_thread_stats();
            py::dict d;
            d["stalled_regions"] = s.stalled_regions;
            d["serial_regions"] = s.serial_regions;
            d["backoff_ms"] = s.backoff_ms;
            return d;
        },
        "The oversubscription guard's counters: regions where the caller stalled waiting for the other threads, regions it ran on one "
        "thread, current backoff (ms).");

    // The block-size model as a pure function, and the PYFASTNN_GEMM_BLOCKS parser, for tests; not public API.
    m.def(
        "_gemm_model_blocks",
        [](int mr, int nr, int elem_size, py::tuple measured, py::object l1d, py::object l2, py::object l3) {
            cache_info c;
            c.l1d = cache_from(l1d, "l1d");
            c.l2 = cache_from(l2, "l2");
            c.l3 = cache_from(l3, "l3");
            const gemm_blocks b = model_blocks(
                c, mr, nr, elem_size,
                gemm_blocks{measured[0].cast<int>(), measured[1].cast<int>(), measured[2].cast<int>()});
            return py::make_tuple(b.mc, b.kc, b.nc);
        },
        py::arg("mr"), py::arg("nr"), py::arg("elem_size"), py::arg("measured"), py::arg("l1d") = py::none(),
        py::arg("l2") = py::none(), py::arg("l3") = py::none());
    m.def("_parse_gemm_blocks", [](const std::string& text) {
        gemm_blocks b;
        std::string error;
        if (!parse_blocks(text, &b, &error)) throw py::value_error(error);
        return py::make_tuple(b.mc, b.kc, b.nc);
    }, py::arg("text"));
    m.def("_gemm_blocks_error", [] { return blocks_env_error(); },
          "Why PYFASTNN_GEMM_BLOCKS was rejected ('' if unset or valid).");

    // Tuning hooks for benchmarks/bench_gemm.py; not part of the public API.
    m.def("_get_gemm_params", [] {
        const gemm_params p = get_gemm_params();
        py::dict d;
        d["direct_max_work"] = p.direct_max_work;
        d["direct_max_m"] = p.direct_max_m;
        d["parallel_min_work"] = p.parallel_min_work;
        d["small_m_tiles"] = p.small_m_tiles;
        d["inplace_max_k"] = p.inplace_max_k;
        d["mc"] = p.mc;
        d["kc"] = p.kc;
        d["nc"] = p.nc;
        return d;
    });
    m.def(
        "_set_gemm_params",
        [](const py::dict& d) {
            gemm_params p = get_gemm_params();
            for (const auto& item : d) {
                const std::string key = item.first.cast<std::string>();
                const std::int64_t v = item.second.cast<std::int64_t>();
                if ((key == "mc" || key == "kc" || key == "nc") && (v < 0 || v > (1 << 20)))
                    throw py::value_error("_set_gemm_params: " + key + " must be in [0, 2**20], got " +
                                          std::to_string(v));
                if (key == "direct_max_work") p.direct_max_work = v;
                else if (key == "direct_max_m") p.direct_max_m = v;
                else if (key == "parallel_min_work") p.parallel_min_work = v;
                else if (key == "small_m_tiles") p.small_m_tiles = v;
                else if (key == "inplace_max_k") p.inplace_max_k = v;
                else if (key == "mc") p.mc = int(v);
                else if (key == "kc") p.kc = int(v);
                else if (key == "nc") p.nc = int(v);
                else throw py::value_error("_set_gemm_params: unknown key '" + key + "'");
            }
            try {
                set_gemm_params(p);
            } catch (const std::invalid_argument& e) {
                throw py::value_error(e.what());
            }
        },
        py::arg("params"));
}
