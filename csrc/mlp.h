// The whole network: forward pass, backpropagation and training (forward, loss, backward and update of every
// layer) in one native call. Portable header.
//
// Notation as in docs/design.md, batched: rows are samples. Layer l (0-based here) maps n_in = N_l to
// n_out = N_{l+1}: Z = A_prev Wᵀ + b, A = σ(Z); Δ_prev = (Δ W) ⊙ σ'(Z_prev); ∂C/∂W = Δᵀ A_prev / B.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "activations.h"

namespace pyfastnn {

template <class T>
struct layer_view {
    T* w;  // W (n_out, n_in) row-major; or, when `table`, the table E = Wᵀ (n_in, n_out) row-major
    T* b;  // (n_out,)
    std::int64_t n_out, n_in;
    act_kind act;
    // The first layer only: W stored as an embedding table, so the column of W that an input picks is one
    // contiguous row of E. Its gradient and optimizer state arrays have the same layout.
    bool table = false;
};

// Rows of a sparse input in compressed sparse row form. The bindings check everything the kernels rely on:
// indptr rises from 0 to nnz without decreasing, every index lies in 0..n_cols-1, n_cols is the first layer's
// n_in, and rows (of the input and of a batch) fit in int32.
template <class T>
struct csr_view {
    const std::int64_t* indptr;   // (rows + 1,)
    const std::int32_t* indices;  // (nnz,)
    const T* data;                // (nnz,)
    std::int64_t rows, n_cols;
};

// Per-layer buffers of a batch of up to `capacity` rows; a smaller batch uses the first rows.
template <class T>
struct mlp_buffers {
    std::int64_t capacity = 0;
    std::vector<T*> outs;    // A of each layer, (capacity, n_out)
    std::vector<T*> zs;      // Z of each layer or nullptr where it is not kept
    std::vector<T*> deltas;  // Δ of each layer, (capacity, n_out)
};

// The input x is dense rows (x, rows x n_in, contiguous) or, when sx is not null, the rows of a CSR (x unused).
template <class T>
void mlp_forward(const std::vector<layer_view<T>>& net, const T* x, const csr_view<T>* sx, std::int64_t rows,
                 const mlp_buffers<T>& buf);

// After mlp_forward: fills the deltas and the gradients dw[l] (n_out, n_in; dw[0] in the first layer's layout,
// the whole gradient even for a sparse x), db[l] (n_out,); returns the loss. No delta is computed for the input.
// sw: null, or one weight per row of x (the loss and gradients are then the weighted mean's; activations.h).
template <class T>
double mlp_backward(const std::vector<layer_view<T>>& net, loss_kind loss, const T* x, const csr_view<T>* sx,
                    const T* y, std::int64_t rows, const mlp_buffers<T>& buf, const std::vector<T*>& dw,
                    const std::vector<T*>& db, bool ste, const T* sw);

enum class optimizer_kind : int { sgd, adam };

template <class T>
struct optimizer_spec {
    optimizer_kind kind = optimizer_kind::sgd;
    double lr = 0.1, momentum = 0.0, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    bool nesterov = false;
    // Sparse x with momentum or Adam: update only the rows of the first layer's table that a batch uses (and
    // their state); otherwise every row every step, as the dense formulas do.
    bool lazy = false;
    std::int64_t step = 0;  // Adam's update count so far
    // SGD with momentum: velocity of each weight then of each bias (2L arrays). Adam: first moments of the
    // weights, of the biases, then second moments of the weights, of the biases (4L arrays). Else empty.
    std::vector<T*> state;
};

struct epoch_result {
    double loss_sum = 0;             // Σ over batches of (batch loss × batch rows), with weights × weight sum
    std::int64_t samples_done = 0;   // rows of the batches applied
    std::int64_t bad_batch_start = -1;  // first row of the batch whose loss was not finite (then no update)
    double bad_loss = 0;
    bool interrupted = false;  // poll said stop: the batches after samples_done were not run
};

// Trains one pass over x (n rows) in batches of `batch` rows, in the order `order` (n row indices) or in
// storage order when order is null. Batches of a dense x taken out of order are gathered into xbuf/ybuf (batch
// rows each); a sparse x (sx not null, x unused) is read through the order in place and only y is gathered.
// dw/db receive gradients where the optimizer needs them as a separate array (momentum, Adam). Stops before
// the update of a batch whose loss is not finite. opt.step is advanced for Adam. sw: null, or one weight per
// row of x (indexed by the original row, like x and y); a batch whose weights sum to 0 is skipped entirely.
// poll (if set) is called before every batch but the first with the rows of x gone through so far (applied or
// skipped for a zero weight sum); when it answers true the epoch ends there, the batches done so far applied,
// with res.interrupted set (the caller's way to honour Ctrl-C and to report progress mid-epoch).
template <class T>
epoch_result mlp_train_epoch(const std::vector<layer_view<T>>& net, loss_kind loss, const T* x,
                             const csr_view<T>* sx, const T* y, std::int64_t n, const std::int64_t* order, std::int64_t batch,
                             const mlp_buffers<T>& buf, const std::vector<T*>& dw, const std::vector<T*>& db,
                             T* xbuf, T* ybuf, bool ste, optimizer_spec<T>& opt, const T* sw,
                             const std::function<bool(std::int64_t)>& poll);

// Momentum and Adam on dense layers: applied by the weight-gradient GEMM to each block of the gradient it produces
// (true, the default), or from the whole stored gradient in a second pass (false: the earlier path, kept so tests
// and benchmarks can compare the two in one process; both give the same bits on x86). Process-wide.
void set_fused_optimizer_steps(bool on);
bool fused_optimizer_steps();

// One batch of mlp_train_epoch (dense x, in storage order) in two halves, for a caller that decides between them
// whether to apply the update (train_step): mlp_step_loss runs the forward pass and returns the batch loss
// (*finite: whether it and the output delta are finite), writing only the buffers; mlp_step_update then
// backpropagates and updates the parameters and the optimizer state (opt.step advanced for Adam). Together they
// compute exactly what mlp_train_epoch does for that batch. w_max (null, or one value per layer): the largest |W|
// of each layer whose forward pass found it on its way (+inf or NaN when a weight is not finite), else -1.
template <class T>
double mlp_step_loss(const std::vector<layer_view<T>>& net, loss_kind loss, const T* x, const T* y, std::int64_t rows,
                     const mlp_buffers<T>& buf, bool ste, const T* sw, bool* finite, T* w_max = nullptr);

template <class T>
void mlp_step_update(const std::vector<layer_view<T>>& net, const T* x, std::int64_t rows, const mlp_buffers<T>& buf,
                     const std::vector<T*>& dw, const std::vector<T*>& db, bool ste, optimizer_spec<T>& opt);

}  // namespace pyfastnn
