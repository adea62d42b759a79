// The first layer on a sparse input (see sparse.h). The vector loops are rowops' gather_axpy, compiled per ISA;
// this file only arranges the work: which rows of E each thread reads or writes.
#include "sparse.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "optim.h"
#include "rowops/rowops.h"
#include "threads.h"

namespace pyfastnn {

namespace {

// Multiply-adds below which a sparse pass stays on one thread (the hand-off to the pool costs a few µs): the
// same threshold as the dense per-sample path's.
constexpr std::int64_t sparse_parallel_min = 64 * 1024;

// Plain SGD's weight-decay scale s (W = s·E) is folded into E once |s| falls below this: E's entries grow as
// 1/s while they are updated, and a fold costs a pass over E, so rarely (e.g. every 9,000 steps at ηλ = 1e-3).
constexpr double renormalise_below = 1e-4;

int threads_for(std::int64_t work, std::int64_t parts) {
    if (work < sparse_parallel_min) return 1;
    const int t = get_num_threads();
    return parts < t ? int(std::max<std::int64_t>(parts, 1)) : t;
}

// The entries of a batch grouped by column, in scratch that belongs to the calling thread and only grows.
template <class T>
struct grouping {
    std::vector<std::int32_t> slot_of;     // by input column: its slot in the batch being grouped, else -1
    std::vector<std::int32_t> cols;        // by slot: the column (row of E)
    std::vector<std::int64_t> start;       // by slot: its first grouped entry; start[slots] = the entries
    std::vector<std::int32_t> entry_slot;  // by entry, in the batch's row order: its slot
    std::vector<std::int32_t> rows;        // grouped entries: the batch row ...
    std::vector<T> vals;                   // ... and the value
    std::vector<T> rowbuf;                 // per thread, 4 rows of n_out: a gradient and gathered strided rows
    std::int64_t slots = 0;
};

template <class T>
grouping<T>& scratch() {
    thread_local grouping<T> g;
    return g;
}

template <class T>
void grow(std::vector<T>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
}

// Groups the batch's entries by column: slot k holds column cols[k], its entries are rows/vals[start[k] ..
// start[k+1]) in the batch's row order (duplicates of a column within a row stay separate entries and add up).
template <class T>
void group_by_column(const csr_view<T>& x, const batch_rows& br, grouping<T>& g) {
    if (g.slot_of.size() < std::size_t(x.n_cols)) g.slot_of.resize(std::size_t(x.n_cols), -1);
    std::int64_t nnz = 0;
    for (std::int64_t r = 0; r < br.count; ++r) nnz += x.indptr[br[r] + 1] - x.indptr[br[r]];
    grow(g.cols, std::size_t(std::min(nnz, x.n_cols)));
    grow(g.start, std::size_t(std::min(nnz, x.n_cols) + 1));
    grow(g.entry_slot, std::size_t(nnz));
    grow(g.rows, std::size_t(nnz));
    grow(g.vals, std::size_t(nnz));
    std::int32_t* slot_of = g.slot_of.data();
    std::int32_t* cols = g.cols.data();
    std::int64_t* start = g.start.data();
    std::int32_t* entry_slot = g.entry_slot.data();
    // Pass 1: a slot per new column, counting its entries in start[].
    std::int64_t slots = 0, e = 0;
    for (std::int64_t r = 0; r < br.count; ++r) {
        const std::int64_t row = br[r];
        for (std::int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p) {
            const std::int32_t c = x.indices[p];
            std::int32_t s = slot_of[c];
            if (s < 0) {
                s = std::int32_t(slots++);
                slot_of[c] = s;
                cols[s] = c;
                start[s] = 0;
            }
            ++start[s];
            entry_slot[e++] = s;
        }
    }
    // Counts → end positions; placing the entries backwards then leaves start[k] at the slot's first entry and
    // keeps each slot's entries in row order.
    std::int64_t run = 0;
    for (std::int64_t s = 0; s < slots; ++s) start[s] = run += start[s];
    start[slots] = nnz;
    for (std::int64_t r = br.count; r-- > 0;) {
        const std::int64_t row = br[r];
        for (std::int64_t p = x.indptr[row + 1]; p-- > x.indptr[row];) {
            const std::int64_t pos = --start[entry_slot[--e]];
            g.rows[std::size_t(pos)] = std::int32_t(r);
            g.vals[std::size_t(pos)] = x.data[p];
        }
    }
    for (std::int64_t s = 0; s < slots; ++s) slot_of[cols[s]] = -1;  // all -1 again for the next batch
    g.slots = slots;
}

// ---- forward ------------------------------------------------------------------------------------------------

template <class T>
struct forward_ctx {
    const layer_view<T>* L;
    const csr_view<T>* x;
    const batch_rows* br;
    T scale;
    T* z;
};

template <class T>
void forward_worker(void* p, const team& t) {
    auto& c = *static_cast<forward_ctx<T>*>(p);
    const layer_view<T>& L = *c.L;
    const csr_view<T>& x = *c.x;
    const std::int64_t n1 = L.n_out, n0 = L.n_in;
    const std::int64_t r0 = c.br->count * t.tid / t.nthreads, r1 = c.br->count * (t.tid + 1) / t.nthreads;
    const auto& ops = active_rowops<T>();
    for (std::int64_t r = r0; r < r1; ++r) {
        const std::int64_t row = (*c.br)[r];
        const std::int64_t p0 = x.indptr[row], count = x.indptr[row + 1] - p0;
        T* z = c.z + r * n1;
        if (L.table) {
            // z = s·Σ_p x_p E[j_p, :]: a sum of contiguous rows of E.
            ops.gather_axpy(count, x.indices + p0, x.data + p0, L.w, n1, n1, c.scale, z, false);
            continue;
        }
        // Rows of W: the same sum reads W's columns, one strided element per output.
        for (std::int64_t k = 0; k < n1; ++k) {
            const T* wk = L.w + k * n0;
            T acc = 0;
            for (std::int64_t q = 0; q < count; ++q) acc += x.data[p0 + q] * wk[x.indices[p0 + q]];
            z[k] = c.scale * acc;
        }
    }
}

// ---- updates of the touched rows ----------------------------------------------------------------------------

enum class row_step { gradient, sgd, momentum, adam };

template <class T>
struct update_ctx {
    const layer_view<T>* L;
    grouping<T>* g;
    const T* delta;
    row_step step;
    T alpha;   // the gradient's factor: 1/B, or for plain SGD −η/(B·s), the whole step
    T* dst;    // dw for row_step::gradient, else the weights
    T* state1;
    T* state2;
    const optimizer_spec<T>* opt;
    adam_constants<T> adam;
};

// Slot k's share of the work is its entries plus one row update: the first slot of thread t's share.
template <class T>
std::int64_t first_slot(const grouping<T>& g, int tid, int nthreads) {
    const std::int64_t total = g.start[g.slots] + g.slots;
    const std::int64_t want = total * tid / nthreads;
    std::int64_t lo = 0, hi = g.slots;  // the first k with start[k] + k >= want
    while (lo < hi) {
        const std::int64_t mid = (lo + hi) / 2;
        if (g.start[mid] + mid < want) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

template <class T>
void update_worker(void* p, const team& t) {
    auto& c = *static_cast<update_ctx<T>*>(p);
    const layer_view<T>& L = *c.L;
    grouping<T>& g = *c.g;
    const std::int64_t n1 = L.n_out, n0 = L.n_in;
    const std::int64_t k0 = first_slot(g, t.tid, t.nthreads), k1 = first_slot(g, t.tid + 1, t.nthreads);
    const auto& ops = active_rowops<T>();
    T* grad = g.rowbuf.data() + std::int64_t(t.tid) * 4 * n1;  // this thread's rows only
    T* w_row = grad + n1;
    T* s1_row = grad + 2 * n1;
    T* s2_row = grad + 3 * n1;
    const bool direct = L.table && (c.step == row_step::gradient || c.step == row_step::sgd);
    for (std::int64_t k = k0; k < k1; ++k) {
        const std::int64_t j = g.cols[k], q0 = g.start[k], count = g.start[k + 1] - q0;
        const std::int32_t* rows = g.rows.data() + q0;
        const T* vals = g.vals.data() + q0;
        if (direct) {
            // Row j of dE, or of E itself for plain SGD: α·Σ_q x_q Δ[row_q, :] in one pass.
            ops.gather_axpy(count, rows, vals, c.delta, n1, n1, c.alpha, c.dst + j * n1,
                            c.step == row_step::sgd);
            continue;
        }
        ops.gather_axpy(count, rows, vals, c.delta, n1, n1, c.alpha, grad, false);
        if (!L.table && (c.step == row_step::gradient || c.step == row_step::sgd)) {
            T* col = c.dst + j;  // W's column j: element k at k·n0
            if (c.step == row_step::gradient) {
                for (std::int64_t i = 0; i < n1; ++i) col[i * n0] = grad[i];
            } else {
                for (std::int64_t i = 0; i < n1; ++i) col[i * n0] += grad[i];
            }
            continue;
        }
        // Momentum or Adam on one row of E with its state: in place for the table, else through copies of the
        // strided columns.
        T* w = L.w + j * n1;
        T* s1 = c.state1 + j * n1;
        T* s2 = c.step == row_step::adam ? c.state2 + j * n1 : nullptr;
        if (!L.table) {
            for (std::int64_t i = 0; i < n1; ++i) {
                w_row[i] = L.w[i * n0 + j];
                s1_row[i] = c.state1[i * n0 + j];
                if (s2 != nullptr) s2_row[i] = c.state2[i * n0 + j];
            }
            w = w_row;
            s1 = s1_row;
            s2 = s2 != nullptr ? s2_row : nullptr;
        }
        if (c.step == row_step::momentum) {
            sgd_update<T>(n1, w, grad, s1, c.opt->lr, c.opt->momentum, c.opt->nesterov, c.opt->weight_decay);
        } else {
            adam_apply<T>(n1, w, grad, s1, s2, c.adam);
        }
        if (!L.table) {
            for (std::int64_t i = 0; i < n1; ++i) {
                L.w[i * n0 + j] = w_row[i];
                c.state1[i * n0 + j] = s1_row[i];
                if (s2 != nullptr) c.state2[i * n0 + j] = s2_row[i];
            }
        }
    }
}

// Groups the batch and runs `step` over the touched rows, split between threads by their share of the work.
template <class T>
void update_rows(update_ctx<T>& c, const csr_view<T>& x, const batch_rows& br) {
    grouping<T>& g = scratch<T>();
    group_by_column(x, br, g);
    const std::int64_t n1 = c.L->n_out;
    const int want = threads_for((g.start[g.slots] + g.slots) * n1, g.slots);
    grow(g.rowbuf, std::size_t(want) * 4 * std::size_t(n1));
    c.g = &g;
    parallel_run(want, update_worker<T>, &c);
}

template <class T>
struct scale_ctx {
    T* w;
    std::int64_t n;
    T factor;
};

template <class T>
void scale_worker(void* p, const team& t) {
    auto& c = *static_cast<scale_ctx<T>*>(p);
    const std::int64_t i0 = c.n * t.tid / t.nthreads, i1 = c.n * (t.tid + 1) / t.nthreads;
    for (std::int64_t i = i0; i < i1; ++i) c.w[i] *= c.factor;
}

// w[0..n) *= factor, split between threads (a table may be hundreds of MB).
template <class T>
void scale_all(T* w, std::int64_t n, T factor) {
    scale_ctx<T> c{w, n, factor};
    parallel_run(threads_for(n, n), scale_worker<T>, &c);
}

}  // namespace

template <class T>
void sparse_forward(const layer_view<T>& L, const csr_view<T>& x, const batch_rows& br, T scale, T* z) {
    std::int64_t nnz = 0;
    for (std::int64_t r = 0; r < br.count; ++r) nnz += x.indptr[br[r] + 1] - x.indptr[br[r]];
    forward_ctx<T> c{&L, &x, &br, scale, z};
    parallel_run(threads_for(nnz * L.n_out, br.count), forward_worker<T>, &c);
}

template <class T>
void sparse_weight_gradient(const layer_view<T>& L, const csr_view<T>& x, const batch_rows& br, const T* delta,
                            T* dw) {
    std::fill(dw, dw + L.n_out * L.n_in, T(0));
    update_ctx<T> c{&L, nullptr, delta, row_step::gradient, T(1) / T(br.count), dw, nullptr, nullptr, nullptr, {}};
    update_rows(c, x, br);
}

template <class T>
void sparse_weight_update(const layer_view<T>& L, const csr_view<T>& x, const batch_rows& br, const T* delta,
                          T* dw, const optimizer_spec<T>& opt, T* state1, T* state2, double* scale) {
    const T inv_rows = T(1) / T(br.count);
    const std::int64_t nw = L.n_out * L.n_in;
    if (opt.kind == optimizer_kind::sgd && opt.momentum == 0.0) {
        // W ← d·W − η·g with W = s·E: s ← d·s, then E's touched rows move by −(η/s)·g. Rounded as the dense
        // path rounds its GEMM's factors, so s stays exactly 1 without weight decay.
        const T eta = T(opt.lr), decay = T(1) - T(opt.lr) * T(opt.weight_decay);
        double s = *scale * double(decay);
        if (std::fabs(s) < renormalise_below) {
            scale_all(L.w, nw, T(s));
            s = 1.0;
        }
        *scale = s;
        const T alpha = s == 1.0 ? -eta * inv_rows : T(double(-eta * inv_rows) / s);
        update_ctx<T> c{&L, nullptr, delta, row_step::sgd, alpha, L.w, nullptr, nullptr, &opt, {}};
        update_rows(c, x, br);
        return;
    }
    const bool adam = opt.kind == optimizer_kind::adam;
    if (opt.lazy) {
        update_ctx<T> c{&L, nullptr, delta, adam ? row_step::adam : row_step::momentum, inv_rows, L.w, state1,
                        state2, &opt, {}};
        if (adam)
            c.adam = adam_constants_of<T>(opt.step, opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay);
        update_rows(c, x, br);
        return;
    }
    // The dense formulas: the whole gradient (zero outside the batch's columns), then the update of every weight.
    sparse_weight_gradient(L, x, br, delta, dw);
    if (adam) {
        adam_update<T>(nw, L.w, dw, state1, state2, opt.step, opt.lr, opt.beta1, opt.beta2, opt.eps,
                       opt.weight_decay);
    } else {
        sgd_update<T>(nw, L.w, dw, state1, opt.lr, opt.momentum, opt.nesterov, opt.weight_decay);
    }
}

template <class T>
void fold_scale(const layer_view<T>& L, double* scale) {
    if (*scale != 1.0) scale_all(L.w, L.n_out * L.n_in, T(*scale));
    *scale = 1.0;
}

#define PYFASTNN_INSTANTIATE(T)                                                                                 \
    template void sparse_forward<T>(const layer_view<T>&, const csr_view<T>&, const batch_rows&, T, T*);      \
    template void sparse_weight_gradient<T>(const layer_view<T>&, const csr_view<T>&, const batch_rows&,      \
                                            const T*, T*);                                                     \
    template void sparse_weight_update<T>(const layer_view<T>&, const csr_view<T>&, const batch_rows&,        \
                                          const T*, T*, const optimizer_spec<T>&, T*, T*, double*);           \
    template void fold_scale<T>(const layer_view<T>&, double*);

PYFASTNN_INSTANTIATE(float)
PYFASTNN_INSTANTIATE(double)
#undef PYFASTNN_INSTANTIATE

}  // namespace pyfastnn
