// The first layer on a sparse input (see sparse.h). The vector loops are rowops' (gather_axpy, and the lazy
// optimizer steps gather_adam / gather_momentum), compiled per ISA; this file only arranges the work: which rows
// of E each thread reads or writes.
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

// Slots ahead whose row of E the update prefetches.
constexpr std::int64_t update_prefetch_distance = 2;

int threads_for(std::int64_t work, std::int64_t parts) {
    if (work < sparse_parallel_min) return 1;
    const int t = get_num_threads();
    return parts < t ? int(std::max<std::int64_t>(parts, 1)) : t;
}

// Columns of the table are dealt to the threads of an update by a hash of the column (frequent words, whatever
// their numbers, spread evenly): each thread groups and updates the rows it owns, so none writes another's.
inline int owner_of(std::int32_t col, int nthreads) {
    const std::uint32_t h = std::uint32_t(col) * 2654435761u;  // Knuth's multiplicative hash
    return int((std::uint64_t(h) * std::uint64_t(nthreads)) >> 32);
}

// One thread's share of a batch, grouped by column, in scratch that belongs to the thread and only grows: slot k
// holds column cols[k]; its entries are rows/vals[start[k] .. start[k+1]), in the batch's row order.
template <class T>
struct grouping {
    std::vector<std::int64_t> mine;        // the owned entries (positions in x), in the batch's row order ...
    std::vector<std::int32_t> mine_row;    // ... and their rows in the batch
    std::vector<std::int32_t> entry_slot;  // by owned entry: its slot
    std::vector<std::int32_t> cols;        // by slot: the column (row of E)
    std::vector<std::int64_t> start;       // by slot: its first grouped entry; start[slots] = the owned entries
    std::vector<std::int32_t> rows;        // grouped entries: the batch row ...
    std::vector<T> vals;                   // ... and the value
    std::vector<T> rowbuf;                 // 4 rows of n_out: a gradient and copies of strided rows
    std::int64_t slots = 0;
};

template <class T>
grouping<T>& thread_grouping() {
    thread_local grouping<T> g;
    return g;
}

// The column → slot map of the calling thread's updates: -1 between batches. The threads of one update share
// it, each writing only the entries of the columns it owns.
std::vector<std::int32_t>& slot_map(std::int64_t n_cols) {
    thread_local std::vector<std::int32_t> map;
    if (map.size() < std::size_t(n_cols)) map.resize(std::size_t(n_cols), -1);
    return map;
}

template <class T>
void grow(std::vector<T>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
}

std::int64_t batch_entries(const std::int64_t* indptr, const batch_rows& br) {
    std::int64_t nnz = 0;
    for (std::int64_t r = 0; r < br.count; ++r) nnz += indptr[br[r] + 1] - indptr[br[r]];
    return nnz;
}

// Groups the batch's entries in the columns that thread `tid` of `nthreads` owns (duplicates of a column
// within a row stay separate entries: they add up).
template <class T>
void group_by_column(const csr_view<T>& x, const batch_rows& br, std::int64_t nnz, int tid, int nthreads,
                     std::int32_t* slot_of, grouping<T>& g) {
    grow(g.mine, std::size_t(nnz));
    grow(g.mine_row, std::size_t(nnz));
    std::int64_t* mine = g.mine.data();
    std::int32_t* mine_row = g.mine_row.data();
    // The owned entries, compacted without a branch (ownership is a coin toss per entry).
    std::int64_t owned = 0;
    for (std::int64_t r = 0; r < br.count; ++r) {
        const std::int64_t row = br[r];
        for (std::int64_t p = x.indptr[row]; p < x.indptr[row + 1]; ++p) {
            mine[owned] = p;
            mine_row[owned] = std::int32_t(r);
            owned += nthreads == 1 || owner_of(x.indices[p], nthreads) == tid;
        }
    }
    grow(g.entry_slot, std::size_t(owned));
    grow(g.cols, std::size_t(std::min(owned, x.n_cols)));
    grow(g.start, std::size_t(std::min(owned, x.n_cols) + 1));
    grow(g.rows, std::size_t(owned));
    grow(g.vals, std::size_t(owned));
    std::int32_t* cols = g.cols.data();
    std::int64_t* start = g.start.data();
    std::int32_t* entry_slot = g.entry_slot.data();
    // A slot per new column, counting its entries in start[].
    std::int64_t slots = 0;
    for (std::int64_t q = 0; q < owned; ++q) {
        // Branch-free: about half the entries of a batch open a new slot, in no predictable pattern.
        const std::int32_t c = x.indices[mine[q]];
        const std::int32_t seen = slot_of[c];
        const bool fresh = seen < 0;
        const std::int32_t s = fresh ? std::int32_t(slots) : seen;
        slots += fresh;
        slot_of[c] = s;
        cols[s] = c;
        start[s] = (fresh ? 0 : start[s]) + 1;
        entry_slot[q] = s;
    }
    // Counts → end positions; placing the entries backwards then leaves start[k] at the slot's first entry and
    // keeps each slot's entries in row order.
    std::int64_t run = 0;
    for (std::int64_t s = 0; s < slots; ++s) start[s] = run += start[s];
    start[slots] = owned;
    for (std::int64_t q = owned; q-- > 0;) {
        const std::int64_t pos = --start[entry_slot[q]];
        g.rows[std::size_t(pos)] = mine_row[q];
        g.vals[std::size_t(pos)] = x.data[mine[q]];
    }
    for (std::int64_t s = 0; s < slots; ++s) slot_of[cols[s]] = -1;  // -1 again for the next batch
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
            ops.gather_axpy(count, x.indices + p0, x.data + p0, L.w, n1, n1, c.scale, z, false, true);
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
    const csr_view<T>* x;
    const batch_rows* br;
    std::int64_t nnz;       // the batch's entries
    std::int32_t* slot_of;  // the shared column → slot map
    const T* delta;
    row_step step;
    T alpha;   // the gradient's factor: 1/B, or for plain SGD −η/(B·s), the whole step
    T* dst;    // dw for row_step::gradient, else the weights
    T* state1;  // the velocity (momentum) or the first moment (Adam), else null
    T* state2;  // Adam's second moment, else null
    adam_constants<T> adam;
    momentum_constants<T> momentum;
};

// Prefetches the n elements of row for writing.
template <class T>
inline void prefetch_row(const T* row, std::int64_t n) {
    const char* bytes = reinterpret_cast<const char*>(row);
    for (std::int64_t b = 0; b < n * std::int64_t(sizeof(T)); b += 64) __builtin_prefetch(bytes + b, 1);
}

template <class T>
void update_worker(void* p, const team& t) {
    auto& c = *static_cast<update_ctx<T>*>(p);
    const layer_view<T>& L = *c.L;
    const std::int64_t n1 = L.n_out, n0 = L.n_in;
    grouping<T>& g = thread_grouping<T>();
    group_by_column(*c.x, *c.br, c.nnz, t.tid, t.nthreads, c.slot_of, g);
    const auto& ops = active_rowops<T>();
    grow(g.rowbuf, std::size_t(4 * n1));
    T* grad = g.rowbuf.data();
    T* w_row = grad + n1;
    T* s1_row = grad + 2 * n1;
    T* s2_row = grad + 3 * n1;
    const bool direct = L.table && (c.step == row_step::gradient || c.step == row_step::sgd);
    // Slots in reverse order of first use: the rows the forward pass read last are the likeliest still cached.
    for (std::int64_t k = g.slots; k-- > 0;) {
        if (L.table && k >= update_prefetch_distance) {
            // The rows written a few slots on (E's, and their state's): their cache misses overlap this slot's
            // work. The state of a large table is as cold as the table and not read by the forward pass.
            const std::int64_t ahead = std::int64_t(g.cols[k - update_prefetch_distance]) * n1;
            prefetch_row(L.w + ahead, n1);
            if (c.state1 != nullptr) prefetch_row(c.state1 + ahead, n1);
            if (c.state2 != nullptr) prefetch_row(c.state2 + ahead, n1);
        }
        const std::int64_t j = g.cols[k], q0 = g.start[k], count = g.start[k + 1] - q0;
        const std::int32_t* rows = g.rows.data() + q0;
        const T* vals = g.vals.data() + q0;
        if (direct) {
            // Row j of dE, or of E itself for plain SGD: α·Σ_q x_q Δ[row_q, :] in one pass.
            ops.gather_axpy(count, rows, vals, c.delta, n1, n1, c.alpha, c.dst + j * n1,
                            c.step == row_step::sgd, false);
            continue;
        }
        if (c.step == row_step::gradient || c.step == row_step::sgd) {
            // W's column j (element i at i·n0), from a row of the gradient.
            ops.gather_axpy(count, rows, vals, c.delta, n1, n1, c.alpha, grad, false, false);
            T* col = c.dst + j;
            if (c.step == row_step::gradient) {
                for (std::int64_t i = 0; i < n1; ++i) col[i * n0] = grad[i];
            } else {
                for (std::int64_t i = 0; i < n1; ++i) col[i * n0] += grad[i];
            }
            continue;
        }
        // Momentum or Adam on one row of E with its state: in place for the table, else through copies of the
        // strided columns.
        const bool adam = c.step == row_step::adam;
        T* w = L.w + j * n1;
        T* s1 = c.state1 + j * n1;
        T* s2 = adam ? c.state2 + j * n1 : nullptr;
        if (!L.table) {
            for (std::int64_t i = 0; i < n1; ++i) {
                w_row[i] = L.w[i * n0 + j];
                s1_row[i] = c.state1[i * n0 + j];
                if (adam) s2_row[i] = c.state2[i * n0 + j];
            }
            w = w_row;
            s1 = s1_row;
            s2 = adam ? s2_row : nullptr;
        }
        if (adam) {
            ops.gather_adam(count, rows, vals, c.delta, n1, n1, c.alpha, w, s1, s2, c.adam);
        } else {
            ops.gather_momentum(count, rows, vals, c.delta, n1, n1, c.alpha, w, s1, c.momentum);
        }
        if (!L.table) {
            for (std::int64_t i = 0; i < n1; ++i) {
                L.w[i * n0 + j] = w_row[i];
                c.state1[i * n0 + j] = s1_row[i];
                if (adam) c.state2[i * n0 + j] = s2_row[i];
            }
        }
    }
}

// Runs `step` over the rows of E that the batch uses, each thread grouping and updating the rows it owns.
template <class T>
void update_rows(update_ctx<T>& c, const csr_view<T>& x, const batch_rows& br) {
    c.x = &x;
    c.br = &br;
    c.nnz = batch_entries(x.indptr, br);
    c.slot_of = slot_map(x.n_cols).data();
    parallel_run(threads_for(c.nnz * c.L->n_out, c.nnz), update_worker<T>, &c);
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
    forward_ctx<T> c{&L, &x, &br, scale, z};
    parallel_run(threads_for(batch_entries(x.indptr, br) * L.n_out, br.count), forward_worker<T>, &c);
}

template <class T>
void sparse_weight_gradient(const layer_view<T>& L, const csr_view<T>& x, const batch_rows& br, const T* delta,
                            T* dw) {
    std::fill(dw, dw + L.n_out * L.n_in, T(0));
    update_ctx<T> c{&L, nullptr, nullptr, 0, nullptr, delta, row_step::gradient, T(1) / T(br.count), dw, nullptr,
                    nullptr, {}, {}};
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
        update_ctx<T> c{&L, nullptr, nullptr, 0, nullptr, delta, row_step::sgd, alpha, L.w, nullptr, nullptr, {},
                        {}};
        update_rows(c, x, br);
        return;
    }
    const bool adam = opt.kind == optimizer_kind::adam;
    if (opt.lazy) {
        const row_step step = adam ? row_step::adam : row_step::momentum;
        T* moment2 = adam ? state2 : nullptr;
        update_ctx<T> c{&L, nullptr, nullptr, 0, nullptr, delta, step, inv_rows, L.w, state1, moment2, {}, {}};
        if (adam) {
            c.adam = adam_constants_of<T>(opt.step, opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay);
        } else {
            c.momentum = momentum_constants_of<T>(opt.lr, opt.momentum, opt.nesterov, opt.weight_decay);
        }
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
