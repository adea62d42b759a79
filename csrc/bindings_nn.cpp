// Bindings of the network kernels (the kernel contract of pyfastnn/_ref.py): argument checks, GIL release and
// docstrings only. Every array is checked for dtype, layout, shape and writability before any pointer is used,
// so no Python input can make the kernels read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <type_traits>
#include <string>
#include <vector>

#include "activations.h"
#include "dtype_check.h"
#include "mlp.h"
#include "optim.h"

namespace py = pybind11;

namespace pyfastnn {

namespace {

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    if (a.ndim() == 1) s += ",";
    return s + ")";
}

std::string want_str(const std::vector<py::ssize_t>& shape) {
    std::string s = "(";
    std::size_t i = 0;
    for (auto d : shape) {
        if (i++) s += ", ";
        s += d < 0 ? std::string("any") : std::to_string(d);
    }
    if (shape.size() == 1) s += ",";
    return s + ")";
}

std::string type_name(const py::handle& h) { return std::string(py::str(py::type::of(h).attr("__name__"))); }

// The memory order of an array that goes with a layer's weights: C (row-major), or F for the first layer's
// weights stored as an embedding table (the transpose of a C-contiguous table).
enum class layout { c, f };

// Holds references to every array an entry point uses, so none can be freed while the GIL is released.
template <class T>
class arrays {
public:
    // A contiguous array (C order, or F order for layout::f) of dtype U with the given shape (-1: any size; a
    // leading -2: at least `min_rows`).
    template <class U = T>
    U* get(py::handle h, const std::string& what, const std::vector<py::ssize_t>& shape, bool writable,
           py::ssize_t min_rows = 0, layout order = layout::c) {
        if (!py::isinstance<py::array>(h)) throw py::type_error(what + " must be a NumPy array; got " + type_name(h));
        py::array a = py::reinterpret_borrow<py::array>(h);
        if (!same_dtype(a.dtype(), py::dtype::of<U>()))
            throw py::type_error(what + " must have dtype " + std::string(py::str(py::dtype::of<U>())) + "; got " +
                                 std::string(py::str(a.dtype())));
        bool ok = a.ndim() == py::ssize_t(shape.size());
        std::size_t i = 0;
        for (auto d : shape) {
            if (!ok) break;
            const py::ssize_t got = a.shape(py::ssize_t(i));
            if (d == -2) ok = got >= min_rows;
            else if (d >= 0) ok = got == d;
            ++i;
        }
        if (!ok) {
            std::string want = want_str(shape);
            if (min_rows) want += " with at least " + std::to_string(min_rows) + " rows";
            throw py::value_error(what + " must have shape " + want + "; got " + shape_str(a));
        }
        if (order == layout::c && !(a.flags() & py::array::c_style))
            throw py::value_error(what + " must be C-contiguous");
        if (order == layout::f && !(a.flags() & py::array::f_style))
            throw py::value_error(what + " must be F-contiguous (the transpose of a C-contiguous array), in the "
                                  "layout of the weights it goes with");
        if (writable && !a.writeable()) throw py::value_error(what + " must be writable");
        hold(a, what, writable);
        return static_cast<U*>(const_cast<void*>(a.data()));
    }

    // Keeps an array checked elsewhere (contiguous), for refuse_overlap too.
    void hold(const py::array& a, const std::string& what, bool writable) {
        keep_.push_back(a);
        held_.push_back({static_cast<const char*>(a.data()), static_cast<const char*>(a.data()) + a.nbytes(), what,
                         writable});
    }

    // Refuses (ValueError) an array the call writes that shares memory with another of its arrays: a kernel reads
    // and writes its arrays in an order of its own (a GEMM in blocks, a gather before the layers that read the
    // data), so any overlap would give wrong results silently. The arrays are contiguous, so sharing memory is
    // overlapping byte ranges, found by one sort and a sweep rather than by pairs. The Python backends say the
    // same (pyfastnn/_ref.py, _refuse_overlap).
    void refuse_overlap() const {
        std::vector<const held*> order;
        for (const held& h : held_)
            if (h.hi > h.lo) order.push_back(&h);
        std::stable_sort(order.begin(), order.end(), [](const held* a, const held* b) { return a->lo < b->lo; });
        const held *reach = nullptr, *reach_written = nullptr;  // the ranges reaching furthest so far
        for (const held* h : order) {
            const held* other = h->written ? reach : reach_written;
            if (other != nullptr && h->lo < other->hi) {
                const held* first = h->written ? h : other;
                const held* second = h->written ? other : h;
                throw py::value_error(first->what + " overlaps " + second->what + " in memory: the arrays a kernel "
                                      "writes must not share memory with its other arrays");
            }
            if (reach == nullptr || h->hi > reach->hi) reach = h;
            if (h->written && (reach_written == nullptr || h->hi > reach_written->hi)) reach_written = h;
        }
    }

private:
    struct held {
        const char *lo, *hi;
        std::string what;
        bool written;
    };
    std::vector<py::array> keep_;
    std::vector<held> held_;
};

act_kind activation_of(const py::handle& h, const std::string& what) {
    act_kind k;
    if (!py::isinstance<py::str>(h) || !parse_activation(h.cast<std::string>(), &k))
        throw py::value_error("unknown " + what + " " + std::string(py::repr(h)) + "; valid names: " + activation_names());
    return k;
}

loss_kind loss_of(const std::string& name) {
    loss_kind k;
    if (!parse_loss(name, &k)) throw py::value_error("unknown loss '" + name + "'; valid names: " + loss_names());
    return k;
}

bool needs_z(act_kind act, bool ste) { return ste && (act == act_kind::step || act == act_kind::sign); }

// The stable log-softmax / log-sigmoid forms of these two losses read the output pre-activations: without them
// the loss would come from the clipped outputs, silently wrong for confident outputs (120 read as 34.5). Refused
// with the messages of the other backends (`network`: the zs list of backward / train_epoch, else a loss kernel's z).
void require_output_z(loss_kind lk, act_kind act, bool has_z, const std::string& loss, const std::string& act_name,
                      bool network) {
    if (has_z || !((lk == loss_kind::cross_entropy && act == act_kind::softmax) ||
                   (lk == loss_kind::binary_cross_entropy && act == act_kind::sigmoid)))
        return;
    if (network)
        throw py::value_error("zs[-1] must be an array: " + loss + " with " + act_name +
                              " outputs needs the pre-activations");
    throw py::value_error("z is needed for " + loss + " with " + act_name + " outputs");
}

bool is_float64(const py::handle& h, const char* what);

// A sparse x comes as the contract's CSR, a named tuple.
bool is_csr(const py::handle& x) { return py::isinstance<py::tuple>(x); }

// The dtype of a network call: x's for a dense x, else (a CSR) the weights'; the CSR's data must match it.
bool network_is_float64(const py::list& weights, const py::handle& x) {
    if (!is_csr(x) && !py::isinstance<py::array>(x))
        throw py::type_error("x must be a NumPy array or a CSR (indptr, indices, data, n_cols); got " + type_name(x));
    if (!is_csr(x) || weights.size() == 0) return is_float64(x, "x");
    return is_float64(weights[0], "weights[0]");
}

bool is_float64(const py::handle& h, const char* what) {
    if (!py::isinstance<py::array>(h)) throw py::type_error(std::string(what) + " must be a NumPy array");
    py::dtype dt = py::reinterpret_borrow<py::array>(h).dtype();
    if (same_dtype(dt, py::dtype::of<double>())) return true;
    if (same_dtype(dt, py::dtype::of<float>())) return false;
    throw py::type_error(std::string(what) + " must be float32 or float64; got " + std::string(py::str(dt)));
}

py::list as_list(const py::handle& h, const char* what, std::size_t n) {
    if (!py::isinstance<py::list>(h) && !py::isinstance<py::tuple>(h))
        throw py::type_error(std::string(what) + " must be a list");
    py::list l = py::list(py::reinterpret_borrow<py::object>(h));
    if (l.size() != n)
        throw py::value_error(std::string(what) + " must have " + std::to_string(n) + " entries (one per layer); got " +
                              std::to_string(l.size()));
    return l;
}

// Whether a 2-D array is the transpose of a C-contiguous array and not C-contiguous itself (an array with a
// dimension of 1 is both; it is the same memory either way and counts as C).
bool table_layout(const py::array& a) {
    return (a.flags() & py::array::f_style) && !(a.flags() & py::array::c_style);
}

layout layout_of(const py::array& a) { return table_layout(a) ? layout::f : layout::c; }

// The layers from the weights (and biases, if given); checks that the sizes chain.
template <class T>
std::vector<layer_view<T>> layers_of(arrays<T>& keep, const py::list& weights, const py::handle& biases,
                                     const py::list& acts, bool writable) {
    const std::size_t nl = weights.size();
    if (nl == 0) throw py::value_error("a network needs at least one layer of weights");
    if (acts.size() != nl) throw py::value_error("acts must name one activation per layer");
    py::list b = biases.is_none() ? py::list() : as_list(biases, "biases", nl);
    std::vector<layer_view<T>> net(nl);
    for (std::size_t l = 0; l < nl; ++l) {
        const std::string idx = "[" + std::to_string(l) + "]";
        py::handle wh = weights[l];
        if (!py::isinstance<py::array>(wh) || py::reinterpret_borrow<py::array>(wh).ndim() != 2)
            throw py::value_error("weights" + idx + " must be a 2-D array");
        py::array wa = py::reinterpret_borrow<py::array>(wh);
        const py::ssize_t n_out = wa.shape(0), n_in = wa.shape(1);
        if (l > 0 && n_in != net[l - 1].n_out)
            throw py::value_error("weights" + idx + " has " + std::to_string(n_in) + " columns but layer " +
                                  std::to_string(l - 1) + " has " + std::to_string(net[l - 1].n_out) + " outputs");
        if (n_out < 1 || n_in < 1) throw py::value_error("weights" + idx + " must not be empty");
        // The first layer may be stored as an embedding table: weights[0] is then E.T, E C-contiguous (n_in, n_out).
        net[l].table = l == 0 && table_layout(wa);
        if (l == 0 && !net[l].table && !(wa.flags() & py::array::c_style))
            throw py::value_error("weights[0] must be C-contiguous, or the transpose of a C-contiguous (" +
                                  std::to_string(n_in) + ", " + std::to_string(n_out) + ") table");
        net[l].w = keep.get(wh, "weights" + idx, {n_out, n_in}, writable, 0, net[l].table ? layout::f : layout::c);
        net[l].b = biases.is_none() ? nullptr : keep.get(b[l], "biases" + idx, {n_out}, writable);
        net[l].n_out = n_out;
        net[l].n_in = n_in;
        net[l].act = activation_of(acts[l], "activation");
        if (net[l].act == act_kind::softmax && l + 1 < nl)
            throw py::value_error("softmax is only allowed at the output layer");
    }
    return net;
}

// Per-layer buffers with at least `rows` rows; zs entries may be None unless needed.
template <class T>
mlp_buffers<T> buffers_of(arrays<T>& keep, const std::vector<layer_view<T>>& net, const py::handle& outs,
                          const py::handle& zs, const py::handle* deltas, py::ssize_t rows, bool exact, bool ste) {
    const std::size_t nl = net.size();
    py::list lo = as_list(outs, "outs", nl), lz = as_list(zs, "zs", nl);
    py::list ld = deltas ? as_list(*deltas, "deltas", nl) : py::list();
    mlp_buffers<T> buf;
    buf.capacity = rows;
    for (std::size_t l = 0; l < nl; ++l) {
        const std::string idx = "[" + std::to_string(l) + "]";
        const py::ssize_t lead = exact ? rows : -2;
        buf.outs.push_back(keep.get(lo[l], "outs" + idx, {lead, net[l].n_out}, true, rows));
        if (lz[l].is_none()) {
            if (needs_z(net[l].act, ste))
                throw py::value_error("zs" + idx + " must be an array: step/sign layers trained with the "
                                      "straight-through estimator need their pre-activations");
            buf.zs.push_back(nullptr);
        } else {
            buf.zs.push_back(keep.get(lz[l], "zs" + idx, {lead, net[l].n_out}, true, rows));
        }
        if (deltas) buf.deltas.push_back(keep.get(ld[l], "deltas" + idx, {lead, net[l].n_out}, true, rows));
    }
    return buf;
}

// Sample weights: None (null), or a C-contiguous 1-D array of dtype T with one finite weight >= 0 per row.
// Checked here, once, so the kernels may trust them.
template <class T>
const T* sample_weights_of(arrays<T>& keep, const py::object& sw, py::ssize_t rows) {
    if (sw.is_none()) return nullptr;
    const T* p = keep.get(sw, "sw", {rows}, false);
    for (py::ssize_t i = 0; i < rows; ++i)
        if (!(p[i] >= T(0)) || !std::isfinite(p[i]))
            throw py::value_error("sw must hold finite weights >= 0; got sw[" + std::to_string(i) +
                                  "] = " + std::string(py::str(py::float_(double(p[i])))));
    return p;
}

template <class T>
std::vector<T*> grads_of(arrays<T>& keep, const std::vector<layer_view<T>>& net, const py::handle& dw,
                         const py::handle& db) {
    const std::size_t nl = net.size();
    py::list lw = as_list(dw, "dweights", nl), lb = as_list(db, "dbiases", nl);
    std::vector<T*> out;
    for (std::size_t l = 0; l < nl; ++l) {
        const std::string idx = "[" + std::to_string(l) + "]";
        out.push_back(keep.get(lw[l], "dweights" + idx, {net[l].n_out, net[l].n_in}, true, 0,
                               net[l].table ? layout::f : layout::c));
    }
    for (std::size_t l = 0; l < nl; ++l) {
        const std::string idx = "[" + std::to_string(l) + "]";
        out.push_back(keep.get(lb[l], "dbiases" + idx, {net[l].n_out}, true));
    }
    return out;
}

// ---- elementwise entry points --------------------------------------------------------------------------------

template <class T>
void activation_forward_t(const std::string& name, const py::array& z, const py::array& out) {
    arrays<T> keep;
    act_kind act = activation_of(py::str(name), "activation");
    if (z.ndim() != 2) throw py::value_error("z must be 2-D (rows, cols); got " + shape_str(z));
    const py::ssize_t rows = z.shape(0), cols = z.shape(1);
    T* zp = keep.get(z, "z", {rows, cols}, false);
    T* op = keep.get(out, "out", {rows, cols}, true);
    if (act == act_kind::softmax && cols == 0) return;
    if (zp != op) keep.refuse_overlap();  // out may be z itself (the same memory, same shape), nothing else
    py::gil_scoped_release nogil;
    if (zp == op) {
        bias_activation_forward<T>(act, rows, cols, op, cols, nullptr, op, cols);
    } else {
        for (py::ssize_t i = 0; i < rows * cols; ++i) op[i] = zp[i];
        bias_activation_forward<T>(act, rows, cols, op, cols, nullptr, op, cols);
    }
}

template <class T>
void activation_backward_t(const std::string& name, const py::array& a, const py::object& z, const py::array& delta,
                           bool ste) {
    arrays<T> keep;
    act_kind act = activation_of(py::str(name), "activation");
    if (a.ndim() != 2) throw py::value_error("a must be 2-D (rows, cols); got " + shape_str(a));
    const py::ssize_t rows = a.shape(0), cols = a.shape(1);
    T* ap = keep.get(a, "a", {rows, cols}, false);
    T* zp = z.is_none() ? nullptr : keep.get(z, "z", {rows, cols}, false);
    if (zp == nullptr && needs_z(act, ste)) throw py::value_error("z is needed for step/sign with ste=True");
    T* dp = keep.get(delta, "delta", {rows, cols}, true);
    keep.refuse_overlap();
    py::gil_scoped_release nogil;
    activation_backward<T>(act, rows, cols, ap, cols, zp, cols, dp, cols, ste);
}

template <class T>
double loss_t(const std::string& loss, const std::string& act_name, const py::array& a, const py::object& z,
              const py::array& y, const py::object& delta, bool ste, const py::object& sw) {
    arrays<T> keep;
    loss_kind lk = loss_of(loss);
    act_kind act = activation_of(py::str(act_name), "activation");
    if (a.ndim() != 2) throw py::value_error("a must be 2-D (rows, cols); got " + shape_str(a));
    const py::ssize_t rows = a.shape(0), cols = a.shape(1);
    if (act == act_kind::softmax && cols == 0) throw py::value_error("softmax needs at least one column");
    T* ap = keep.get(a, "a", {rows, cols}, false);
    T* zp = z.is_none() ? nullptr : keep.get(z, "z", {rows, cols}, false);
    require_output_z(lk, act, zp != nullptr, loss, act_name, false);
    T* yp = keep.get(y, "y", {rows, cols}, false);
    const T* sp = sample_weights_of<T>(keep, sw, rows);
    if (delta.is_none()) {
        py::gil_scoped_release nogil;
        return loss_value<T>(lk, act, rows, cols, ap, zp, yp, sp, nullptr);
    }
    if (zp == nullptr && needs_z(act, ste)) throw py::value_error("z is needed for step/sign with ste=True");
    T* dp = keep.get(delta, "delta", {rows, cols}, true);
    keep.refuse_overlap();
    py::gil_scoped_release nogil;
    return loss_and_output_delta<T>(lk, act, rows, cols, ap, zp, yp, dp, ste, sp, nullptr);
}

// ---- whole-network entry points ------------------------------------------------------------------------------

// A sparse x: the contract's CSR (indptr int64 (rows + 1,), indices int32 (nnz,), data T (nnz,), n_cols), checked
// entry by entry, so that no index can lead the kernels outside x's arrays or the first layer's weights.
template <class T>
csr_view<T> csr_of(arrays<T>& keep, const py::handle& x, std::int64_t n_in) {
    py::tuple t = py::reinterpret_borrow<py::tuple>(x);
    if (t.size() != 4)
        throw py::type_error("x must be a NumPy array or a CSR (indptr, indices, data, n_cols); got a tuple of " +
                             std::to_string(t.size()) + " items");
    csr_view<T> v{};
    v.indptr = keep.template get<std::int64_t>(t[0], "x.indptr", {-1}, false);
    v.indices = keep.template get<std::int32_t>(t[1], "x.indices", {-1}, false);
    v.data = keep.template get<T>(t[2], "x.data", {-1}, false);
    const py::ssize_t n_ptr = py::reinterpret_borrow<py::array>(t[0]).shape(0);
    const py::ssize_t nnz = py::reinterpret_borrow<py::array>(t[1]).shape(0);
    const py::ssize_t n_data = py::reinterpret_borrow<py::array>(t[2]).shape(0);
    try {
        v.n_cols = t[3].cast<std::int64_t>();
    } catch (const py::cast_error&) {
        throw py::type_error("x.n_cols must be an integer; got " + type_name(t[3]));
    }
    if (v.n_cols != n_in)
        throw py::value_error("x has " + std::to_string(v.n_cols) + " columns but weights[0] takes " +
                              std::to_string(n_in) + " inputs");
    if (n_data != nnz)
        throw py::value_error("x.data has " + std::to_string(n_data) + " entries for " + std::to_string(nnz) +
                              " indices");
    if (n_ptr < 1) throw py::value_error("x.indptr must hold rows + 1 offsets; it is empty");
    v.rows = n_ptr - 1;
    // The kernels number a batch's rows in int32.
    if (v.rows > INT32_MAX) throw py::value_error("x has more than 2**31 - 1 rows: split it");
    if (v.indptr[0] != 0) throw py::value_error("x.indptr must start at 0; got " + std::to_string(v.indptr[0]));
    for (std::int64_t i = 0; i < v.rows; ++i)
        if (v.indptr[i + 1] < v.indptr[i])
            throw py::value_error("x.indptr must not decrease; indptr[" + std::to_string(i + 1) + "] = " +
                                  std::to_string(v.indptr[i + 1]) + " < indptr[" + std::to_string(i) +
                                  "] = " + std::to_string(v.indptr[i]));
    if (v.indptr[v.rows] != nnz)
        throw py::value_error("x.indptr must end at nnz = " + std::to_string(nnz) + "; got " +
                              std::to_string(v.indptr[v.rows]));
    for (py::ssize_t p = 0; p < nnz; ++p)
        if (v.indices[p] < 0 || v.indices[p] >= n_in)
            throw py::value_error("x.indices[" + std::to_string(p) + "] = " + std::to_string(v.indices[p]) +
                                  " is outside 0.." + std::to_string(n_in - 1));
    return v;
}

// Dense x: a C-contiguous (rows, n_in) array of dtype T.
template <class T>
T* dense_x_of(arrays<T>& keep, const py::handle& x, std::int64_t n_in, py::ssize_t* rows) {
    if (!py::isinstance<py::array>(x))
        throw py::type_error("x must be a NumPy array or a CSR (indptr, indices, data, n_cols); got " + type_name(x));
    py::array a = py::reinterpret_borrow<py::array>(x);
    if (a.ndim() != 2) throw py::value_error("x must be 2-D (samples, features); got " + shape_str(a));
    *rows = a.shape(0);
    return keep.get(x, "x", {*rows, n_in}, false);
}

// The input of forward / backward / train_epoch: a dense array (returned; *sx untouched) or a CSR (checked into
// *sx; returns null). *rows: its number of rows.
template <class T>
T* x_of(arrays<T>& keep, const py::handle& x, std::int64_t n_in, py::ssize_t* rows, csr_view<T>* sx) {
    if (is_csr(x)) {
        *sx = csr_of<T>(keep, x, n_in);
        *rows = sx->rows;
        return nullptr;
    }
    return dense_x_of<T>(keep, x, n_in, rows);
}

template <class T>
void forward_t(const py::list& weights, const py::list& biases, const py::list& acts, const py::object& x,
               const py::object& outs, const py::object& zs) {
    arrays<T> keep;
    auto net = layers_of<T>(keep, weights, biases, acts, false);
    py::ssize_t rows = 0;
    csr_view<T> sx{};
    T* xp = x_of<T>(keep, x, net[0].n_in, &rows, &sx);
    const bool sparse = is_csr(x);
    auto buf = buffers_of<T>(keep, net, outs, zs, nullptr, rows, true, false);
    if (rows == 0) return;
    keep.refuse_overlap();
    py::gil_scoped_release nogil;
    mlp_forward<T>(net, xp, sparse ? &sx : nullptr, rows, buf);
}

template <class T>
double backward_t(const py::list& weights, const py::list& acts, const std::string& loss, const py::object& x,
                  const py::array& y, const py::object& outs, const py::object& zs, const py::object& deltas,
                  const py::object& dweights, const py::object& dbiases, bool ste, const py::object& sw) {
    arrays<T> keep;
    auto net = layers_of<T>(keep, weights, py::none(), acts, false);
    loss_kind lk = loss_of(loss);
    py::ssize_t rows = 0;
    csr_view<T> sx{};
    T* xp = x_of<T>(keep, x, net[0].n_in, &rows, &sx);
    const bool sparse = is_csr(x);
    if (rows == 0) throw py::value_error("x has no samples");
    T* yp = keep.get(y, "y", {rows, net.back().n_out}, false);
    const T* sp = sample_weights_of<T>(keep, sw, rows);
    auto buf = buffers_of<T>(keep, net, outs, zs, &deltas, rows, true, ste);
    require_output_z(lk, net.back().act, buf.zs.back() != nullptr, loss, py::str(acts[acts.size() - 1]), true);
    auto grads = grads_of<T>(keep, net, dweights, dbiases);
    const std::size_t nl = net.size();
    std::vector<T*> dw(grads.begin(), grads.begin() + nl), db(grads.begin() + nl, grads.end());
    keep.refuse_overlap();
    py::gil_scoped_release nogil;
    return mlp_backward<T>(net, lk, xp, sparse ? &sx : nullptr, yp, rows, buf, dw, db, ste, sp);
}

std::vector<py::ssize_t> dims_of(const py::handle& h, const std::string& what) {
    if (!py::isinstance<py::array>(h)) throw py::type_error(what + " must be a NumPy array");
    py::array p = py::reinterpret_borrow<py::array>(h);
    if (p.ndim() != 1 && p.ndim() != 2) throw py::value_error(what + " must be 1-D or 2-D; got " + shape_str(p));
    return std::vector<py::ssize_t>(p.shape(), p.shape() + p.ndim());
}

std::int64_t count_of(const std::vector<py::ssize_t>& dims) {
    std::int64_t n = 1;
    for (auto d : dims) n *= d;
    return n;
}

template <class T>
void sgd_update_t(const py::list& params, const py::list& grads, const py::object& velocities, double lr,
                  double momentum, bool nesterov, double weight_decay) {
    arrays<T> keep;
    const std::size_t n = params.size();
    py::list g = as_list(grads, "grads", n);
    py::list v = momentum != 0.0 ? as_list(velocities, "velocities", n) : py::list();
    std::vector<T*> pp, gp, vp;
    std::vector<std::int64_t> sizes;
    for (std::size_t i = 0; i < n; ++i) {
        const std::string idx = "[" + std::to_string(i) + "]";
        const auto dims = dims_of(params[i], "params" + idx);
        const layout order = layout_of(py::reinterpret_borrow<py::array>(params[i]));
        pp.push_back(keep.get(params[i], "params" + idx, dims, true, 0, order));
        gp.push_back(keep.get(g[i], "grads" + idx, dims, false, 0, order));
        vp.push_back(momentum != 0.0 ? keep.get(v[i], "velocities" + idx, dims, true, 0, order) : nullptr);
        sizes.push_back(count_of(dims));
    }
    keep.refuse_overlap();
    py::gil_scoped_release nogil;
    for (std::size_t i = 0; i < n; ++i) sgd_update<T>(sizes[i], pp[i], gp[i], vp[i], lr, momentum, nesterov, weight_decay);
}

template <class T>
void adam_update_t(const py::list& params, const py::list& grads, const py::list& ms, const py::list& vs,
                   std::int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay) {
    arrays<T> keep;
    if (step < 1) throw py::value_error("step counts Adam updates from 1; got " + std::to_string(step));
    const std::size_t n = params.size();
    py::list g = as_list(grads, "grads", n), m = as_list(ms, "ms", n), v = as_list(vs, "vs", n);
    std::vector<T*> pp, gp, mp, vp;
    std::vector<std::int64_t> sizes;
    for (std::size_t i = 0; i < n; ++i) {
        const std::string idx = "[" + std::to_string(i) + "]";
        const auto dims = dims_of(params[i], "params" + idx);
        const layout order = layout_of(py::reinterpret_borrow<py::array>(params[i]));
        pp.push_back(keep.get(params[i], "params" + idx, dims, true, 0, order));
        gp.push_back(keep.get(g[i], "grads" + idx, dims, false, 0, order));
        mp.push_back(keep.get(m[i], "ms" + idx, dims, true, 0, order));
        vp.push_back(keep.get(v[i], "vs" + idx, dims, true, 0, order));
        sizes.push_back(count_of(dims));
    }
    keep.refuse_overlap();
    py::gil_scoped_release nogil;
    for (std::size_t i = 0; i < n; ++i)
        adam_update<T>(sizes[i], pp[i], gp[i], mp[i], vp[i], step, lr, beta1, beta2, eps, weight_decay);
}

// Ctrl-C and progress during a native epoch: Python only notes a signal and runs its handler when the
// interpreter next gets control, which for an epoch run without the GIL used to be its end (many seconds).
// Between batches, at most every signal interval (a clock read otherwise), this takes the GIL back for a
// moment and lets Python run the handlers: one that raises (KeyboardInterrupt) ends the epoch, its exception
// left set in this thread for the caller to throw once it holds the GIL again. Only the main thread runs
// signal handlers; elsewhere the check answers no at once. The interval bounds both the added latency of a
// stop and the cost of retaking the GIL (at most one switch interval, 5 ms, when another thread runs Python).
// With a progress callable, the same moments (at most every progress interval) also call progress(rows done
// so far): the GIL is taken no more often than for the signals, and an exception it raises ends the epoch the
// same way.
class epoch_poll {
public:
    explicit epoch_poll(py::object progress) : progress_(std::move(progress)) {}

    bool operator()(std::int64_t done) {
        const auto now = clock::now();
        if (now - last_signals_ < signal_interval) return false;
        last_signals_ = now;
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) return true;
        if (progress_.is_none() || now - last_progress_ < progress_interval) return false;
        last_progress_ = now;
        try {
            progress_(done);
        } catch (py::error_already_set& e) {
            e.restore();  // the caller throws it again once it holds the GIL
            return true;
        }
        return false;
    }

private:
    using clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds signal_interval{100};
    static constexpr std::chrono::milliseconds progress_interval{200};
    py::object progress_;
    clock::time_point last_signals_ = clock::now();
    clock::time_point last_progress_ = last_signals_;
};

// The optimizer of train_epoch / StepPlan: opt = (kind, lr, momentum, nesterov, weight_decay, beta1, beta2, eps,
// step, state, lazy), its state arrays checked against the layers.
template <class T>
optimizer_spec<T> spec_of(arrays<T>& keep, const py::tuple& opt, const std::vector<layer_view<T>>& net) {
    const std::size_t nl = net.size();
    if (opt.size() != 11)
        throw py::value_error("opt must be (kind, lr, momentum, nesterov, weight_decay, beta1, beta2, eps, step, state, "
                              "lazy); got " + std::to_string(opt.size()) + " items");
    optimizer_spec<T> spec;
    const std::string kind = opt[0].cast<std::string>();
    if (kind == "sgd") spec.kind = optimizer_kind::sgd;
    else if (kind == "adam") spec.kind = optimizer_kind::adam;
    else throw py::value_error("unknown optimizer kind '" + kind + "'; valid: sgd, adam");
    spec.lr = opt[1].cast<double>();
    spec.momentum = opt[2].cast<double>();
    spec.nesterov = opt[3].cast<bool>();
    spec.weight_decay = opt[4].cast<double>();
    spec.beta1 = opt[5].cast<double>();
    spec.beta2 = opt[6].cast<double>();
    spec.eps = opt[7].cast<double>();
    spec.step = opt[8].cast<std::int64_t>();
    spec.lazy = opt[10].cast<bool>();
    const bool stateful = spec.kind == optimizer_kind::adam || spec.momentum != 0.0;
    if (stateful) {
        const std::size_t want = spec.kind == optimizer_kind::adam ? 4 * nl : 2 * nl;
        py::list state = as_list(opt[9], "optimizer state", want);
        for (std::size_t i = 0; i < want; ++i) {
            const std::size_t l = i % nl;
            const bool is_bias = (i / nl) % 2 == 1;
            const std::string what = "optimizer state[" + std::to_string(i) + "]";
            spec.state.push_back(is_bias ? keep.get(state[i], what, {net[l].n_out}, true)
                                         : keep.get(state[i], what, {net[l].n_out, net[l].n_in}, true, 0,
                                                    net[l].table ? layout::f : layout::c));
        }
    }
    return spec;
}

template <class T>
py::tuple train_epoch_t(const py::list& weights, const py::list& biases, const py::list& acts, const std::string& loss,
                        const py::object& x, const py::array& y, const py::object& order, std::int64_t batch,
                        const py::object& outs, const py::object& zs, const py::object& deltas,
                        const py::object& dweights, const py::object& dbiases, const py::object& xbuf,
                        const py::object& ybuf, bool ste, const py::tuple& opt, const py::object& sw,
                        const py::object& progress) {
    if (!progress.is_none() && !PyCallable_Check(progress.ptr()))
        throw py::type_error("progress must be None or a callable progress(rows_done); got " +
                             type_name(progress));
    arrays<T> keep;
    auto net = layers_of<T>(keep, weights, biases, acts, true);
    loss_kind lk = loss_of(loss);
    py::ssize_t n = 0;
    csr_view<T> sx{};
    T* xp = x_of<T>(keep, x, net[0].n_in, &n, &sx);
    const bool sparse = is_csr(x);
    if (n == 0) throw py::value_error("x has no samples");
    if (batch < 1) throw py::value_error("batch must be >= 1; got " + std::to_string(batch));
    const py::ssize_t cap = std::min<py::ssize_t>(batch, n);
    T* yp = keep.get(y, "y", {n, net.back().n_out}, false);
    const T* sp = sample_weights_of<T>(keep, sw, n);
    auto buf = buffers_of<T>(keep, net, outs, zs, &deltas, cap, false, ste);
    require_output_z(lk, net.back().act, buf.zs.back() != nullptr, loss, py::str(acts[acts.size() - 1]), true);
    auto grads = grads_of<T>(keep, net, dweights, dbiases);
    const std::size_t nl = net.size();
    std::vector<T*> dw(grads.begin(), grads.begin() + nl), db(grads.begin() + nl, grads.end());

    const std::int64_t* op = nullptr;
    T *xb = nullptr, *yb = nullptr;
    py::array_t<std::int64_t> order_arr;
    if (!order.is_none()) {
        if (!py::isinstance<py::array_t<std::int64_t>>(order) ||
            !same_dtype(py::reinterpret_borrow<py::array>(order).dtype(), py::dtype::of<std::int64_t>()))
            throw py::type_error("order must be an int64 array of row indices");
        order_arr = py::reinterpret_borrow<py::array_t<std::int64_t>>(order);
        if (order_arr.ndim() != 1 || order_arr.shape(0) != n || !(order_arr.flags() & py::array::c_style))
            throw py::value_error("order must be a contiguous 1-D array of " + std::to_string(n) + " row indices");
        op = order_arr.data();
        keep.hold(order_arr, "order", false);
        for (py::ssize_t i = 0; i < n; ++i)
            if (op[i] < 0 || op[i] >= n)
                throw py::value_error("order[" + std::to_string(i) + "] = " + std::to_string(op[i]) +
                                      " is not a row index in 0.." + std::to_string(n - 1));
        if (!sparse) xb = keep.get(xbuf, "xbuf", {-2, net[0].n_in}, true, cap);  // sparse rows are read in place
        yb = keep.get(ybuf, "ybuf", {-2, net.back().n_out}, true, cap);
    }

    optimizer_spec<T> spec = spec_of<T>(keep, opt, net);
    keep.refuse_overlap();
    epoch_result res;
    {
        epoch_poll poll(progress);
        // A reference: copying the poll (and its Python callable) into the std::function would need the GIL.
        const std::function<bool(std::int64_t)> poll_fn = std::ref(poll);
        py::gil_scoped_release nogil;
        res = mlp_train_epoch<T>(net, lk, xp, sparse ? &sx : nullptr, yp, n, op, batch, buf, dw, db, xb, yb, ste, spec,
                                 sp, poll_fn);
    }
    // The weights are those after the last batch run; the Python caller decides what to keep (fit restores
    // the epoch's start).
    if (res.interrupted) throw py::error_already_set();
    return py::make_tuple(res.loss_sum, res.samples_done, res.bad_batch_start, res.bad_loss);
}

// ---- train_step: a plan bound to one network ----------------------------------------------------------------
//
// net.train_step is called once per batch from Python, so what costs microseconds there is the checking of
// arguments that rarely change, not the arithmetic. A StepPlan checks the network's arrays, its buffers and the
// optimizer once; each step then re-checks only what a caller can change cheaply (the parameter arrays by
// identity, x and y in full) and runs forward, loss, backward and update in one call. Nothing is written before
// the loss is known to be finite and below the caller's limit; the parameters and the optimizer state are
// copied before the update and put back if it leaves any of them not finite (or by undo(), when the caller is
// interrupted before it has recorded the step).

// Outcomes of StepPlan.step, mirrored in pyfastnn/_train_step.py.
enum step_status : int {
    step_done = 0,        // updated (or a batch of weight 0: nothing to do)
    step_bad_loss = 1,    // the loss or the output delta is not finite: nothing written
    step_over_limit = 2,  // the loss exceeds the caller's limit: nothing written
    step_overflow = 3,    // the update left a parameter or state value not finite: undone
    step_unchecked = 4,   // x, y or sw is not in the form this plan takes, or is invalid: nothing written
    step_stale = 5,       // a parameter array is not the one the plan was made for: nothing written
};

// Whether every |v| < 2^e (for e at most the dtype's largest exponent + 1: whether every value is finite), from
// the bits: adding 2^K - (e + bias) to the biased exponent field carries into the sign bit exactly when the field
// reaches e + bias (infinity and NaN have the largest field), and an OR of integers vectorises where a
// floating-point reduction would not (about as fast as a memcpy).
template <class T>
bool below_power_of_two(const T* p, std::int64_t n, int e) {
    using U = typename std::conditional<sizeof(T) == 4, std::uint32_t, std::uint64_t>::type;
    constexpr int mantissa = std::numeric_limits<T>::digits - 1;
    constexpr int exponent_bits = 8 * int(sizeof(T)) - 1 - mantissa;
    constexpr U exponent = ((U(1) << exponent_bits) - 1) << mantissa;
    const U add = ((U(1) << exponent_bits) - U(e + std::numeric_limits<T>::max_exponent - 1)) << mantissa;
    U acc = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        U u;
        std::memcpy(&u, p + i, sizeof u);
        acc |= (u & exponent) + add;
    }
    return (acc >> (8 * sizeof(T) - 1)) == 0;
}

template <class T>
bool finite_values(const T* p, std::int64_t n) {
    return below_power_of_two(p, n, std::numeric_limits<T>::max_exponent);
}

// max |v| over n values as a double, +inf when one is not finite. From the bits: without the sign, they order as
// the magnitudes do (infinity above every finite value, NaN above infinity), and a signed integer max vectorises.
template <class T>
double max_magnitude(const T* p, std::int64_t n) {
    using S = typename std::conditional<sizeof(T) == 4, std::int32_t, std::int64_t>::type;
    constexpr S magnitude = std::numeric_limits<S>::max();
    constexpr int mantissa = std::numeric_limits<T>::digits - 1;
    constexpr S infinity = S(((S(1) << (8 * sizeof(T) - 1 - mantissa)) - 1) << mantissa);
    S top = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        S u;
        std::memcpy(&u, p + i, sizeof u);
        u &= magnitude;
        top = u > top ? u : top;
    }
    if (top >= infinity) return std::numeric_limits<double>::infinity();
    T v;
    std::memcpy(&v, &top, sizeof v);
    return double(v);
}

class step_plan_base {
public:
    virtual ~step_plan_base() = default;
    virtual py::tuple step(const py::handle& weights, const py::handle& biases, const py::handle& x,
                           const py::handle& y, const py::handle& sw, double lr, std::int64_t t, double limit) = 0;
    virtual bool undo() = 0;
};

template <class T>
class step_plan final : public step_plan_base {
public:
    step_plan(const py::list& weights, const py::list& biases, const py::list& acts, const std::string& loss,
              bool ste, const py::tuple& opt, std::int64_t rows, const py::list& outs, const py::list& zs,
              const py::list& deltas, const py::list& dweights, const py::list& dbiases)
        : ste_(ste), rows_(rows) {
        if (rows < 1) throw py::value_error("rows must be >= 1; got " + std::to_string(rows));
        net_ = layers_of<T>(keep_, weights, biases, acts, true);
        lk_ = loss_of(loss);
        const py::object deltas_obj = deltas;
        buf_ = buffers_of<T>(keep_, net_, outs, zs, &deltas_obj, rows, true, ste);
        require_output_z(lk_, net_.back().act, buf_.zs.back() != nullptr, loss, py::str(acts[acts.size() - 1]),
                         true);
        const std::size_t nl = net_.size();
        auto grads = grads_of<T>(keep_, net_, dweights, dbiases);
        dw_.assign(grads.begin(), grads.begin() + nl);
        db_.assign(grads.begin() + nl, grads.end());
        spec_ = spec_of<T>(keep_, opt, net_);
        keep_.refuse_overlap();
        for (std::size_t l = 0; l < nl; ++l) {
            watch(weights[l]);
            watch(biases[l]);
            saved_.push_back({net_[l].w, net_[l].n_out * net_[l].n_in});
            saved_.push_back({net_[l].b, net_[l].n_out});
        }
        for (std::size_t i = 0; i < spec_.state.size(); ++i) {
            const layer_view<T>& L = net_[i % nl];
            saved_.push_back({spec_.state[i], (i / nl) % 2 == 1 ? L.n_out : L.n_out * L.n_in});
        }
        std::int64_t total = 0;
        for (const auto& r : saved_) total += r.n;
        snapshot_.resize(std::size_t(total));
        // Everything a step writes, for the overlap test of x, y and sw.
        for (const auto& r : saved_) written_.push_back({r.p, r.p + r.n});
        for (std::size_t l = 0; l < nl; ++l) {
            const std::int64_t n = rows * net_[l].n_out;
            for (T* p : {buf_.outs[l], buf_.zs[l], buf_.deltas[l]})
                if (p != nullptr) written_.push_back({p, p + n});
            written_.push_back({dw_[l], dw_[l] + net_[l].n_out * net_[l].n_in});
            written_.push_back({db_[l], db_[l] + net_[l].n_out});
        }
        labels_.resize(std::size_t(rows * net_.back().n_out));
        if (spec_.kind == optimizer_kind::sgd && spec_.momentum == 0.0) w_max_.resize(nl);
    }

    py::tuple step(const py::handle& weights, const py::handle& biases, const py::handle& x, const py::handle& y,
                   const py::handle& sw, double lr, std::int64_t t, double limit) override {
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        if (!busy.owns_lock()) throw py::value_error("this StepPlan is already stepping in another thread");
        wrote_ = false;
        if (!same_parameters(weights, biases)) return result(step_stale);
        const std::int64_t n_in = net_.front().n_in, n_out = net_.back().n_out;
        const T* xp = dense(x, 2, n_in);
        if (xp == nullptr || !finite_values(xp, rows_ * n_in)) return result(step_unchecked);
        const T* yp = targets(y);
        if (yp == nullptr) return result(step_unchecked);
        const T* sp = nullptr;
        if (!sw.is_none()) {
            sp = dense(sw, 1, 0);
            if (sp == nullptr) return result(step_unchecked);
            for (std::int64_t i = 0; i < rows_; ++i)
                if (!(sp[i] >= T(0)) || !std::isfinite(sp[i])) return result(step_unchecked);
        }
        (void)n_out;
        if (!(lr > 0) || !std::isfinite(lr)) throw py::value_error("lr must be a finite number > 0");
        spec_.lr = lr;
        spec_.step = t;
        int status = step_done;
        double value = 0, weight = double(rows_);
        bool done = false;
        {
            py::gil_scoped_release nogil;
            if (sp != nullptr) weight = weight_sum(rows_, sp, static_cast<const std::int64_t*>(nullptr));
            if (weight > 0) {
                bool finite = false;
                value = mlp_step_loss<T>(net_, lk_, xp, yp, rows_, buf_, ste_, sp, &finite,
                                         w_max_.empty() ? nullptr : w_max_.data());
                if (!finite) {
                    status = step_bad_loss;
                } else if (value > limit) {
                    status = step_over_limit;
                } else if (sgd_step_stays_finite(xp)) {
                    mlp_step_update<T>(net_, xp, rows_, buf_, dw_, db_, ste_, spec_);
                    done = true;
                } else {
                    save();
                    mlp_step_update<T>(net_, xp, rows_, buf_, dw_, db_, ste_, spec_);
                    if (all_saved_finite()) {
                        done = true;
                    } else {
                        restore();
                        status = step_overflow;
                    }
                }
            }
        }
        return py::make_tuple(status, value, value * weight, done);
    }

    // Puts back the parameters and state of before the last step, if it wrote them; whether it did.
    bool undo() override {
        std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
        if (!busy.owns_lock()) throw py::value_error("this StepPlan is already stepping in another thread");
        if (!wrote_) return false;
        restore();
        return true;
    }

private:
    struct region {
        T* p;
        std::int64_t n;
    };
    struct range {
        const T* lo;
        const T* hi;
    };
    struct watched {
        PyObject* obj;  // borrowed: keep_ holds a reference
        void* data;
        std::int64_t d0, d1;
        int flags;
    };
    static constexpr int tracked_flags = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                                         py::detail::npy_api::NPY_ARRAY_F_CONTIGUOUS_ |
                                         py::detail::npy_api::NPY_ARRAY_WRITEABLE_;

    static watched watch_of(PyObject* obj) {
        auto* p = py::detail::array_proxy(obj);
        return {obj, p->data, p->dimensions[0], p->nd > 1 ? p->dimensions[1] : -1, p->flags & tracked_flags};
    }

    void watch(const py::handle& h) { watched_.push_back(watch_of(h.ptr())); }

    // The same array objects as when the plan was made, still with the same memory, shape, layout and
    // writability: anything else (a replaced or resized array, a list of another length) makes a new plan.
    bool same_parameters(const py::handle& weights, const py::handle& biases) const {
        const std::size_t nl = net_.size();
        if (!PyList_Check(weights.ptr()) || !PyList_Check(biases.ptr()) ||
            std::size_t(PyList_GET_SIZE(weights.ptr())) != nl || std::size_t(PyList_GET_SIZE(biases.ptr())) != nl)
            return false;
        for (std::size_t l = 0; l < nl; ++l) {
            PyObject* now[2] = {PyList_GET_ITEM(weights.ptr(), l), PyList_GET_ITEM(biases.ptr(), l)};
            for (int k = 0; k < 2; ++k) {
                const watched& w = watched_[2 * l + std::size_t(k)];
                if (now[k] != w.obj) return false;
                const watched n = watch_of(now[k]);
                if (n.data != w.data || n.d0 != w.d0 || n.d1 != w.d1 || n.flags != w.flags) return false;
            }
        }
        return true;
    }

    bool overlaps_written(const T* lo, const T* hi) const {
        for (const range& r : written_)
            if (lo < r.hi && r.lo < hi) return true;
        return false;
    }

    // A C-contiguous, aligned array of dtype U with `rows_` rows (and `cols` columns when 2-D) that shares no
    // memory with what the step writes; null otherwise.
    template <class U = T>
    const U* dense(const py::handle& h, int nd, std::int64_t cols) const {
        if (!py::isinstance<py::array>(h)) return nullptr;
        auto* p = py::detail::array_proxy(h.ptr());
        constexpr int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
        if (p->nd != nd || p->dimensions[0] != rows_ || (nd == 2 && p->dimensions[1] != cols) ||
            (p->flags & need) != need)
            return nullptr;
        if (!same_dtype(py::reinterpret_borrow<py::dtype>(p->descr), py::dtype::of<U>())) return nullptr;
        const U* data = static_cast<const U*>(static_cast<void*>(p->data));
        const std::int64_t n = nd == 2 ? rows_ * cols : rows_;
        const T* lo = reinterpret_cast<const T*>(data);
        const T* hi = reinterpret_cast<const T*>(data + n);
        return overlaps_written(lo, hi) ? nullptr : data;
    }

    // The targets: int64 labels (rows,) for cross-entropy, made one-hot here, or (rows, N_L) values of dtype T
    // that the loss accepts (finite; ±1 for hinge, in [0, 1] for binary cross-entropy, >= 0 for cross-entropy).
    const T* targets(const py::handle& y) {
        const std::int64_t m = net_.back().n_out;
        if (lk_ == loss_kind::cross_entropy && m >= 2) {
            if (const std::int64_t* labels = dense<std::int64_t>(y, 1, 0)) {
                for (std::int64_t i = 0; i < rows_; ++i)
                    if (labels[i] < 0 || labels[i] >= m) return nullptr;
                std::fill(labels_.begin(), labels_.end(), T(0));
                for (std::int64_t i = 0; i < rows_; ++i) labels_[std::size_t(i * m + labels[i])] = T(1);
                return labels_.data();
            }
        }
        const T* yp = dense(y, 2, m);
        if (yp == nullptr) return nullptr;
        const std::int64_t n = rows_ * m;
        if (!finite_values(yp, n)) return nullptr;
        for (std::int64_t i = 0; i < n; ++i) {
            const T v = yp[i];
            const bool ok = lk_ == loss_kind::hinge                  ? (v == T(1) || v == T(-1))
                            : lk_ == loss_kind::binary_cross_entropy ? (v >= T(0) && v <= T(1))
                            : lk_ == loss_kind::cross_entropy        ? v >= T(0)
                                                                     : true;
            if (!ok) return nullptr;
        }
        return yp;
    }

    void save() {
        T* dst = snapshot_.data();
        for (const region& r : saved_) {
            std::memcpy(dst, r.p, sizeof(T) * std::size_t(r.n));
            dst += r.n;
        }
        wrote_ = true;
    }

    void restore() {
        const T* src = snapshot_.data();
        for (const region& r : saved_) {
            std::memcpy(r.p, src, sizeof(T) * std::size_t(r.n));
            src += r.n;
        }
        wrote_ = false;
    }

    bool all_saved_finite() const {
        for (const region& r : saved_)
            if (!finite_values(r.p, r.n)) return false;
        return true;
    }

    static py::tuple result(int status) { return py::make_tuple(status, 0.0, 0.0, false); }

    // Whether plain SGD's update of this batch (loss and output delta computed) provably leaves every parameter finite,
    // so that it needs neither the copy before it nor the check after it. Each parameter must be below 2^20 in
    // magnitude (a network with larger weights takes the copy): the forward pass of a small batch found max |W| while
    // it read W for the products (w_max_), other layers take one read of W here. With |σ'| <= 1 for every hidden
    // activation (the straight-through derivatives included), going down from the output delta: |Δ_prev| <=
    // N_out·max|Δ|·2^20, and the new parameters |W'| <= |1 - ηλ|·2^20 + η·max|Δ|·max|A_prev|, |b'| <= 2^20 + η·max|Δ|;
    // every sum of the kernels on the way (B·max|Δ|·max|A_prev| before the scaling by η/B) is bounded alike. Each bound
    // must stay below the dtype's largest value / 1024, a margin far above the rounding of the sums. Momentum and Adam
    // keep the copy (their state would need bounds of its own).
    bool sgd_step_stays_finite(const T* x) const {
        if (spec_.kind != optimizer_kind::sgd || spec_.momentum != 0.0) return false;
        constexpr int e = 20;
        const double w = std::ldexp(1.0, e);
        const double limit = double(std::numeric_limits<T>::max()) / 1024;
        const double eta = double(T(spec_.lr));
        const double decay = 1.0 + eta * double(T(spec_.weight_decay));
        const std::size_t nl = net_.size();
        double delta = max_magnitude(buf_.deltas[nl - 1], rows_ * net_.back().n_out);
        for (std::size_t l = nl; l-- > 0;) {
            const layer_view<T>& L = net_[l];
            const bool w_small = w_max_[l] >= T(0) ? double(w_max_[l]) < w
                                                   : below_power_of_two(L.w, L.n_out * L.n_in, e);
            if (!w_small || !below_power_of_two(L.b, L.n_out, e)) return false;
            const double a = max_magnitude(l == 0 ? x : buf_.outs[l - 1], rows_ * L.n_in);
            if (!(double(rows_) * delta * a < limit && decay * w + eta * delta * a < limit &&
                  w + eta * delta < limit))
                return false;
            if (l > 0) {
                delta = double(L.n_out) * delta * w;
                if (!(delta < limit)) return false;
            }
        }
        return true;
    }

    arrays<T> keep_;
    std::vector<layer_view<T>> net_;
    loss_kind lk_ = loss_kind::squared_error;
    bool ste_;
    std::int64_t rows_;
    mlp_buffers<T> buf_;
    std::vector<T*> dw_, db_;
    optimizer_spec<T> spec_;
    std::vector<watched> watched_;
    std::vector<region> saved_;
    std::vector<range> written_;
    std::vector<T> snapshot_, labels_;
    std::vector<T> w_max_;  // plain SGD: max |W| per layer of the current step's forward pass, or -1 (unmeasured)
    bool wrote_ = false;
    std::mutex busy_;
};

}  // namespace

void register_nn(py::module_& m) {
    using py::arg;
    m.def(
        "activation_forward",
        [](const std::string& name, const py::array& z, const py::array& out) {
            if (is_float64(z, "z")) activation_forward_t<double>(name, z, out);
            else activation_forward_t<float>(name, z, out);
        },
        arg("name"), arg("z"), arg("out"), "out = σ(z) row by row (softmax normalises rows); out may be z.");
    m.def(
        "activation_backward",
        [](const std::string& name, const py::array& a, const py::object& z, const py::array& delta, bool ste) {
            if (is_float64(a, "a")) activation_backward_t<double>(name, a, z, delta, ste);
            else activation_backward_t<float>(name, a, z, delta, ste);
        },
        arg("name"), arg("a"), arg("z"), arg("delta"), arg("ste"), "delta ← Jσᵀ delta in place (σ'(z) ⊙ delta).");
    m.def(
        "loss_and_output_delta",
        [](const std::string& loss, const std::string& act, const py::array& a, const py::object& z, const py::array& y,
           const py::array& delta, bool ste, const py::object& sw) {
            return is_float64(a, "a") ? loss_t<double>(loss, act, a, z, y, delta, ste, sw)
                                      : loss_t<float>(loss, act, a, z, y, delta, ste, sw);
        },
        arg("loss"), arg("act"), arg("a"), arg("z"), arg("y"), arg("delta"), arg("ste"), arg("sw") = py::none(),
        "Batch-mean loss; delta = ∂C_k/∂z^L for every sample. With sample weights sw (one per row): the weighted "
        "mean Σ s_k C_k / Σ s_k, and row k of delta times s_k·B/Σ s (0 and all zeros when Σ s = 0).");
    m.def(
        "loss_value",
        [](const std::string& loss, const std::string& act, const py::array& a, const py::object& z, const py::array& y,
           const py::object& sw) {
            return is_float64(a, "a") ? loss_t<double>(loss, act, a, z, y, py::none(), false, sw)
                                      : loss_t<float>(loss, act, a, z, y, py::none(), false, sw);
        },
        arg("loss"), arg("act"), arg("a"), arg("z"), arg("y"), arg("sw") = py::none(),
        "Batch-mean loss; with sample weights sw (one per row) the weighted mean Σ s_k C_k / Σ s_k (0 when Σ s = 0).");
    m.def(
        "forward",
        [](const py::list& weights, const py::list& biases, const py::list& acts, const py::object& x,
           const py::object& outs, const py::object& zs) {
            if (network_is_float64(weights, x)) forward_t<double>(weights, biases, acts, x, outs, zs);
            else forward_t<float>(weights, biases, acts, x, outs, zs);
        },
        arg("weights"), arg("biases"), arg("acts"), arg("x"), arg("outs"), arg("zs"),
        "Forward pass: outs[l] = σ(A Wᵀ + b); zs[l] keeps Z where it is not None. x: an array (B, N_0) or a CSR "
        "(indptr, indices, data, n_cols); weights[0] C-contiguous or the transpose of a C-contiguous table.");
    m.def(
        "backward",
        [](const py::list& weights, const py::list& acts, const std::string& loss, const py::object& x, const py::array& y,
           const py::object& outs, const py::object& zs, const py::object& deltas, const py::object& dweights,
           const py::object& dbiases, bool ste, const py::object& sw) {
            return network_is_float64(weights, x)
                       ? backward_t<double>(weights, acts, loss, x, y, outs, zs, deltas, dweights, dbiases, ste, sw)
                       : backward_t<float>(weights, acts, loss, x, y, outs, zs, deltas, dweights, dbiases, ste, sw);
        },
        arg("weights"), arg("acts"), arg("loss"), arg("x"), arg("y"), arg("outs"), arg("zs"), arg("deltas"),
        arg("dweights"), arg("dbiases"), arg("ste"), arg("sw") = py::none(),
        "Backpropagation after forward; returns the batch-mean loss. With sample weights sw (one per row of x) the "
        "loss and the gradients are those of the weighted mean. For a sparse x (a CSR) dweights[0] is still the "
        "whole gradient (zero outside the columns x uses), in weights[0]'s layout.");
    m.def(
        "sgd_update",
        [](const py::list& params, const py::list& grads, const py::object& velocities, double lr, double momentum,
           bool nesterov, double weight_decay) {
            if (params.size() == 0) return;
            if (is_float64(params[0], "params[0]")) sgd_update_t<double>(params, grads, velocities, lr, momentum, nesterov, weight_decay);
            else sgd_update_t<float>(params, grads, velocities, lr, momentum, nesterov, weight_decay);
        },
        arg("params"), arg("grads"), arg("velocities"), arg("lr"), arg("momentum"), arg("nesterov"), arg("weight_decay"),
        "p ← p − lr·g with optional (Nesterov) momentum and L2 weight decay, in place.");
    m.def(
        "adam_update",
        [](const py::list& params, const py::list& grads, const py::list& ms, const py::list& vs, std::int64_t step,
           double lr, double beta1, double beta2, double eps, double weight_decay) {
            if (params.size() == 0) return;
            if (is_float64(params[0], "params[0]")) adam_update_t<double>(params, grads, ms, vs, step, lr, beta1, beta2, eps, weight_decay);
            else adam_update_t<float>(params, grads, ms, vs, step, lr, beta1, beta2, eps, weight_decay);
        },
        arg("params"), arg("grads"), arg("ms"), arg("vs"), arg("step"), arg("lr"), arg("beta1"), arg("beta2"), arg("eps"),
        arg("weight_decay"), "Adam update with bias correction, in place.");
    py::class_<step_plan_base>(m, "StepPlan",
                               "One network's train_step, its arrays checked once (see step_plan in bindings_nn.cpp).")
        .def("step", &step_plan_base::step, arg("weights"), arg("biases"), arg("x"), arg("y"), arg("sw"), arg("lr"),
             arg("t"), arg("limit"),
             "One step on (x, y[, sw]) with learning rate lr and Adam step count t; nothing is written when the loss "
             "is not finite or exceeds limit, and an update that leaves a parameter or state value not finite is "
             "undone. Returns (status, loss, loss × weight sum, done); status 0 done, 1 loss not finite, 2 over the "
             "limit, 3 update overflowed (undone), 4 x, y or sw not in this plan's form (unchecked), 5 the "
             "parameter arrays changed (make a new plan).")
        .def("undo", &step_plan_base::undo,
             "Put back the parameters and optimizer state of before the last step, if it wrote them; whether it "
             "did.");
    m.def(
        "step_plan",
        [](const py::list& weights, const py::list& biases, const py::list& acts, const std::string& loss, bool ste,
           const py::tuple& opt, std::int64_t rows, const py::list& outs, const py::list& zs, const py::list& deltas,
           const py::list& dweights, const py::list& dbiases) -> std::unique_ptr<step_plan_base> {
            if (weights.size() == 0) throw py::value_error("a network needs at least one layer of weights");
            if (is_float64(weights[0], "weights[0]"))
                return std::make_unique<step_plan<double>>(weights, biases, acts, loss, ste, opt, rows, outs, zs,
                                                           deltas, dweights, dbiases);
            return std::make_unique<step_plan<float>>(weights, biases, acts, loss, ste, opt, rows, outs, zs, deltas,
                                                      dweights, dbiases);
        },
        arg("weights"), arg("biases"), arg("acts"), arg("loss"), arg("ste"), arg("opt"), arg("rows"), arg("outs"),
        arg("zs"), arg("deltas"), arg("dweights"), arg("dbiases"),
        "A StepPlan: train_epoch's arguments for batches of exactly `rows` rows, checked once.");
    m.def(
        "train_epoch",
        [](const py::list& weights, const py::list& biases, const py::list& acts, const std::string& loss,
           const py::object& x, const py::array& y, const py::object& order, std::int64_t batch, const py::object& outs,
           const py::object& zs, const py::object& deltas, const py::object& dweights, const py::object& dbiases,
           const py::object& xbuf, const py::object& ybuf, bool ste, const py::tuple& opt, const py::object& sw,
           const py::object& progress) {
            return network_is_float64(weights, x)
                       ? train_epoch_t<double>(weights, biases, acts, loss, x, y, order, batch, outs, zs, deltas, dweights,
                                               dbiases, xbuf, ybuf, ste, opt, sw, progress)
                       : train_epoch_t<float>(weights, biases, acts, loss, x, y, order, batch, outs, zs, deltas, dweights,
                                              dbiases, xbuf, ybuf, ste, opt, sw, progress);
        },
        arg("weights"), arg("biases"), arg("acts"), arg("loss"), arg("x"), arg("y"), arg("order"), arg("batch"),
        arg("outs"), arg("zs"), arg("deltas"), arg("dweights"), arg("dbiases"), arg("xbuf"), arg("ybuf"), arg("ste"),
        arg("opt"), arg("sw") = py::none(), arg("progress") = py::none(),
        "One epoch of mini-batch training in native code; returns (loss_sum, samples_done, bad_batch_start, bad_loss). "
        "With sample weights sw (one per row of x, gathered through order) each batch minimises its weighted-mean loss, "
        "loss_sum is Σ batch loss × batch weight sum, and a batch of weight sum 0 is skipped (no update at all). A sparse "
        "x (a CSR) is read through order in place (xbuf unused); its first layer moves only the rows of the table "
        "the batch uses (exactly the dense update for plain SGD; lazy momentum / Adam when opt's lazy is true). Signals "
        "are handled between batches (every 100 ms at most): Ctrl-C raises KeyboardInterrupt within about a batch, "
        "the weights and optimizer state then being those after the last batch run. progress (None or a callable) is "
        "called between batches, every 200 ms at most, with the rows of x gone through so far; an exception it raises "
        "ends the epoch like Ctrl-C.");
    // For tests and benchmarks/bench_fused_optimizers.py; not part of the public API.
    m.def(
        "_fused_optimizer_steps",
        [](const py::object& on) {
            const bool was = fused_optimizer_steps();
            if (!on.is_none()) set_fused_optimizer_steps(on.cast<bool>());
            return was;
        },
        arg("on") = py::none(),
        "Whether train_epoch runs momentum / Adam on dense layers inside the weight-gradient GEMM (True, the "
        "default) or as a second pass (False); sets it when `on` is given. Returns the previous setting.");
}

}  // namespace pyfastnn
