// The whole network (see mlp.h): forward, backward and training epochs over all layers, built from the GEMM
// driver and the elementwise kernels (the first layer on sparse rows: sparse.cpp). No allocation per batch: every
// buffer belongs to the caller, and the few scratch arrays are per thread and only grow.
#include "mlp.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "gemm/gemm.h"
#include "optim.h"
#include "rowops/rowops.h"
#include "sparse.h"
#include "threads.h"

namespace pyfastnn {

namespace {

std::atomic<bool> g_fused_steps{true};

// The per-sample path splits a layer's rows of W between the threads when W is big enough to pay for the
// hand-off (a few µs): each thread then keeps touching the same half of W, forward and backward.
constexpr std::int64_t per_sample_parallel_min = 64 * 1024;  // elements of W

// Batches up to this size skip the packed GEMM (whose packing of W would cost as much as the arithmetic): the
// forward pass and the plain-SGD backward pass run on the row kernels, one pass over W each, split across
// threads by rows (or columns) of W.
constexpr std::int64_t small_batch_max = 8;
// The fused one-pass backward keeps `rows` rows of Δ_prev and of the inputs streaming next to each row of W;
// past 4 rows that traffic outweighs the GEMMs' (measured on M and L: rows 2-4 gain 1.2-2.3x over the GEMM
// path, 8 rows lose).
constexpr std::int64_t rank_k_max = 4;

inline void split_rows(std::int64_t n, int tid, int nthreads, std::int64_t* r0, std::int64_t* r1) {
    *r0 = n * tid / nthreads;
    *r1 = n * (tid + 1) / nthreads;
}

inline int per_sample_threads(std::int64_t n_out, std::int64_t n_in) {
    if (n_out * n_in < per_sample_parallel_min) return 1;
    const int t = get_num_threads();
    return t < int(n_out) ? t : int(n_out);
}

template <class T>
struct small_fwd_ctx {
    const layer_view<T>* L;
    const T* x;
    std::int64_t rows;
    T* z;
    T* top;  // null, or one slot per thread for the largest |W| of its rows (small_batch_forward_max)
};

template <class T>
void small_fwd_worker(void* p, const team& t) {
    auto& c = *static_cast<small_fwd_ctx<T>*>(p);
    const layer_view<T>& L = *c.L;
    std::int64_t r0, r1;
    split_rows(L.n_out, t.tid, t.nthreads, &r0, &r1);
    const rowops<T>& ops = active_rowops<T>();
    if (c.top != nullptr) {
        c.top[t.tid] = ops.small_batch_forward_max(c.rows, r1 - r0, L.n_in, L.w + r0 * L.n_in, L.b + r0, c.x,
                                                   c.z + r0, L.n_out);
    } else {
        ops.small_batch_forward(c.rows, r1 - r0, L.n_in, L.w + r0 * L.n_in, L.b + r0, c.x, c.z + r0, L.n_out);
    }
}

// Z = X Wᵀ + b for a batch of at most small_batch_max rows, W's rows split between the threads; with w_max, also
// *w_max = max |W| (+inf or NaN when a weight is not finite), found in the same pass.
template <class T>
void small_batch_forward(const layer_view<T>& L, const T* x, std::int64_t rows, T* z, T* w_max = nullptr) {
    const int threads = per_sample_threads(L.n_out, L.n_in);
    T tops[max_threads];
    if (w_max != nullptr) std::fill(tops, tops + threads, T(0));  // a slot no thread ran for stays 0
    small_fwd_ctx<T> c{&L, x, rows, z, w_max != nullptr ? tops : nullptr};
    parallel_run(threads, small_fwd_worker<T>, &c);
    if (w_max == nullptr) return;
    T m = 0;
    for (int i = 0; i < threads; ++i)
        if (std::isnan(tops[i]) || tops[i] > m) m = tops[i];  // NaN stays: nothing compares above it
    *w_max = m;
}

// The same for a first layer stored as a table E = Wᵀ: threads split E's columns (W's rows), in whole vectors.
template <class T>
void table_fwd_worker(void* p, const team& t) {
    auto& c = *static_cast<small_fwd_ctx<T>*>(p);
    const layer_view<T>& L = *c.L;
    constexpr std::int64_t lanes = 32 / sizeof(T);
    const std::int64_t vectors = (L.n_out + lanes - 1) / lanes;
    const std::int64_t c0 = std::min(L.n_out, vectors * t.tid / t.nthreads * lanes);
    const std::int64_t c1 = std::min(L.n_out, vectors * (t.tid + 1) / t.nthreads * lanes);
    active_rowops<T>().table_small_forward(c.rows, L.n_in, c1 - c0, L.w + c0, L.n_out, c.x, c.z + c0, L.n_out);
}

template <class T>
void table_small_batch_forward(const layer_view<T>& L, const T* x, std::int64_t rows, T* z) {
    small_fwd_ctx<T> c{&L, x, rows, z, nullptr};
    parallel_run(per_sample_threads(L.n_out, L.n_in), table_fwd_worker<T>, &c);
}

template <class T>
struct table_rank_k_ctx {
    const layer_view<T>* L;
    std::int64_t rows;
    const T* delta;
    const T* a;
    T eta, decay;
};

template <class T>
void table_rank_k_worker(void* p, const team& t) {
    auto& c = *static_cast<table_rank_k_ctx<T>*>(p);
    const layer_view<T>& L = *c.L;
    std::int64_t j0, j1;
    split_rows(L.n_in, t.tid, t.nthreads, &j0, &j1);
    active_rowops<T>().table_rank_k(c.rows, j1 - j0, L.n_out, L.w + j0 * L.n_out, c.a + j0, L.n_in, c.delta, c.eta,
                                    c.decay);
}

// Plain SGD on a table-layout first layer for a small batch: E ← decay·E − eta·A_prevᵀ Δ in one pass over E,
// threads splitting E's rows (no Δ_prev: nothing is below the first layer).
template <class T>
void table_rank_k_update(const layer_view<T>& L, std::int64_t rows, const T* delta, const T* a, T eta, T decay) {
    table_rank_k_ctx<T> c{&L, rows, delta, a, eta, decay};
    parallel_run(per_sample_threads(L.n_out, L.n_in), table_rank_k_worker<T>, &c);
}

template <class T>
struct dprev_ctx {
    const layer_view<T>* L;
    const T* delta;
    std::int64_t rows;
    T* delta_prev;
};

template <class T>
void dprev_worker(void* p, const team& t) {
    auto& c = *static_cast<dprev_ctx<T>*>(p);
    const layer_view<T>& L = *c.L;
    std::int64_t c0, c1;
    split_rows(L.n_in, t.tid, t.nthreads, &c0, &c1);
    // A column slice of Δ_prev = Δ W: W's columns c0..c1 with W's row stride. Inside a worker the GEMM runs on
    // one thread (the pool is taken), which is the point: the split is here.
    gemm<T>(false, false, c.rows, c1 - c0, L.n_out, T(1), c.delta, L.n_out, L.w + c0, L.n_in, T(0),
            c.delta_prev + c0, L.n_in);
}

template <class T>
struct rank_k_ctx {
    const layer_view<T>* L;
    std::int64_t rows;
    const T* delta;
    const T* a;
    T eta, decay;
    T* delta_prev;  // null for the first layer
    T* partial;     // (threads - 1) x rows x n_in: the other threads' shares of delta_prev
    int used;
};

template <class T>
void rank_k_worker(void* p, const team& t) {
    auto& c = *static_cast<rank_k_ctx<T>*>(p);
    const layer_view<T>& L = *c.L;
    std::int64_t r0, r1;
    split_rows(L.n_out, t.tid, t.nthreads, &r0, &r1);
    T* dp = nullptr;
    if (c.delta_prev != nullptr) {
        dp = t.tid == 0 ? c.delta_prev : c.partial + (t.tid - 1) * c.rows * L.n_in;
        std::fill(dp, dp + c.rows * L.n_in, T(0));
    }
    active_rowops<T>().rank_k_step(c.rows, r1 - r0, L.n_in, L.w + r0 * L.n_in, L.b + r0, c.delta + r0, L.n_out,
                                   c.a, c.eta, c.decay, dp);
    if (t.tid == 0) c.used = t.nthreads;
}

// Plain SGD on a small batch: one pass over W both propagates Δ (with the old W) and applies the rank-k update,
// so W streams through the cache once instead of three times (forward packing aside); rows of W split between
// threads, whose partial Δ W are summed afterwards.
template <class T>
void rank_k_update(const layer_view<T>& L, std::int64_t rows, const T* delta, const T* a, T eta, T decay,
                   T* delta_prev) {
    thread_local std::vector<T> partial;
    const int want = per_sample_threads(L.n_out, L.n_in);
    const std::size_t need = std::size_t((want - 1) * rows * L.n_in);
    if (delta_prev != nullptr && partial.size() < need) partial.resize(need);  // grows once, then reused
    rank_k_ctx<T> c{&L, rows, delta, a, eta, decay, delta_prev, partial.data(), 1};
    parallel_run(want, rank_k_worker<T>, &c);
    if (delta_prev == nullptr) return;
    const std::int64_t n = rows * L.n_in;
    for (int t = 1; t < c.used; ++t) {
        const T* src = c.partial + (t - 1) * n;
        for (std::int64_t j = 0; j < n; ++j) delta_prev[j] += src[j];
    }
}

// Z = A_prev Wᵀ (+ b, σ): one GEMM with W read transposed in place (a table E = Wᵀ as it is), then the bias +
// activation pass; small batches take the row kernels. With w_max: *w_max = max |W| where the row kernel finds it
// on its way (small batches, C layout), else -1 (not measured).
template <class T>
void layer_forward(const layer_view<T>& L, const T* a_prev, std::int64_t rows, T* z, T* out, T* w_max = nullptr) {
    T* target = z != nullptr ? z : out;
    if (w_max != nullptr) *w_max = T(-1);
    if (rows <= small_batch_max) {
        // The row kernel adds the bias itself; the table's leaves it to the activation pass.
        if (L.table) {
            table_small_batch_forward(L, a_prev, rows, target);
        } else {
            small_batch_forward(L, a_prev, rows, target, w_max);
        }
        bias_activation_forward<T>(L.act, rows, L.n_out, target, L.n_out, L.table ? L.b : nullptr, out, L.n_out);
        return;
    }
    if (L.table) {
        gemm<T>(false, false, rows, L.n_out, L.n_in, T(1), a_prev, L.n_in, L.w, L.n_out, T(0), target, L.n_out);
    } else {
        gemm<T>(false, true, rows, L.n_out, L.n_in, T(1), a_prev, L.n_in, L.w, L.n_in, T(0), target, L.n_out);
    }
    bias_activation_forward(L.act, rows, L.n_out, target, L.n_out, L.b, out, L.n_out);
}

// dst ← beta·dst + alpha·Δᵀ A_prev in the layer's layout (a table gets alpha·A_prevᵀ Δ): with alpha = 1/B and
// beta = 0 the weight gradient, with alpha = −η/B and beta = 1 − ηλ the whole plain-SGD step in one GEMM. With an
// epilogue (ep) dst is scratch and the gradient goes to ep block by block instead (fused_step below).
template <class T>
void weight_gemm(const layer_view<T>& L, std::int64_t rows, const T* delta, const T* a_prev, T alpha, T beta,
                 T* dst, const gemm_epilogue<T>* ep = nullptr) {
    if (L.table) {
        gemm<T>(true, false, L.n_in, L.n_out, rows, alpha, a_prev, L.n_in, delta, L.n_out, beta, dst, L.n_out, ep);
    } else {
        gemm<T>(true, false, L.n_out, L.n_in, rows, alpha, delta, L.n_out, a_prev, L.n_in, beta, dst, L.n_in, ep);
    }
}

// SGD with momentum or Adam on a layer's weights, run as the weight-gradient GEMM's epilogue: each block of ∂C/∂W
// is applied to the same block of W and of its state right after the GEMM's thread stored it (still in L2), so
// the gradient is not read back from memory in a second pass over all of W, ∂C/∂W and the state, and the step is
// split between the GEMM's threads. Formulas and rounding are sgd_update's and adam_apply's (optim.h).
template <class T>
struct fused_step {
    T* w;
    T* s1;  // velocity, or Adam's first moments
    T* s2;  // Adam's second moments (null for momentum)
    std::int64_t ld;  // row stride of W and its state: the GEMM's C (the table layout for a table)
    const block_steps<T>* steps;
    momentum_constants<T> mk;
    adam_constants<T> ak;

    static void momentum(void* ctx, std::int64_t i0, std::int64_t j0, std::int64_t rows, std::int64_t cols,
                         const T* g, std::int64_t ld_g) {
        const auto& f = *static_cast<const fused_step*>(ctx);
        const std::int64_t at = i0 * f.ld + j0;
        f.steps->momentum(rows, cols, g, ld_g, f.w + at, f.s1 + at, f.ld, f.mk);
    }
    static void adam(void* ctx, std::int64_t i0, std::int64_t j0, std::int64_t rows, std::int64_t cols,
                     const T* g, std::int64_t ld_g) {
        const auto& f = *static_cast<const fused_step*>(ctx);
        const std::int64_t at = i0 * f.ld + j0;
        f.steps->adam(rows, cols, g, ld_g, f.w + at, f.s1 + at, f.s2 + at, f.ld, f.ak);
    }
};

// Weight gradient (into dw) and the momentum or Adam step of layer l in one GEMM.
template <class T>
void fused_weight_update(const layer_view<T>& L, std::size_t l, std::size_t nl, std::int64_t rows, const T* delta,
                         const T* a_prev, T inv_rows, T* dw, const optimizer_spec<T>& opt) {
    fused_step<T> f{};
    f.w = L.w;
    f.ld = L.table ? L.n_out : L.n_in;
    f.steps = &active_block_steps<T>();
    gemm_epilogue<T> ep{};
    ep.ctx = &f;
    if (opt.kind == optimizer_kind::sgd) {
        f.s1 = opt.state[l];
        f.mk = momentum_constants_of<T>(opt.lr, opt.momentum, opt.nesterov, opt.weight_decay);
        ep.fn = &fused_step<T>::momentum;
    } else {
        f.s1 = opt.state[l];
        f.s2 = opt.state[2 * nl + l];
        f.ak = adam_constants_of<T>(opt.step, opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay);
        ep.fn = &fused_step<T>::adam;
    }
    weight_gemm(L, rows, delta, a_prev, inv_rows, T(0), dw, &ep);
}

// The update of a layer's bias from its gradient db (biases are not decayed).
template <class T>
void update_bias(const layer_view<T>& L, const T* db, std::size_t l, std::size_t nl, optimizer_spec<T>& opt) {
    if (opt.kind == optimizer_kind::sgd) {
        sgd_update(L.n_out, L.b, db, opt.momentum != 0.0 ? opt.state[nl + l] : nullptr, opt.lr, opt.momentum,
                   opt.nesterov, 0.0);
    } else {
        adam_update(L.n_out, L.b, db, opt.state[nl + l], opt.state[3 * nl + l], opt.step, opt.lr, opt.beta1,
                    opt.beta2, opt.eps, 0.0);
    }
}

// Δ_prev = (Δ W) ⊙ σ'(prev layer).
template <class T>
void propagate_delta(const layer_view<T>& L, const layer_view<T>& prev, std::int64_t rows, const T* delta,
                     const T* a_prev, const T* z_prev, T* delta_prev, bool ste) {
    const int threads = rows <= small_batch_max ? per_sample_threads(L.n_out, L.n_in) : 1;
    if (threads > 1) {
        dprev_ctx<T> c{&L, delta, rows, delta_prev};
        parallel_run(threads, dprev_worker<T>, &c);
    } else {
        gemm<T>(false, false, rows, L.n_in, L.n_out, T(1), delta, L.n_out, L.w, L.n_in, T(0), delta_prev, L.n_in);
    }
    activation_backward(prev.act, rows, L.n_in, a_prev, L.n_in, z_prev, L.n_in, delta_prev, L.n_in, ste);
}

template <class T>
bool all_finite(const T* p, std::int64_t n) {
    T acc = 0;
    for (std::int64_t i = 0; i < n; ++i) acc += p[i] * T(0);  // NaN·0 and inf·0 are NaN; finite·0 is 0
    return acc == T(0);
}

// The sparse input of a batch: x's rows and, for plain SGD, the first layer's scale (W¹ = s·E; sparse.h).
template <class T>
struct sparse_batch {
    const csr_view<T>* x;
    batch_rows rows;
    double* scale;
};

// One update of every layer from a batch whose forward pass and output delta are done. The input is dense rows
// x, or sparse rows when sb is not null.
template <class T>
void backward_update(const std::vector<layer_view<T>>& net, const T* x, const sparse_batch<T>* sb, std::int64_t rows,
                     const mlp_buffers<T>& buf, const std::vector<T*>& dw, const std::vector<T*>& db, bool ste,
                     optimizer_spec<T>& opt) {
    const std::size_t nl = net.size();
    const bool plain_sgd = opt.kind == optimizer_kind::sgd && opt.momentum == 0.0;
    if (opt.kind == optimizer_kind::adam) ++opt.step;
    const T inv_rows = T(1) / T(rows);
    for (std::size_t l = nl; l-- > 0;) {
        const layer_view<T>& L = net[l];
        const T* a_prev = l == 0 ? x : buf.outs[l - 1];
        T* delta = buf.deltas[l];
        T* delta_prev = l == 0 ? nullptr : buf.deltas[l - 1];
        if (l == 0 && sb != nullptr) {
            const bool adam = opt.kind == optimizer_kind::adam;
            T* state1 = opt.state.empty() ? nullptr : opt.state[0];
            T* state2 = adam ? opt.state[2 * nl] : nullptr;
            sparse_weight_update(L, *sb->x, sb->rows, delta, dw[0], opt, state1, state2, sb->scale);
            column_sums(rows, L.n_out, delta, L.n_out, inv_rows, db[0]);
            update_bias(L, db[0], 0, nl, opt);
            continue;
        }
        if (plain_sgd) {
            const T eta = T(opt.lr), decay = T(1) - T(opt.lr) * T(opt.weight_decay);
            if (L.table && rows <= small_batch_max) {
                // Only the first layer is a table: no Δ_prev to make, so up to 8 rows gain over the GEMM.
                table_rank_k_update(L, rows, delta, a_prev, eta * inv_rows, decay);
                column_sums(rows, L.n_out, delta, L.n_out, inv_rows, db[l]);
                update_bias(L, db[l], l, nl, opt);
                continue;
            }
            if (rows <= rank_k_max && !L.table) {
                rank_k_update(L, rows, delta, a_prev, eta * inv_rows, decay, delta_prev);
                if (delta_prev != nullptr)
                    activation_backward(net[l - 1].act, rows, L.n_in, a_prev, L.n_in, buf.zs[l - 1], L.n_in,
                                        delta_prev, L.n_in, ste);
                continue;
            }
            // Δ_prev needs the old W, so it comes first; then W ← decay·W − (η/B) Δᵀ A_prev in one GEMM.
            if (delta_prev != nullptr) propagate_delta(L, net[l - 1], rows, delta, a_prev, buf.zs[l - 1], delta_prev, ste);
            weight_gemm(L, rows, delta, a_prev, -eta * inv_rows, decay, L.w);
            column_sums(rows, L.n_out, delta, L.n_out, inv_rows, db[l]);
            update_bias(L, db[l], l, nl, opt);
            continue;
        }
        if (delta_prev != nullptr) propagate_delta(L, net[l - 1], rows, delta, a_prev, buf.zs[l - 1], delta_prev, ste);
        if (g_fused_steps.load(std::memory_order_relaxed)) {
            fused_weight_update(L, l, nl, rows, delta, a_prev, inv_rows, dw[l], opt);
        } else {
            weight_gemm(L, rows, delta, a_prev, inv_rows, T(0), dw[l]);
            const std::int64_t nw = L.n_out * L.n_in;
            if (opt.kind == optimizer_kind::sgd) {
                sgd_update(nw, L.w, dw[l], opt.state[l], opt.lr, opt.momentum, opt.nesterov, opt.weight_decay);
            } else {
                adam_update(nw, L.w, dw[l], opt.state[l], opt.state[2 * nl + l], opt.step, opt.lr, opt.beta1,
                            opt.beta2, opt.eps, opt.weight_decay);
            }
        }
        // The bias (n_out values) keeps its separate step: column_sums must read all of Δ first anyway.
        column_sums(rows, L.n_out, delta, L.n_out, inv_rows, db[l]);
        update_bias(L, db[l], l, nl, opt);
    }
}

// Layer 0's forward pass on sparse rows: Z¹ = s·X W¹ᵀ by the gather, then the bias + activation pass.
template <class T>
void sparse_layer_forward(const layer_view<T>& L, const csr_view<T>& x, const batch_rows& br, double scale, T* z,
                          T* out) {
    T* target = z != nullptr ? z : out;
    sparse_forward(L, x, br, T(scale), target);
    bias_activation_forward(L.act, br.count, L.n_out, target, L.n_out, L.b, out, L.n_out);
}

// w_max: null, or one value per layer (layer_forward's).
template <class T>
void forward_layers(const std::vector<layer_view<T>>& net, const T* x, const sparse_batch<T>* sb, std::int64_t rows,
                    const mlp_buffers<T>& buf, T* w_max = nullptr) {
    const T* a_prev = x;
    for (std::size_t l = 0; l < net.size(); ++l) {
        if (l == 0 && sb != nullptr) {
            sparse_layer_forward(net[0], *sb->x, sb->rows, *sb->scale, buf.zs[0], buf.outs[0]);
            if (w_max != nullptr) w_max[0] = T(-1);
        } else {
            layer_forward(net[l], a_prev, rows, buf.zs[l], buf.outs[l], w_max != nullptr ? w_max + l : nullptr);
        }
        a_prev = buf.outs[l];
    }
}

// The loss of a batch whose forward pass is done, and its output delta. Every update path (rank-k, GEMM-fused
// SGD, momentum, Adam; any batch size) starts from this delta, which carries the sample weights. Softmax +
// cross-entropy takes the cheaper loss, which relies on the outputs being the softmax of the kept Z, just
// computed.
template <class T>
double output_loss(const std::vector<layer_view<T>>& net, loss_kind loss, const T* y, std::int64_t rows,
                   const mlp_buffers<T>& buf, bool ste, const T* sw, const std::int64_t* sw_index) {
    const std::size_t nl = net.size();
    const layer_view<T>& out = net.back();
    const T* a_out = buf.outs[nl - 1];
    const T* z_out = buf.zs[nl - 1];
    T* d_out = buf.deltas[nl - 1];
    return loss == loss_kind::cross_entropy && out.act == act_kind::softmax && z_out != nullptr
               ? softmax_cross_entropy(rows, out.n_out, a_out, z_out, y, d_out, sw, sw_index)
               : loss_and_output_delta(loss, out.act, rows, out.n_out, a_out, z_out, y, d_out, ste, sw, sw_index);
}

}  // namespace

void set_fused_optimizer_steps(bool on) { g_fused_steps = on; }
bool fused_optimizer_steps() { return g_fused_steps.load(); }

template <class T>
void mlp_forward(const std::vector<layer_view<T>>& net, const T* x, const csr_view<T>* sx, std::int64_t rows,
                 const mlp_buffers<T>& buf) {
    double scale = 1.0;
    const sparse_batch<T> sb{sx, batch_rows{nullptr, 0, rows}, &scale};
    forward_layers(net, x, sx != nullptr ? &sb : nullptr, rows, buf);
}

template <class T>
double mlp_backward(const std::vector<layer_view<T>>& net, loss_kind loss, const T* x, const csr_view<T>* sx,
                    const T* y, std::int64_t rows, const mlp_buffers<T>& buf, const std::vector<T*>& dw,
                    const std::vector<T*>& db, bool ste, const T* sw) {
    const std::size_t nl = net.size();
    const layer_view<T>& out = net[nl - 1];
    // The weights enter only here, through the output delta; everything below is the unweighted backward pass.
    const double value = loss_and_output_delta(loss, out.act, rows, out.n_out, buf.outs[nl - 1], buf.zs[nl - 1], y,
                                               buf.deltas[nl - 1], ste, sw, nullptr);
    const T inv_rows = T(1) / T(rows);
    for (std::size_t l = nl; l-- > 0;) {
        const layer_view<T>& L = net[l];
        const T* a_prev = l == 0 ? x : buf.outs[l - 1];
        if (l == 0 && sx != nullptr) {
            sparse_weight_gradient(L, *sx, batch_rows{nullptr, 0, rows}, buf.deltas[0], dw[0]);
        } else {
            weight_gemm(L, rows, buf.deltas[l], a_prev, inv_rows, T(0), dw[l]);
        }
        column_sums(rows, L.n_out, buf.deltas[l], L.n_out, inv_rows, db[l]);
        if (l > 0) propagate_delta(L, net[l - 1], rows, buf.deltas[l], a_prev, buf.zs[l - 1], buf.deltas[l - 1], ste);
    }
    return value;
}

template <class T>
epoch_result mlp_train_epoch(const std::vector<layer_view<T>>& net, loss_kind loss, const T* x,
                             const csr_view<T>* sx, const T* y, std::int64_t n, const std::int64_t* order,
                             std::int64_t batch, const mlp_buffers<T>& buf, const std::vector<T*>& dw,
                             const std::vector<T*>& db, T* xbuf, T* ybuf, bool ste, optimizer_spec<T>& opt,
                             const T* sw, const std::function<bool(std::int64_t)>& poll) {
    epoch_result res;
    // Plain SGD on sparse rows keeps W¹ = s·E during the call (sparse.h); E holds W¹ again whenever we return.
    double scale = 1.0;
    sparse_batch<T> sb{sx, batch_rows{nullptr, 0, 0}, &scale};
    const std::int64_t n_in = net.front().n_in, n_out = net.back().n_out;
    const layer_view<T>& out = net.back();
    const std::size_t nl = net.size();
    for (std::int64_t lo = 0; lo < n; lo += batch) {
        if (lo > 0 && poll && poll(lo)) {
            res.interrupted = true;
            break;
        }
        const std::int64_t rows = std::min(batch, n - lo);
        // With weights: those of this batch's rows (through order, like x and y), and their sum, decided once
        // per batch; a batch of weight 0 changes nothing, not even the decay or the optimizer's state.
        const T* swb = nullptr;
        const std::int64_t* sw_index = nullptr;
        double weight = double(rows);
        if (sw != nullptr) {
            if (order != nullptr) {
                swb = sw;
                sw_index = order + lo;
            } else {
                swb = sw + lo;
            }
            weight = weight_sum(rows, swb, sw_index);
            if (!(weight > 0)) continue;
        }
        const T* xb = sx != nullptr ? nullptr : x + lo * n_in;
        const T* yb = y + lo * n_out;
        if (order != nullptr) {
            // Gather the shuffled rows into one contiguous batch; sparse rows are read in place through order.
            for (std::int64_t r = 0; r < rows; ++r) {
                const std::int64_t src = order[lo + r];
                if (sx == nullptr) std::memcpy(xbuf + r * n_in, x + src * n_in, sizeof(T) * std::size_t(n_in));
                std::memcpy(ybuf + r * n_out, y + src * n_out, sizeof(T) * std::size_t(n_out));
            }
            if (sx == nullptr) xb = xbuf;
            yb = ybuf;
        }
        sb.rows = batch_rows{order != nullptr ? order + lo : nullptr, lo, rows};
        forward_layers(net, xb, sx != nullptr ? &sb : nullptr, rows, buf);
        const double value = output_loss(net, loss, yb, rows, buf, ste, swb, sw_index);
        if (!std::isfinite(value) || !all_finite(buf.deltas[nl - 1], rows * out.n_out)) {
            res.bad_batch_start = lo;
            res.bad_loss = value;
            break;
        }
        backward_update(net, xb, sx != nullptr ? &sb : nullptr, rows, buf, dw, db, ste, opt);
        res.loss_sum += value * weight;
        res.samples_done += rows;
    }
    if (sx != nullptr) fold_scale(net[0], &scale);
    return res;
}

template <class T>
double mlp_step_loss(const std::vector<layer_view<T>>& net, loss_kind loss, const T* x, const T* y,
                     std::int64_t rows, const mlp_buffers<T>& buf, bool ste, const T* sw, bool* finite, T* w_max) {
    forward_layers(net, x, static_cast<const sparse_batch<T>*>(nullptr), rows, buf, w_max);
    const double value = output_loss(net, loss, y, rows, buf, ste, sw, static_cast<const std::int64_t*>(nullptr));
    const std::int64_t n_out = net.back().n_out;
    *finite = std::isfinite(value) && all_finite(buf.deltas[net.size() - 1], rows * n_out);
    return value;
}

template <class T>
void mlp_step_update(const std::vector<layer_view<T>>& net, const T* x, std::int64_t rows, const mlp_buffers<T>& buf,
                     const std::vector<T*>& dw, const std::vector<T*>& db, bool ste, optimizer_spec<T>& opt) {
    backward_update(net, x, static_cast<const sparse_batch<T>*>(nullptr), rows, buf, dw, db, ste, opt);
}

#define PYFASTNN_INSTANTIATE(T)                                                                                   \
    template void mlp_forward<T>(const std::vector<layer_view<T>>&, const T*, const csr_view<T>*, std::int64_t,    \
                                 const mlp_buffers<T>&);                                                       \
    template double mlp_backward<T>(const std::vector<layer_view<T>>&, loss_kind, const T*, const csr_view<T>*,   \
                                    const T*, std::int64_t, const mlp_buffers<T>&, const std::vector<T*>&,         \
                                    const std::vector<T*>&, bool, const T*);                                       \
    template epoch_result mlp_train_epoch<T>(const std::vector<layer_view<T>>&, loss_kind, const T*,               \
                                             const csr_view<T>*, const T*, std::int64_t, const std::int64_t*,      \
                                             std::int64_t, const mlp_buffers<T>&, const std::vector<T*>&,          \
                                             const std::vector<T*>&, T*, T*, bool, optimizer_spec<T>&, const T*,   \
                                             const std::function<bool(std::int64_t)>&);                     \
    template double mlp_step_loss<T>(const std::vector<layer_view<T>>&, loss_kind, const T*, const T*,             \
                                     std::int64_t, const mlp_buffers<T>&, bool, const T*, bool*, T*);                    \
    template void mlp_step_update<T>(const std::vector<layer_view<T>>&, const T*, std::int64_t,                    \
                                     const mlp_buffers<T>&, const std::vector<T*>&, const std::vector<T*>&, bool,  \
                                     optimizer_spec<T>&);

PYFASTNN_INSTANTIATE(float)
PYFASTNN_INSTANTIATE(double)
#undef PYFASTNN_INSTANTIATE

}  // namespace pyfastnn
