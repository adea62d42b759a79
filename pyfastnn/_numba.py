"""The Numba backend ("numba"): the kernel contract of ``_ref`` compiled by Numba, for installs without the C++ core.

Every function named in ``_ref.KERNELS`` is here with the same parameters (a test compares the signatures) and
must agree with the NumPy reference to 1e-12 relative in float64 and 1e-5 in float32. The work is split by what
is fastest from Python:

* GEMM runs in NumPy's BLAS (``np.matmul`` with ``out=``), called from Python: a hand-written loop inside
  ``njit`` is many times slower, and ``np.dot`` inside ``njit`` would need SciPy.
* Everything elementwise runs in ``numba.njit(cache=True)`` loops, fused so that each layer costs one call:
  bias + activation (+ keeping Z); loss + output delta + bias gradient; σ′ ⊙ δ + bias gradient; the whole
  optimizer update of a layer (weights and biases). No ``fastmath``: the results must follow the reference's
  rounding, so sums are not reassociated. The one exception is ``_k_dot``, the per-sample forward's dot
  product, which stands in for a BLAS product (whose order of summation is the library's own anyway).
* No ``parallel``: on the small network it is slower (thread hand-off > the work), and where it would help (the
  update of a 512×784 layer, ~60 → ~30 µs on 2 cores) it competes with OpenBLAS's own threads for the cores
  and brings a threading layer (OpenMP) that is not fork-safe.
* ``train_epoch`` checks its arguments once, precomputes the per-layer views for the full and the last batch,
  then runs a tight Python loop of BLAS calls and fused kernels per batch; nothing is allocated per batch.
* Batch 1 on a dense x (per-sample SGD, momentum or Adam) leaves Python altogether: ``_k_epoch_rows`` runs a
  few thousand samples per call (about 10-20 ms of work, so progress reports and Ctrl-C still come through).
  Per sample and layer, W is streamed twice: by the forward's dot products, and by one backward loop that, row
  by row, adds δ_i·W_i (the OLD row) into δ^{l-1} and then applies the row's rank-1 update (or computes its
  gradient row δ_i·a in cache for momentum / Adam, whose state is read and written once). The per-layer arrays
  go in as tuples, so each network depth is its own compiled signature (two and three layers by
  ``compile_all``). Batches of 2 and more rows keep the loop above (BLAS from two rows on is as fast); a
  one-row batch there (a sparse x, or W¹ in the embedding layout) computes its weight gradient inside the
  update kernel.
* Sparse input (a ``CSR`` x) changes only the first layer, whose weights may be stored as the table E = W¹ᵀ
  (``weights[0]`` its F-contiguous transpose; every kernel taking weights accepts either layout). Z¹ is a gather
  of rows of E; in ``train_epoch`` a batch's entries are grouped by column (a column → slot map kept at -1
  between batches, so no O(N_0) work per batch), each touched row's gradient summed, then the row updated once.
  Plain SGD's weight decay stays exact without a pass over E per step (a scale s, W¹ = s·E, folded back when
  small and before returning); momentum and Adam update only the touched rows and their state when ``lazy``,
  else every row every step (the dense formulas). The gathers and row updates are random reads from a table
  larger than the caches, so they prefetch the rows a few entries ahead (an LLVM intrinsic). The same source
  compiles for a C-contiguous E and for the F-contiguous E of W¹ stored in rows (strided, slower): two
  specialisations per dtype of the few kernels that take E.

Names (activations, losses, optimizers) are turned into small integer codes by dict look-up in Python and the
codes are passed into the compiled kernels. Scalars that the reference applies in the arrays' dtype (learning
rate, momentum, Adam's coefficients, the 1/B of the gradients) are passed as scalars of that dtype, so float32
updates round as the reference's do.

Compilation is lazy (on the first call for each dtype) and cached on disk (``cache=True``: ``__pycache__``
beside this file, a per-user cache directory where that is not writable, or NUMBA_CACHE_DIR). ``compile_all()``
compiles everything up front and returns the seconds it took (measured here: ~8 s on a cold cache, ~0.2 s
loading from the cache in a new process).
"""

import math
import threading
import time

import numpy as np

try:
    import numba
except Exception as exc:  # not installed, or installed against an incompatible NumPy / llvmlite
    raise ImportError(
        f"the numba backend needs the 'numba' package, which could not be imported ({type(exc).__name__}: {exc}); "
        "install it with: pip install numba"
    ) from exc

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._ref import (  # noqa: F401  (KERNELS: the contract this module implements)
    CSR, KERNELS, _check_csr, _named, _progress_ticker, _refuse_network_overlap, _refuse_overlap,
    _same_memory,
)

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")  # nogil: other Python threads run meanwhile

# ---------------------------------------------------------------------------------------------------------------
# Codes. Python resolves names with these dicts once per call (per epoch in train_epoch); the kernels branch on
# the integer codes, outside their loops.

STEP, SIGN, LINEAR, PIECEWISE_LINEAR, SIGMOID, TANH, RELU, SOFTMAX = range(8)
_ACT = {
    "step": STEP, "sign": SIGN, "linear": LINEAR, "piecewise_linear": PIECEWISE_LINEAR, "sigmoid": SIGMOID,
    "tanh": TANH, "relu": RELU, "softmax": SOFTMAX,
}
SQUARED_ERROR, HINGE, BINARY_CROSS_ENTROPY, CROSS_ENTROPY = range(4)
_LOSS = {
    "squared_error": SQUARED_ERROR, "hinge": HINGE, "binary_cross_entropy": BINARY_CROSS_ENTROPY,
    "cross_entropy": CROSS_ENTROPY,
}
_OPT = {"sgd": 0, "adam": 1}
_DTYPES = {np.dtype(np.float32): np.float32, np.dtype(np.float64): np.float64}
# Clipping of f in the generic loss gradients, in the arrays' dtype (as _ref._EPS); the loss values use 1e-15.
_GRAD_EPS = {np.dtype(np.float32): 1e-7, np.dtype(np.float64): 1e-15}
_LOSS_EPS = 1e-15
# Batches of at most this many rows compute Δᵀ A inside the update kernel instead of with BLAS. Measured: for one
# row (an outer product) np.matmul is ~8x slower than the fused loop on [784, 512, 256, 10]; from two rows on
# BLAS is as fast or faster.
_SMALL_BATCH = 1
# The sparse kernels prefetch the row of E (and of its optimizer state) this many entries ahead. Measured on the
# bag-of-words benchmark (35 words a row, hidden 128, float32): the forward gather takes ~15% less CPU time than
# without at V = 50,000 and ~25% less at V = 1,000,000; 4 to 12 ahead are alike.
_AHEAD = 6

# ---------------------------------------------------------------------------------------------------------------
# Compiled kernels. The arrays are C-contiguous; rows are samples. Clips and maxima are written as explicit
# comparisons (not min/max) so that NaN passes through as it does in NumPy's clip and maximum: a diverging batch
# must still show a non-finite loss.


@_jit
def _k_bias_act(z, b, add_bias, code, out):
    """out = σ(z + b) row by row; with add_bias z is updated to z + b (it is the kept Z, or out itself)."""
    rows, cols = z.shape
    if add_bias:
        for i in range(rows):
            for j in range(cols):
                z[i, j] += b[j]
    if code == RELU:
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                out[i, j] = 0 if v < 0 else v
    elif code == SOFTMAX:
        for i in range(rows):
            m = z[i, 0]
            for j in range(1, cols):
                if z[i, j] > m:
                    m = z[i, j]
            s = 0.0
            for j in range(cols):
                e = np.exp(z[i, j] - m)  # log-sum-exp shift: no overflow
                out[i, j] = e
                s += e
            for j in range(cols):
                out[i, j] = out[i, j] / s
    elif code == SIGMOID:
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                e = np.exp(-abs(v))  # neither branch overflows
                out[i, j] = 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)
    elif code == TANH:
        for i in range(rows):
            for j in range(cols):
                out[i, j] = np.tanh(z[i, j])
    elif code == LINEAR:
        for i in range(rows):
            for j in range(cols):
                out[i, j] = z[i, j]
    elif code == PIECEWISE_LINEAR:
        for i in range(rows):
            for j in range(cols):
                u = z[i, j] + 0.5
                out[i, j] = 0 if u < 0 else (1 if u > 1 else u)
    elif code == STEP:
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                out[i, j] = 1 if v > 0 else (0 if v < 0 else (0.5 if v == 0 else v))  # H(0) = 1/2; NaN stays
    elif code == SIGN:
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                out[i, j] = 1 if v > 0 else (-1 if v < 0 else v * 0)  # sign(0) = 0, sign(NaN) = NaN


@_jit
def _k_column_mean(delta, db):
    """db = the mean of the rows of delta, summed row after row in the dtype (as np.mean(axis=0))."""
    rows, cols = delta.shape
    for j in range(cols):
        db[j] = 0
    for i in range(rows):
        for j in range(cols):
            db[j] += delta[i, j]
    for j in range(cols):
        db[j] = db[j] / rows


@_jit
def _k_act_backward(a, z, delta, code, ste, db, want_db):
    """delta ← Jσᵀ delta row by row (σ′ ⊙ delta for the elementwise units); db = column mean when want_db."""
    rows, cols = delta.shape
    if code == RELU:
        for i in range(rows):
            for j in range(cols):
                if not a[i, j] > 0:
                    delta[i, j] = delta[i, j] * 0  # times σ′ = 0 (NaN·0 stays NaN, as in the reference)
    elif code == SIGMOID:
        for i in range(rows):
            for j in range(cols):
                v = a[i, j]
                delta[i, j] = delta[i, j] * (v * (1 - v))
    elif code == TANH:
        for i in range(rows):
            for j in range(cols):
                v = a[i, j]
                delta[i, j] = delta[i, j] * (1 - v * v)
    elif code == SOFTMAX:
        # Jacobian diag(a) − a aᵀ: delta ← a ⊙ (delta − ⟨delta, a⟩)
        for i in range(rows):
            s = 0.0
            for j in range(cols):
                s += delta[i, j] * a[i, j]
            for j in range(cols):
                delta[i, j] = a[i, j] * (delta[i, j] - s)
    elif code == PIECEWISE_LINEAR:
        for i in range(rows):
            for j in range(cols):
                v = a[i, j]
                if not (v > 0 and v < 1):
                    delta[i, j] = delta[i, j] * 0
    elif code == STEP or code == SIGN:
        if ste:
            # Straight-through: the derivative of clip(z + 1/2, 0, 1) (step) or clip(z, -1, 1) (sign).
            half_width = 0.5 if code == STEP else 1.0
            for i in range(rows):
                for j in range(cols):
                    if not abs(z[i, j]) < half_width:
                        delta[i, j] = delta[i, j] * 0
        else:
            for i in range(rows):
                for j in range(cols):
                    delta[i, j] = delta[i, j] * 0
    # LINEAR: σ′ = 1, delta unchanged.
    if want_db:
        _k_column_mean(delta, db)


@_jit
def _k_loss(loss, act, a, z, y, yrows, use_yrows, sw, use_sw, delta, want_delta, ste, db, want_db, grad_lo,
            grad_hi):
    """Batch-mean loss (per-sample costs in float64); with want_delta delta = ∂C_k/∂z^L, with want_db db = its
    column mean. Row i of the batch has targets y[yrows[i]] when use_yrows (a shuffled batch), else y[i].
    grad_lo / grad_hi: the clipping bounds of f in the unfused gradients, in the arrays' dtype.

    With use_sw, row i has the sample weight sw[yrows[i]] (or sw[i]), read as its targets are: the loss is the
    weighted mean Σ s C / S and delta's row i is scaled by s·B/S after everything else (before db), so the
    gradients downstream, which divide by B, are the weighted mean's; S = 0 gives 0 and all-zero delta and db."""
    rows, cols = a.shape
    fused = (loss == BINARY_CROSS_ENTROPY and act == SIGMOID) or (loss == CROSS_ENTROPY and act == SOFTMAX)
    total = 0.0
    weight = 0.0
    for i in range(rows):
        r = yrows[i] if use_yrows else i
        c = 0.0
        if loss == SQUARED_ERROR:
            for j in range(cols):
                d = np.float64(y[r, j]) - np.float64(a[i, j])
                c += d * d
                if want_delta:
                    delta[i, j] = 2 * (a[i, j] - y[r, j])
        elif loss == HINGE:
            for j in range(cols):
                m = 1.0 - np.float64(y[r, j]) * np.float64(a[i, j])
                if m > 0 or math.isnan(m):  # max(0, m), NaN kept as np.maximum keeps it
                    c += m
                if want_delta:
                    delta[i, j] = -y[r, j] if y[r, j] * a[i, j] < 1 else 0
        elif loss == BINARY_CROSS_ENTROPY:
            if act == SIGMOID:
                # −[y log σ(z) + (1−y) log(1−σ(z))] = softplus(z) − y z: the log-sigmoid form, exact for any z.
                for j in range(cols):
                    v = np.float64(z[i, j])
                    c += (v if v > 0 else 0.0) + np.log1p(np.exp(-abs(v))) - np.float64(y[r, j]) * v
                    if want_delta:
                        delta[i, j] = a[i, j] - y[r, j]
            else:
                for j in range(cols):
                    f = np.float64(a[i, j])
                    f = _LOSS_EPS if f < _LOSS_EPS else (1 - _LOSS_EPS if f > 1 - _LOSS_EPS else f)
                    t = np.float64(y[r, j])
                    c -= t * np.log(f) + (1 - t) * np.log(1 - f)
                    if want_delta:
                        g = a[i, j]
                        g = grad_lo if g < grad_lo else (grad_hi if g > grad_hi else g)
                        delta[i, j] = (g - y[r, j]) / (g * (1 - g))
        else:  # CROSS_ENTROPY
            if act == SOFTMAX:
                m = np.float64(z[i, 0])
                for j in range(1, cols):
                    if z[i, j] > m:
                        m = np.float64(z[i, j])
                s = 0.0
                for j in range(cols):
                    s += np.exp(np.float64(z[i, j]) - m)
                lse = np.log(s)
                ysum = 0.0
                for j in range(cols):
                    c -= np.float64(y[r, j]) * (np.float64(z[i, j]) - m - lse)
                    ysum += y[r, j]
                if want_delta:
                    # ∂/∂z of −Σ y log softmax(z) is p·Σy − y: p − y for targets that sum to one.
                    for j in range(cols):
                        delta[i, j] = a[i, j] * ysum - y[r, j]
            else:
                for j in range(cols):
                    f = np.float64(a[i, j])
                    if f < _LOSS_EPS:
                        f = _LOSS_EPS
                    c -= np.float64(y[r, j]) * np.log(f)
                    if want_delta:
                        g = a[i, j]
                        if g < grad_lo:
                            g = grad_lo
                        delta[i, j] = -y[r, j] / g
        if use_sw:
            s = np.float64(sw[r])
            total += s * c  # 0·∞ is NaN on purpose: a diverging sample shows whatever its weight
            weight += s
        else:
            total += c
    if use_sw and not weight > 0:
        if want_delta:
            for i in range(rows):
                for j in range(cols):
                    delta[i, j] = 0
            if want_db:
                for j in range(cols):
                    db[j] = 0
        return 0.0
    if want_delta:
        if not fused:
            _k_act_backward(a, z, delta, act, ste, db, False)
        if use_sw:
            t = delta.dtype.type
            for i in range(rows):
                r = yrows[i] if use_yrows else i
                f = t(np.float64(sw[r]) * rows / weight)  # in the arrays' dtype, as the reference; 1 for weight 1
                for j in range(cols):
                    delta[i, j] = delta[i, j] * f
        if want_db:
            _k_column_mean(delta, db)
    return total / weight if use_sw else total / rows


@_jit
def _k_weight_sum(sw, rows, lo, idx, use_idx):
    """S of a batch of ``rows`` rows: Σ sw[idx[lo + i]] (or sw[lo + i]) in float64, in _k_loss's order."""
    s = 0.0
    for i in range(rows):
        s += np.float64(sw[idx[lo + i]] if use_idx else sw[lo + i])
    return s


@_jit
def _k_sgd(p, g, v, gscale, lr, momentum, nesterov, weight_decay):
    """p ← p − lr·g′ on flat arrays, g′ = gscale·g (+ weight_decay·p), through the velocity v when momentum."""
    for i in range(p.size):
        gi = g[i] * gscale
        if weight_decay != 0:
            gi = gi + weight_decay * p[i]
        if momentum != 0:
            vi = v[i] * momentum + gi
            v[i] = vi
            gi = gi + momentum * vi if nesterov else vi
        p[i] = p[i] - lr * gi


@_jit
def _k_adam(p, g, m, v, gscale, lr, beta1, beta2, c1, c2, bc1, bc2, eps, weight_decay):
    """Adam on flat arrays: c1 = 1−β1, c2 = 1−β2, bc1 = 1−β1^t, bc2 = 1−β2^t (all in the arrays' dtype)."""
    for i in range(p.size):
        gi = g[i] * gscale
        if weight_decay != 0:
            gi = gi + weight_decay * p[i]
        mi = m[i] * beta1 + c1 * gi
        vi = v[i] * beta2 + c2 * (gi * gi)
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - lr * (mi / bc1) / (np.sqrt(vi / bc2) + eps)


@_jit
def _k_sgd_layer(w, dw, vw, b, db, vb, wscale, lr, momentum, nesterov, weight_decay, zero, one):
    """One layer's SGD step: the weights with gradient wscale·dw and decay, the biases with db and no decay."""
    _k_sgd(w.reshape(w.size), dw.reshape(dw.size), vw.reshape(vw.size), wscale, lr, momentum, nesterov,
           weight_decay)
    _k_sgd(b, db, vb, one, lr, momentum, nesterov, zero)


@_jit
def _k_outer_rows(d, a, i, dw_row):
    """dw_row = Σ_r d[r, i]·a[r, :], row i of Δᵀ A, summed sample after sample (axpy form: no reassociation)."""
    rows, cols = a.shape
    c = d[0, i]
    for j in range(cols):
        dw_row[j] = c * a[0, j]
    for r in range(1, rows):
        c = d[r, i]
        for j in range(cols):
            dw_row[j] += c * a[r, j]


@_jit
def _k_sgd_layer_small(w, d, a, dw, vw, b, db, vb, wscale, lr, momentum, nesterov, weight_decay, zero, one):
    """_k_sgd_layer for a small batch, with dw = Δᵀ A computed here row by row while the row is in cache
    (BLAS is slow for these rank-few products)."""
    for i in range(w.shape[0]):
        _k_outer_rows(d, a, i, dw[i])
        _k_sgd(w[i], dw[i], vw[i], wscale, lr, momentum, nesterov, weight_decay)
    _k_sgd(b, db, vb, one, lr, momentum, nesterov, zero)


@_jit
def _k_adam_layer_small(w, d, a, dw, mw, vw, b, db, mb, vb, wscale, lr, beta1, beta2, c1, c2, bc1, bc2, eps,
                        weight_decay, zero, one):
    """_k_adam_layer for a small batch (see _k_sgd_layer_small)."""
    for i in range(w.shape[0]):
        _k_outer_rows(d, a, i, dw[i])
        _k_adam(w[i], dw[i], mw[i], vw[i], wscale, lr, beta1, beta2, c1, c2, bc1, bc2, eps, weight_decay)
    _k_adam(b, db, mb, vb, one, lr, beta1, beta2, c1, c2, bc1, bc2, eps, zero)


@_jit
def _k_adam_layer(w, dw, mw, vw, b, db, mb, vb, wscale, lr, beta1, beta2, c1, c2, bc1, bc2, eps, weight_decay,
                  zero, one):
    """One layer's Adam step (weights with decay, biases without)."""
    _k_adam(w.reshape(w.size), dw.reshape(dw.size), mw.reshape(mw.size), vw.reshape(vw.size), wscale, lr, beta1,
            beta2, c1, c2, bc1, bc2, eps, weight_decay)
    _k_adam(b, db, mb, vb, one, lr, beta1, beta2, c1, c2, bc1, bc2, eps, zero)


# ---------------------------------------------------------------------------------------------------------------
# The per-sample path (batch 1, dense x): a whole run of samples in one compiled call, so that a sample costs no
# Python, and each weight matrix is streamed twice per sample: once by the forward matrix-vector product, once by
# the backward pass, which computes δ^{l-1} = δ^l W^l with the old W while it applies the rank-1 update to the
# same row of W (the row is in L1 for both).

# The sums of the matrix-vector products may be reassociated (and so vectorised): they replace a BLAS product,
# whose order of summation is the library's own; everything elementwise keeps the reference's rounding.
_jit_sum = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})


@_jit_sum
def _k_dot(u, v, zero):
    """Σ_j u[j]·v[j] in the arrays' dtype (zero: 0 of that dtype), in a vectorised order."""
    s = zero
    for j in range(u.shape[0]):
        s += u[j] * v[j]
    return s


@_jit
def _k_row_forward(w, b, code, a, z, out, zero):
    """One sample through one layer: z[0] = W a (a of shape (n_in,)), then out[0] = σ(z[0] + b), z keeping z + b."""
    zr = z[0]
    for i in range(w.shape[0]):
        zr[i] = _k_dot(w[i], a, zero)
    _k_bias_act(z, b, True, code, out)


@_jit
def _k_row_grad(wi, di, a, dp, want_dp, g):
    """One row of a stateful per-sample step, before the update: g = δ_i aᵀ (the row's gradient) and, when
    want_dp, dp += δ_i · (the old row wi)."""
    if want_dp:
        for j in range(wi.size):
            dp[j] += di * wi[j]
            g[j] = di * a[j]
    else:
        for j in range(wi.size):
            g[j] = di * a[j]


@_jit
def _k_row_back_sgd(w, d, a, dp, want_dp, dw, v, b, vb, scale, lr, momentum, nesterov, weight_decay, zero, one):
    """The SGD step of one layer for one sample, fused with the product that carries δ down: dp = δ W with the
    old W (when want_dp), row by row while the row of W is updated with the gradient δ aᵀ (times scale). d, a and
    dp have shapes (n_out,), (n_in,) and (n_in,); dw's rows are scratch (the gradient row of a stateful update);
    v and vb are the velocities (not touched without momentum). b is updated with δ itself (its one-row mean)."""
    n_out, n_in = w.shape
    plain = momentum == 0 and weight_decay == 0
    if want_dp:
        for j in range(n_in):
            dp[j] = 0
    for i in range(n_out):
        di = d[i]
        wi = w[i]
        if plain:  # _k_sgd's arithmetic written out, so the one loop reads and writes W once
            if want_dp:
                for j in range(n_in):
                    wij = wi[j]
                    dp[j] += di * wij
                    wi[j] = wij - lr * ((di * a[j]) * scale)
            else:
                for j in range(n_in):
                    wi[j] = wi[j] - lr * ((di * a[j]) * scale)
        else:
            _k_row_grad(wi, di, a, dp, want_dp, dw[i])
            _k_sgd(wi, dw[i], v[i], scale, lr, momentum, nesterov, weight_decay)
    _k_sgd(b, d, vb, one, lr, momentum, nesterov, zero)


@_jit
def _k_row_back_adam(w, d, a, dp, want_dp, dw, m, v, b, mb, vb, scale, lr, beta1, beta2, c1, c2, bc1, bc2, eps,
                     weight_decay, zero, one):
    """_k_row_back_sgd for Adam: dp = δ W with the old W, then each row's Adam step on its gradient row δ_i aᵀ."""
    n_out, n_in = w.shape
    if want_dp:
        for j in range(n_in):
            dp[j] = 0
    for i in range(n_out):
        _k_row_grad(w[i], d[i], a, dp, want_dp, dw[i])
        _k_adam(w[i], dw[i], m[i], v[i], scale, lr, beta1, beta2, c1, c2, bc1, bc2, eps, weight_decay)
    _k_adam(b, d, mb, vb, one, lr, beta1, beta2, c1, c2, bc1, bc2, eps, zero)


@_jit
def _k_row_back(l, w, d, a, dp, dw, vw, b, vb, mw, mb, adam, scale, lr, momentum, nesterov, weight_decay, beta1,
                beta2, c1, c2, bc1, bc2, eps, zero, one):
    """Layer l's fused backward step for one sample (dp is δ^{l-1}, not written for l = 0)."""
    if adam:
        _k_row_back_adam(w, d, a, dp, l > 0, dw, mw, vw, b, mb, vb, scale, lr, beta1, beta2, c1, c2, bc1, bc2, eps,
                         weight_decay, zero, one)
    else:
        _k_row_back_sgd(w, d, a, dp, l > 0, dw, vw, b, vb, scale, lr, momentum, nesterov, weight_decay, zero, one)


@_jit
def _k_epoch_rows(weights, biases, codes, lcode, x, y, order, shuffled, start, stop, outs, tgts, deltas, dweights,
                  dbiases, vws, vbs, mws, mbs, adam, step, lr, momentum, nesterov, weight_decay, beta1, beta2, c1,
                  c2, eps, beta1_64, beta2_64, sw, weighted, ste, grad_lo, grad_hi, zero, one):
    """Samples start..stop of an epoch at batch 1 (row order[k], or k in storage order): forward, loss, fused
    backward and update for each. The per-layer tuples hold the one-row buffers (outs, tgts = the kept Z or the
    output, deltas) and the update's arrays (dweights: scratch rows; vws, vbs: velocities or Adam's second
    moments; mws, mbs: Adam's first moments). step: Adam's step count before start (updated per sample). The
    scalars are in the arrays' dtype (zero, one: 0 and 1 in it) except beta1_64 and beta2_64, the float64 betas
    the bias corrections are computed from, as train_epoch computes them.

    Returns (Σ loss × weight, samples trained, first sample whose loss was not finite or -1, that loss, step)."""
    n_layers = len(weights)
    last = n_layers - 1
    scale = one  # 1/B for B = 1
    rowbuf = np.empty(1, dtype=np.int64)  # the targets' row, read through by the loss
    corr = np.empty(2, dtype=weights[0].dtype)  # the bias corrections, rounded into the dtype by the store
    total = 0.0
    done = 0
    bc1 = one
    bc2 = one
    for k in range(start, stop):
        r = order[k] if shuffled else k
        rowbuf[0] = r
        weight = 1.0
        if weighted:
            weight = np.float64(sw[r])
            if not weight > 0:  # a batch of weight 0 leaves everything as it is
                continue
        xr = x[r]
        _k_row_forward(weights[0], biases[0], codes[0], xr, tgts[0], outs[0], zero)
        for l in range(1, n_layers):
            _k_row_forward(weights[l], biases[l], codes[l], outs[l - 1][0], tgts[l], outs[l], zero)
        value = _k_loss(lcode, codes[last], outs[last], tgts[last], y, rowbuf, True, sw, weighted, deltas[last],
                        True, ste, dbiases[last], True, grad_lo, grad_hi)
        if not math.isfinite(value):
            return total, done, k, value, step
        if adam:
            step += 1
            corr[0] = 1 - beta1_64 ** np.float64(step)
            corr[1] = 1 - beta2_64 ** np.float64(step)
            bc1, bc2 = corr[0], corr[1]
        for l in range(last, 0, -1):
            # δ^{l-1} = δ^l W^l (old W) while W^l takes its step, then ⊙ σ′
            _k_row_back(l, weights[l], deltas[l][0], outs[l - 1][0], deltas[l - 1][0], dweights[l], vws[l],
                        biases[l], vbs[l], mws[l], mbs[l], adam, scale, lr, momentum, nesterov, weight_decay, beta1,
                        beta2, c1, c2, bc1, bc2, eps, zero, one)
            _k_act_backward(outs[l - 1], tgts[l - 1], deltas[l - 1], codes[l - 1], ste, dbiases[l - 1], False)
        _k_row_back(0, weights[0], deltas[0][0], xr, deltas[0][0], dweights[0], vws[0], biases[0], vbs[0], mws[0],
                    mbs[0], adam, scale, lr, momentum, nesterov, weight_decay, beta1, beta2, c1, c2, bc1, bc2, eps,
                    zero, one)
        total += value * weight
        done += 1
    return total, done, -1, 0.0, step


@intrinsic
def _prefetch(typingctx, arr, row, col):
    """Ask the CPU to start loading the cache line of arr[row, col] (LLVM's prefetch: no fault whatever the
    address, no effect on any result)."""

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        where = [context.cast(builder, a, t, types.intp) for a, t in zip(args[1:], sig.args[1:])]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, where, wraparound=False)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)  # named for this LLVM's pointers
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # a read, kept in every level, data
        return context.get_dummy_value()

    return types.void(arr, row, col), codegen


@_jit
def _k_prefetch_row(table, j):
    """Prefetch row j of a 2-D array: each cache line of a contiguous row (of a strided one, every step-th
    element's line only: a hint either way)."""
    step = max(1, 64 // table.itemsize)
    for h in range(0, table.shape[1], step):
        _prefetch(table, j, h)


# ---------------------------------------------------------------------------------------------------------------
# Sparse input: the first layer as an embedding table. ``table`` is E = W¹ᵀ, (N_0, N_1): C-contiguous in the
# embedding layout, the F-contiguous transpose of W¹ otherwise (then a row of E is a strided column of W¹: the
# same code, slower). Row i of a batch is input row r = idx[lo + i] when use_idx (a shuffled batch), else lo + i;
# its entries are data[k] in the columns indices[k], k in indptr[r]..indptr[r+1]. The callers have checked that
# every index lies inside the arrays (no bounds checks here).


@_jit
def _k_sparse_z(indptr, indices, data, idx, use_idx, lo, table, s, z):
    """z[i] = s·Σ_k data[k]·E[indices[k]]: the first layer's pre-activation without its bias, summed entry after
    entry as the reference's sparse product sums (s is the scale of a lazily decayed E, else 1)."""
    rows, cols = z.shape
    if rows == 0:
        return
    r = idx[lo] if use_idx else lo
    for i in range(rows):
        start, end = indptr[r], indptr[r + 1]
        # The rows of E come from anywhere in a table larger than the caches: prefetch the row needed _AHEAD
        # entries later (one of the next sample's near the end of this one's), so that the loads overlap.
        nxt = -1
        if i + 1 < rows:
            nxt = idx[lo + i + 1] if use_idx else lo + i + 1
        for h in range(cols):
            z[i, h] = 0
        for k in range(start, end):
            a = k + _AHEAD
            if a < end:
                _k_prefetch_row(table, indices[a])
            elif nxt >= 0 and indptr[nxt] + a - end < indptr[nxt + 1]:
                _k_prefetch_row(table, indices[indptr[nxt] + a - end])
            e = table[indices[k]]
            v = data[k]
            for h in range(cols):
                z[i, h] += v * e[h]
        if s != 1:
            for h in range(cols):
                z[i, h] = z[i, h] * s
        r = nxt


@_jit
def _k_sparse_scatter(indptr, indices, data, idx, use_idx, lo, delta, grad):
    """grad[indices[k]] += data[k]·delta[i] over the batch's entries: Xᵀ Δ¹ into a zeroed (N_0, N_1) gradient."""
    rows, cols = delta.shape
    for i in range(rows):
        r = idx[lo + i] if use_idx else lo + i
        for k in range(indptr[r], indptr[r + 1]):
            g = grad[indices[k]]
            v = data[k]
            for h in range(cols):
                g[h] += v * delta[i, h]


@_jit
def _k_sparse_group(indptr, indices, data, idx, use_idx, lo, delta, slot, touched, grad):
    """The rows of Xᵀ Δ¹ that the batch touches, compactly: grad[t] for the t-th distinct column touched[t];
    returns how many. slot (N_0,) maps a column to its t and is -1 everywhere on entry and on return, so it is
    kept between batches instead of cleared (the work is that of the batch's entries, not of N_0)."""
    rows, cols = delta.shape
    n = 0
    for i in range(rows):
        r = idx[lo + i] if use_idx else lo + i
        for k in range(indptr[r], indptr[r + 1]):
            j = indices[k]
            v = data[k]
            t = slot[j]
            if t < 0:
                t = n
                slot[j] = t
                touched[t] = j
                n += 1
                for h in range(cols):
                    grad[t, h] = v * delta[i, h]
            else:
                for h in range(cols):
                    grad[t, h] += v * delta[i, h]
    for t in range(n):
        slot[touched[t]] = -1
    return n


@_jit
def _k_rows_sgd(table, grad, touched, n, vel, b, db, vb, wscale, row_lr, lr, momentum, nesterov, weight_decay,
                zero, one):
    """The SGD step of the n rows touched[:n] of E, with gradients wscale·grad[:n] and their velocity rows (vel
    is not touched without momentum), at the rate row_lr; then the biases at the rate lr."""
    plain = momentum == 0 and weight_decay == 0
    cols = table.shape[1]
    for t in range(n):
        if t + _AHEAD < n:
            _k_prefetch_row(table, touched[t + _AHEAD])
            if momentum != 0:
                _k_prefetch_row(vel, touched[t + _AHEAD])
        j = touched[t]
        if plain:  # _k_sgd's arithmetic written out: ~40% faster here than a call per row (measured)
            for h in range(cols):
                table[j, h] = table[j, h] - row_lr * (grad[t, h] * wscale)
        else:
            _k_sgd(table[j], grad[t], vel[j], wscale, row_lr, momentum, nesterov, weight_decay)
    _k_sgd(b, db, vb, one, lr, momentum, nesterov, zero)


@_jit
def _k_rows_adam(table, grad, touched, n, m, v, b, db, mb, vb, wscale, lr, beta1, beta2, c1, c2, bc1, bc2, eps,
                 weight_decay, zero, one):
    """The Adam step of the n rows touched[:n] of E and of their moments; then the biases."""
    for t in range(n):
        if t + _AHEAD < n:
            ahead = touched[t + _AHEAD]
            _k_prefetch_row(table, ahead)
            _k_prefetch_row(m, ahead)
            _k_prefetch_row(v, ahead)
        j = touched[t]
        _k_adam(table[j], grad[t], m[j], v[j], wscale, lr, beta1, beta2, c1, c2, bc1, bc2, eps, weight_decay)
    _k_adam(b, db, mb, vb, one, lr, beta1, beta2, c1, c2, bc1, bc2, eps, zero)


# ---------------------------------------------------------------------------------------------------------------
# Argument checks (the kernels trust shapes and layout, so nothing from Python may reach them unchecked)


def _act_code(name, what="activation"):
    try:
        return _ACT[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} {name!r}; valid names: {', '.join(_ACT)}") from None


def _loss_code(name):
    try:
        return _LOSS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(_LOSS)}") from None


def _dtype_of(x, what):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a NumPy array; got {type(x).__name__}")
    if x.dtype not in _DTYPES:
        raise TypeError(f"{what} must be float32 or float64; got {x.dtype}")
    return x.dtype


@_jit
def _k_address(a):
    """The address of a's first element: ~10x faster than through ``__array_interface__``, which matters for the
    overlap check of train_epoch (some 20-40 arrays per call, once per train_step)."""
    return a.ctypes.data


def _check(x, what, dtype, shape, writable=False, min_rows=None, table=False):
    """A C-contiguous array of ``dtype`` and ``shape`` (None: any size; with min_rows the first dimension is at
    least min_rows); with ``table`` the transpose of a C-contiguous array instead (weights[0]'s embedding
    layout, which the arrays that go with it share)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a NumPy array; got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{what} must have dtype {dtype}; got {x.dtype}")
    ok = x.ndim == len(shape)
    if ok:
        for k, (got, want) in enumerate(zip(x.shape, shape)):
            if k == 0 and min_rows is not None:
                ok = ok and got >= min_rows
            elif want is not None:
                ok = ok and got == want
    if not ok:
        want = "(" + ", ".join("any" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
        if min_rows is not None:
            want += f" with at least {min_rows} rows"
        raise ValueError(f"{what} must have shape {want}; got {x.shape}")
    if table and not x.flags.f_contiguous:
        raise ValueError(f"{what} must be the transpose of a C-contiguous array, as weights[0] is (the embedding "
                         "layout)")
    if not table and not x.flags.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous")
    if writable and not x.flags.writeable:
        raise ValueError(f"{what} must be writable")
    return x


def _as_list(x, what, n):
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"{what} must be a list; got {type(x).__name__}")
    if len(x) != n:
        raise ValueError(f"{what} must have {n} entries (one per layer); got {len(x)}")
    return x


def _needs_z(code, ste):
    return ste and (code == STEP or code == SIGN)


def _loss_needs_z(lcode, acode):
    return (lcode == BINARY_CROSS_ENTROPY and acode == SIGMOID) or (lcode == CROSS_ENTROPY and acode == SOFTMAX)


def _layers(weights, biases, acts, dtype, writable):
    """Check the layers; returns (sizes [N_0, ..., N_L], activation codes)."""
    if not isinstance(weights, (list, tuple)):
        raise TypeError(f"weights must be a list; got {type(weights).__name__}")
    n_layers = len(weights)
    if n_layers == 0:
        raise ValueError("a network needs at least one layer of weights")
    acts = _as_list(acts, "acts", n_layers)
    if biases is not None:
        biases = _as_list(biases, "biases", n_layers)
    sizes, codes = [], []
    for l, w in enumerate(weights):
        if not isinstance(w, np.ndarray) or w.ndim != 2:
            raise ValueError(f"weights[{l}] must be a 2-D array")
        n_out, n_in = w.shape
        if l > 0 and n_in != sizes[-1]:
            raise ValueError(f"weights[{l}] has {n_in} columns but layer {l - 1} has {sizes[-1]} outputs")
        if n_out < 1 or n_in < 1:
            raise ValueError(f"weights[{l}] must not be empty")
        _check(w, f"weights[{l}]", dtype, (n_out, n_in), writable, table=l == 0 and _is_table(w))
        if biases is not None:
            _check(biases[l], f"biases[{l}]", dtype, (n_out,), writable)
        code = _act_code(acts[l])
        if code == SOFTMAX and l + 1 < n_layers:
            raise ValueError("softmax is only allowed at the output layer")
        if l == 0:
            sizes.append(n_in)
        sizes.append(n_out)
        codes.append(code)
    return sizes, codes


def _is_table(w):
    """Whether weights[0] is in the embedding layout: the transpose of a C-contiguous (N_0, N_1) table E. An array
    that is both C- and F-contiguous (N_0 or N_1 is 1) counts as C: its memory is the same either way."""
    return isinstance(w, np.ndarray) and w.flags.f_contiguous and not w.flags.c_contiguous


def _kernel_view(a, table):
    """The C-contiguous array a kernel indexes for weights[0] (or an array with its layout): E = aᵀ in the
    embedding layout, a itself otherwise."""
    return a.T if table else a


def _buffers(sizes, codes, dtype, outs, zs, deltas, rows, exact, ste):
    """Check the per-layer buffers: ``rows`` rows exactly, or at least ``rows`` when not exact."""
    n_layers = len(codes)
    outs = _as_list(outs, "outs", n_layers)
    zs = _as_list(zs, "zs", n_layers)
    if deltas is not None:
        deltas = _as_list(deltas, "deltas", n_layers)
    lead = rows if exact else None
    min_rows = None if exact else rows
    for l in range(n_layers):
        shape = (lead, sizes[l + 1])
        _check(outs[l], f"outs[{l}]", dtype, shape, True, min_rows)
        if zs[l] is None:
            if _needs_z(codes[l], ste):
                raise ValueError(f"zs[{l}] must be an array: step/sign layers trained with the straight-through "
                                 "estimator need their pre-activations")
        else:
            _check(zs[l], f"zs[{l}]", dtype, shape, True, min_rows)
        if deltas is not None:
            _check(deltas[l], f"deltas[{l}]", dtype, shape, True, min_rows)


def _grads(sizes, dtype, dweights, dbiases, table):
    """Check the gradient buffers; dweights[0] has weights[0]'s layout (``table``: the embedding layout)."""
    n_layers = len(sizes) - 1
    dweights = _as_list(dweights, "dweights", n_layers)
    dbiases = _as_list(dbiases, "dbiases", n_layers)
    for l in range(n_layers):
        _check(dweights[l], f"dweights[{l}]", dtype, (sizes[l + 1], sizes[l]), True, table=table and l == 0)
        _check(dbiases[l], f"dbiases[{l}]", dtype, (sizes[l + 1],), True)


_DUMMY = {}


def _dummy(dtype, ndim):
    """A small writable array standing in for an argument a kernel will not touch (one type per dtype)."""
    key = (np.dtype(dtype), ndim)
    arr = _DUMMY.get(key)
    if arr is None:
        arr = _DUMMY[key] = np.zeros((1,) * ndim, dtype=dtype)
    return arr


_NO_ROWS = np.zeros(0, dtype=np.int64)
_NO_WEIGHTS = {dt: np.zeros(0, dtype=dt) for dt in _DTYPES}  # "no sample weights", typed like real ones


def _check_sw(sw, rows, dtype):
    """None, or sample weights as the contract wants them: C-contiguous, 1-D, ``rows`` finite weights ≥ 0."""
    if sw is None:
        return None
    if not isinstance(sw, np.ndarray):
        raise TypeError(f"sw must be a NumPy array or None; got {type(sw).__name__}")
    _check(sw, "sw", dtype, (rows,))
    bad = ~(np.isfinite(sw) & (sw >= 0))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"sw must hold finite weights >= 0; got sw[{k}] = {sw[k]}")
    return sw


def _typed(dtype, *values):
    t = _DTYPES[np.dtype(dtype)]
    return [t(v) for v in values]


# ---------------------------------------------------------------------------------------------------------------
# The kernel contract


def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """out = alpha·op(a)·op(b) + beta·out, where op(x) = xᵀ when trans_x (NumPy's BLAS; out is not read when
    beta == 0, so it may hold anything, even NaN)."""
    dtype = _dtype_of(a, "a")
    if _dtype_of(b, "b") != dtype or _dtype_of(out, "out") != dtype:
        raise TypeError(f"a, b and out must have the same dtype; got {a.dtype}, {b.dtype} and {out.dtype}")
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    if beta == 0.0:
        np.matmul(opa, opb, out=out)
        if alpha != 1.0:
            out *= alpha
    else:
        product = np.matmul(opa, opb)
        product *= alpha
        out *= beta
        out += product


def activation_forward(name, z, out):
    """out = σ(z) row by row (softmax normalises each row); out may be z itself."""
    code = _act_code(name)
    dtype = _dtype_of(z, "z")
    if z.ndim != 2:
        raise ValueError(f"z must be 2-D (rows, cols); got shape {z.shape}")
    _check(z, "z", dtype, z.shape)
    _check(out, "out", dtype, z.shape, writable=True)
    if code == SOFTMAX and z.shape[1] == 0:
        return
    if not _same_memory(out, z):
        _refuse_overlap([("out", out)], [("z", z)])
    if out is not z:
        np.copyto(out, z)  # the kernel works in place, so z itself is never written (it may be read-only)
    _k_bias_act(out, _dummy(dtype, 1), False, code, out)


def activation_backward(name, a, z, delta, ste):
    """delta ← Jᵀ delta, the vector–Jacobian product of σ at each row (σ′(z) ⊙ delta for elementwise units)."""
    code = _act_code(name)
    dtype = _dtype_of(a, "a")
    if a.ndim != 2:
        raise ValueError(f"a must be 2-D (rows, cols); got shape {a.shape}")
    _check(a, "a", dtype, a.shape)
    ste = bool(ste)
    if z is None:
        if _needs_z(code, ste):
            raise ValueError("z is needed for step/sign with ste=True")
        z = a
    else:
        _check(z, "z", dtype, a.shape)
    _check(delta, "delta", dtype, a.shape, writable=True)
    _refuse_overlap([("delta", delta)], [("a", a), ("z", z)])
    _k_act_backward(a, z, delta, code, ste, _dummy(dtype, 1), False)


def _loss_call(loss, act, a, z, y, delta, ste, sw):
    lcode, acode = _loss_code(loss), _act_code(act)
    dtype = _dtype_of(a, "a")
    if a.ndim != 2:
        raise ValueError(f"a must be 2-D (rows, cols); got shape {a.shape}")
    _check(a, "a", dtype, a.shape)
    _check(y, "y", dtype, a.shape)
    rows, cols = a.shape
    if acode == SOFTMAX and cols == 0:
        raise ValueError("softmax needs at least one column")
    sw = _check_sw(sw, rows, dtype)
    if rows == 0:
        return math.nan if sw is None else 0.0  # the mean of no samples, as np.mean gives; no weight: 0
    want_delta = delta is not None
    if z is None:
        if _loss_needs_z(lcode, acode) or (want_delta and _needs_z(acode, ste)):
            raise ValueError(f"z is needed for {loss} with {act} outputs" if _loss_needs_z(lcode, acode)
                             else "z is needed for step/sign with ste=True")
        z = a
    else:
        _check(z, "z", dtype, a.shape)
    if want_delta:
        _check(delta, "delta", dtype, a.shape, writable=True)
        _refuse_overlap([("delta", delta)], [("a", a), ("z", z), ("y", y), ("sw", sw)])
    else:
        delta = _dummy(dtype, 2)
    lo, hi = _typed(dtype, _GRAD_EPS[dtype], 1 - _GRAD_EPS[dtype])
    weighted = sw is not None
    return _k_loss(lcode, acode, a, z, y, _NO_ROWS, False, sw if weighted else _NO_WEIGHTS[dtype], weighted, delta,
                   want_delta, bool(ste), _dummy(dtype, 1), False, lo, hi)


def loss_value(loss, act, a, z, y, sw=None):
    """Batch mean of the per-sample loss; with sample weights sw (shape (B,)) the weighted mean Σ s_k C_k / Σ s_k,
    which is 0 when the weights sum to 0."""
    return _loss_call(loss, act, a, z, y, None, False, sw)


def loss_and_output_delta(loss, act, a, z, y, delta, ste, sw=None):
    """Batch-mean loss; delta = σ′(z^L) ⊙ ∇_a C_k, fused to p − y for sigmoid+BCE and softmax+CE.

    With sample weights sw (shape (B,)) the loss is the weighted mean and row k of delta is multiplied by
    s_k·B/S (S = Σ s_k); when S = 0 the loss is 0 and delta is all zeros.
    """
    if delta is None:
        raise TypeError("delta must be a NumPy array")
    return _loss_call(loss, act, a, z, y, delta, ste, sw)


def _input_dtype(x, weights):
    """The dtype a call works in: a dense x's own; for a CSR x the network's (weights[0]'s), which x.data must
    have (when weights is not even a list, x.data's, and _layers says what is wrong)."""
    if not isinstance(x, CSR):
        return _dtype_of(x, "x")
    if isinstance(weights, (list, tuple)) and weights:
        return _dtype_of(weights[0], "weights[0]")
    return _dtype_of(x.data, "x.data")


def _check_x(x, dtype, n_in):
    """Check x, an array (rows, n_in) or a CSR of n_in columns (everything the sparse kernels index by, so that no
    entry reads outside the arrays); returns its rows."""
    if isinstance(x, CSR):
        _check_csr(x, n_in, dtype)
        return x.shape[0]
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (samples, features); got shape {x.shape}")
    rows = x.shape[0]
    _check(x, "x", dtype, (rows, n_in))
    return rows


def forward(weights, biases, acts, x, outs, zs):
    """Forward pass: outs[l] = σ(A Wᵀ + b) layer by layer; zs[l] keeps Z where it is not None. x: an array
    (B, N_0) or a CSR."""
    dtype = _input_dtype(x, weights)
    sizes, codes = _layers(weights, biases, acts, dtype, False)
    rows = _check_x(x, dtype, sizes[0])
    _buffers(sizes, codes, dtype, outs, zs, None, rows, True, False)
    if rows == 0:
        return
    _refuse_network_overlap(weights, biases, x, outs, zs, address=_k_address)
    _forward(weights, biases, codes, x, outs, zs)


def _forward(weights, biases, codes, x, outs, zs):
    a_prev = x
    for w, b, code, out, z in zip(weights, biases, codes, outs, zs):
        target = out if z is None else z
        if isinstance(a_prev, CSR):
            _k_sparse_z(a_prev.indptr, a_prev.indices, a_prev.data, _NO_ROWS, False, 0, w.T, w.dtype.type(1),
                        target)
        else:
            np.matmul(a_prev, w.T, out=target)
        _k_bias_act(target, b, True, code, out)
        a_prev = out


def backward(weights, acts, loss, x, y, outs, zs, deltas, dweights, dbiases, ste, sw=None):
    """Backpropagation after ``forward``: fills deltas, dweights and dbiases; returns the batch-mean loss.

    With sample weights sw (one per row of x) the loss and the gradients are those of the weighted mean. For a
    sparse x (a CSR) dweights[0] is still the whole gradient of W¹: zero outside the columns x uses.
    """
    dtype = _input_dtype(x, weights)
    sizes, codes = _layers(weights, None, acts, dtype, False)
    lcode = _loss_code(loss)
    ste = bool(ste)
    rows = _check_x(x, dtype, sizes[0])
    if rows == 0:
        raise ValueError("x has no samples")
    _check(y, "y", dtype, (rows, sizes[-1]))
    sw = _check_sw(sw, rows, dtype)
    _buffers(sizes, codes, dtype, outs, zs, deltas, rows, True, ste)
    table = _is_table(weights[0])
    _grads(sizes, dtype, dweights, dbiases, table)
    if zs[-1] is None and _loss_needs_z(lcode, codes[-1]):
        raise ValueError(f"zs[-1] must be an array: {loss} with {acts[-1]} outputs needs the pre-activations")
    _refuse_network_overlap(weights, (), x, outs, zs, y, sw, deltas, dweights, dbiases, address=_k_address)
    zz = [out if z is None else z for out, z in zip(outs, zs)]
    lo, hi = _typed(dtype, _GRAD_EPS[dtype], 1 - _GRAD_EPS[dtype])
    weighted = sw is not None
    value = _k_loss(lcode, codes[-1], outs[-1], zz[-1], y, _NO_ROWS, False, sw if weighted else _NO_WEIGHTS[dtype],
                    weighted, deltas[-1], True, ste, dbiases[-1], True, lo, hi)
    (inv_batch,) = _typed(dtype, 1.0 / rows)
    for l in range(len(weights) - 1, -1, -1):
        if l > 0:
            np.matmul(deltas[l].T, outs[l - 1], out=dweights[l])  # ∂C/∂W = Δᵀ A / B
        elif isinstance(x, CSR):  # (Xᵀ Δ¹)ᵀ: the batch's entries scattered into a zeroed gradient
            dweights[0].fill(0)
            _k_sparse_scatter(x.indptr, x.indices, x.data, _NO_ROWS, False, 0, deltas[0], dweights[0].T)
        elif table:
            np.matmul(x.T, deltas[0], out=dweights[0].T)  # written as the table it is: (Xᵀ Δ¹) = (Δ¹ᵀ X)ᵀ
        else:
            np.matmul(deltas[0].T, x, out=dweights[0])
        np.multiply(dweights[l], inv_batch, out=dweights[l])
        if l > 0:
            np.matmul(deltas[l], weights[l], out=deltas[l - 1])  # Δ^{l-1} = (Δ^l W^l) ⊙ σ′
            _k_act_backward(outs[l - 1], zz[l - 1], deltas[l - 1], codes[l - 1], ste, dbiases[l - 1], True)
    return value


def _flat_params(params, grads, extra, what_extra):
    """Check params / grads (and the state arrays in ``extra``) and return flat views of each."""
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"params must be a list; got {type(params).__name__}")
    n = len(params)
    grads = _as_list(grads, "grads", n)
    lists = [_as_list(e, name, n) for e, name in zip(extra, what_extra)]
    flat = []
    dtype = _dtype_of(params[0], "params[0]") if n else None
    for i, p in enumerate(params):
        _dtype_of(p, f"params[{i}]")
        if p.ndim not in (1, 2):
            raise ValueError(f"params[{i}] must be 1-D or 2-D; got shape {p.shape}")
        # params[0] may be weights[0] in the embedding layout; its gradient and state then share that layout,
        # and the flat views of their transposes pair the same elements.
        table = i == 0 and _is_table(p)
        row = [_check(p, f"params[{i}]", dtype, p.shape, True, table=table),
               _check(grads[i], f"grads[{i}]", dtype, p.shape, table=table)]
        for e, name in zip(lists, what_extra):
            row.append(_check(e[i], f"{name}[{i}]", dtype, p.shape, True, table=table))
        flat.append([_kernel_view(a, table).reshape(-1) for a in row])
    _refuse_overlap(_named("params", params) + [w for e, name in zip(lists, what_extra) for w in _named(name, e)],
                    _named("grads", grads), _k_address)
    return dtype, flat


def sgd_update(params, grads, velocities, lr, momentum, nesterov, weight_decay):
    """p ← p − lr·g, with momentum v ← μv + g (and Nesterov's look-ahead g + μv) when momentum > 0."""
    momentum = float(momentum)
    extra, names = ((velocities,), ("velocities",)) if momentum else ((), ())
    dtype, flat = _flat_params(params, grads, extra, names)
    if dtype is None:
        return
    one, lr_t, mom_t, wd_t = _typed(dtype, 1.0, lr, momentum, weight_decay)
    nesterov = bool(nesterov)
    for row in flat:
        p, g = row[0], row[1]
        v = row[2] if momentum else _dummy(dtype, 1)
        _k_sgd(p, g, v, one, lr_t, mom_t, nesterov, wd_t)


def adam_update(params, grads, ms, vs, step, lr, beta1, beta2, eps, weight_decay):
    """Adam (Kingma & Ba) with bias correction; ``step`` counts updates from 1."""
    if step < 1:
        raise ValueError(f"step counts Adam updates from 1; got {step}")
    dtype, flat = _flat_params(params, grads, (ms, vs), ("ms", "vs"))
    if dtype is None:
        return
    coeffs = _adam_coefficients(dtype, lr, beta1, beta2, eps, step)
    (one, wd_t) = _typed(dtype, 1.0, weight_decay)
    for p, g, m, v in flat:
        _k_adam(p, g, m, v, one, *coeffs, wd_t)


def _adam_coefficients(dtype, lr, beta1, beta2, eps, step):
    """(lr, β1, β2, 1−β1, 1−β2, 1−β1^t, 1−β2^t, eps) in the arrays' dtype, rounded as the reference rounds them."""
    return _typed(dtype, lr, beta1, beta2, 1 - beta1, 1 - beta2, 1 - beta1**step, 1 - beta2**step, eps)


# ---------------------------------------------------------------------------------------------------------------
# One epoch of training


def _check_order(order, n):
    if order is None:
        return None
    if not isinstance(order, np.ndarray) or order.dtype.kind not in "iu":
        raise TypeError("order must be an integer array of row indices")
    if order.ndim != 1 or order.shape[0] != n:
        raise ValueError(f"order must be a 1-D array of {n} row indices; got shape {order.shape}")
    if n and (order.min() < 0 or order.max() >= n):
        bad = int(np.flatnonzero((order < 0) | (order >= n))[0])
        raise ValueError(f"order[{bad}] = {order[bad]} is not a row index in 0..{n - 1}")
    return np.ascontiguousarray(order, dtype=np.int64)


def _batch_views(rows, outs, zs, deltas, xbuf):
    """The first ``rows`` rows of every buffer: (outs, targets of the GEMM, z arguments, deltas, deltasᵀ, xbuf)."""
    o = [a[:rows] for a in outs]
    tgt = [out if z is None else z[:rows] for out, z in zip(o, zs)]
    d = [a[:rows] for a in deltas]
    return o, tgt, d, [a.T for a in d], None if xbuf is None else xbuf[:rows]


def train_epoch(weights, biases, acts, loss, x, y, order, batch, outs, zs, deltas, dweights, dbiases, xbuf, ybuf,
                ste, opt, sw=None, progress=None):
    """Train on x in batches of ``batch`` rows, visiting rows in ``order`` (or in storage order when None).

    Same contract as ``_ref.train_epoch``. Shuffled batches of a dense x are gathered into xbuf; their targets
    (and sample weights) are read through ``order`` by the loss kernel, so ybuf is checked but not written.
    dweights holds Δᵀ A without the 1/B afterwards (the update kernels apply it). With sample weights sw (one
    per row of x) each batch minimises its weighted-mean loss; a batch whose weights sum to 0 is skipped (no
    update at all). ``progress`` (None or a callable) is called between batches, every
    ``_ref.PROGRESS_INTERVAL`` seconds at most, with the rows of x gone through so far.

    A sparse x (a CSR) is read in place through ``order`` (xbuf is not used). Its first layer's update touches
    only the rows of E = W¹ᵀ that the batch uses (their gradients summed first, so a row is written once per
    batch), except for a stateful optimizer with ``lazy`` False, which updates every row every step (the dense
    formulas: slow by definition). Plain SGD keeps weight decay exact without touching every row: W¹ = s·E
    inside the call, s shrinks by (1 − lr·weight_decay) per step, the row updates are divided by s, and s is
    folded back into E when it gets small and before the call returns. Only the dense formulas write
    dweights[0].

    Returns (Σ batch loss × batch rows, or with weights × batch weight sum; rows trained; first row of the batch
    whose loss was not finite or −1; that loss). A batch with a non-finite loss is not applied and ends the epoch.
    """
    # ---- checks, once per epoch
    dtype = _input_dtype(x, weights)
    sizes, codes = _layers(weights, biases, acts, dtype, True)
    n_layers = len(codes)
    lcode = _loss_code(loss)
    ste = bool(ste)
    sparse = isinstance(x, CSR)
    n = _check_x(x, dtype, sizes[0])
    if n == 0:
        raise ValueError("x has no samples")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)):
        raise TypeError(f"batch must be an int; got {type(batch).__name__}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1; got {batch}")
    batch = int(batch)
    cap = min(batch, n)
    _check(y, "y", dtype, (n, sizes[-1]))
    sw = _check_sw(sw, n, dtype)
    tick = _progress_ticker(progress)
    _buffers(sizes, codes, dtype, outs, zs, deltas, cap, False, ste)
    table = _is_table(weights[0])
    _grads(sizes, dtype, dweights, dbiases, table)
    if zs[-1] is None and _loss_needs_z(lcode, codes[-1]):
        raise ValueError(f"zs[-1] must be an array: {loss} with {acts[-1]} outputs needs the pre-activations")
    order = _check_order(order, n)
    shuffled = order is not None
    if shuffled:
        if not sparse:
            _check(xbuf, "xbuf", dtype, (None, sizes[0]), True, cap)
        _check(ybuf, "ybuf", dtype, (None, sizes[-1]), True, cap)
    if not isinstance(opt, (tuple, list)) or len(opt) != 11:
        raise ValueError("opt must be (kind, lr, momentum, nesterov, weight_decay, beta1, beta2, eps, step, state, "
                         "lazy)")
    kind, lr, momentum, nesterov, weight_decay, beta1, beta2, eps, step, state, lazy = opt
    try:
        adam = _OPT[kind] == 1
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer kind {kind!r}; valid: {', '.join(_OPT)}") from None
    momentum, nesterov, step = float(momentum), bool(nesterov), int(step)
    stateful = adam or momentum != 0.0
    if stateful:
        want = 4 * n_layers if adam else 2 * n_layers
        state = _as_list(state, "optimizer state", want)
        for i, s in enumerate(state):
            l = i % n_layers
            of_bias = (i // n_layers) % 2 == 1
            shape = (sizes[l + 1],) if of_bias else (sizes[l + 1], sizes[l])
            _check(s, f"optimizer state[{i}]", dtype, shape, True, table=table and l == 0 and not of_bias)
    _refuse_network_overlap(weights, biases, x, outs, zs, y, sw, deltas, dweights, dbiases, train=(
        xbuf if shuffled and not sparse else None, ybuf if shuffled else None, state if stateful else (), order),
        address=_k_address)

    # ---- per-epoch constants: typed scalars, views for the full and the last batch
    zero, one, lr_t, mom_t, wd_t, b1_t, b2_t, c1_t, c2_t, eps_t = _typed(
        dtype, 0.0, 1.0, lr, momentum, weight_decay, beta1, beta2, 1 - beta1, 1 - beta2, eps)
    grad_lo, grad_hi = _typed(dtype, _GRAD_EPS[dtype], 1 - _GRAD_EPS[dtype])
    t = _DTYPES[dtype]
    wts = [w.T for w in weights]
    full = _batch_views(cap, outs, zs, deltas, xbuf if shuffled and not sparse else None)
    rest = n % cap
    last = _batch_views(rest, outs, zs, deltas, xbuf if shuffled and not sparse else None) if rest else full
    scale_full, scale_last = t(1.0 / cap), t(1.0 / rest) if rest else t(1.0 / cap)
    if adam:
        m_w, m_b = state[:n_layers], state[n_layers:2 * n_layers]
        v_w, v_b = state[2 * n_layers:3 * n_layers], state[3 * n_layers:]
    elif stateful:
        v_w, v_b = state[:n_layers], state[n_layers:]
    else:  # no state: the gradients stand in for the velocities, which the kernels then do not touch
        v_w, v_b = list(dweights), list(dbiases)
    # The whole-layer update kernels pair elements of flat C-contiguous arrays: weights[0] and the arrays with its
    # layout go in as the table E when in the embedding layout (the pairing is the same).
    wk = [_kernel_view(weights[0], table)] + list(weights[1:])
    dwk = [_kernel_view(dweights[0], table)] + list(dweights[1:])
    vk = [_kernel_view(v_w[0], table)] + list(v_w[1:])
    mk = [_kernel_view(m_w[0], table)] + list(m_w[1:]) if adam else None
    out_code = codes[-1]
    layers_down = range(n_layers - 1, -1, -1)
    matmul, bias_act, act_backward, loss_kernel = np.matmul, _k_bias_act, _k_act_backward, _k_loss
    sgd_layer, adam_layer, take, isfinite = _k_sgd_layer, _k_adam_layer, np.take, math.isfinite
    sgd_small, adam_small = _k_sgd_layer_small, _k_adam_layer_small
    weighted = sw is not None
    swb = _NO_WEIGHTS[dtype]
    weight_sum = _k_weight_sum

    if cap == 1 and not sparse and not table:
        return _epoch_rows(weights, biases, codes, lcode, x, y, order, full, dweights, dbiases, v_w, v_b,
                           m_w if adam else None, m_b if adam else None, adam, step, (
                               lr_t, mom_t, nesterov, wd_t, b1_t, b2_t, c1_t, c2_t, eps_t, float(beta1),
                               float(beta2)), sw, ste, grad_lo, grad_hi, zero, one, tick)

    # ---- sparse x: E = W¹ᵀ as the sparse kernels index it (whatever the layout), and the per-call scratch
    s = 1.0  # W¹ = s·E while plain SGD decays the weights lazily
    decay = 1.0
    if sparse:
        indptr, indices, data = x.indptr, x.indices, x.data
        rows_of = order if shuffled else _NO_ROWS
        E, dE = weights[0].T, dweights[0].T
        dense_rows = stateful and not bool(lazy)  # every row of E every step: the dense formulas
        if not dense_rows:
            # Room for the distinct columns of the fullest batch (at most its entries, at most N_0).
            counts = np.diff(indptr)
            if shuffled:
                counts = counts[order]
            most = int(np.add.reduceat(counts, np.arange(0, n, batch)).max())
            room = min(sizes[0], most)
            slot, touched = _slot_map(sizes[0]), np.empty(room, dtype=np.int64)
            grad_rows = np.empty((room, sizes[1]), dtype=dtype)
            # State rows as E's rows; without state E stands in (the kernels do not touch it then).
            vel_rows = v_w[0].T if stateful else E
            m_rows = m_w[0].T if adam else None
            if not stateful and weight_decay != 0.0:
                decay = 1.0 - float(lr) * float(weight_decay)
        s_t = one
        row_wd = zero if decay != 1.0 else wd_t  # the lazily decayed rows get their decay through s

    # ---- the batch loop
    total, done = 0.0, 0
    for lo in range(0, n, batch):
        if tick is not None and lo:  # between batches, as the compiled core
            tick(lo)
        rows = min(cap, n - lo)
        weight = rows
        if weighted:
            # The batch's weight sum, once per batch; a batch of weight 0 leaves everything as it is.
            weight = weight_sum(sw, rows, lo, order if shuffled else _NO_ROWS, shuffled)
            if not weight > 0:
                continue
            swb = sw if shuffled else sw[lo:lo + rows]  # read through idx like the targets
        o, tgt, d, dt, xb = full if rows == cap else last
        if shuffled:
            idx = order[lo:lo + rows]
            if not sparse:
                take(x, idx, axis=0, out=xb)
            yb = y
        else:
            xb = None if sparse else x[lo:lo + rows]
            idx = _NO_ROWS
            yb = y[lo:lo + rows]
        a_prev = xb
        for l in range(n_layers):
            if l == 0 and sparse:
                _k_sparse_z(indptr, indices, data, rows_of, shuffled, lo, E, s_t, tgt[0])
            else:
                matmul(a_prev, wts[l], out=tgt[l])
            bias_act(tgt[l], biases[l], True, codes[l], o[l])
            a_prev = o[l]
        # tgt[l] is the kept Z where there is one, else the output itself (then unused as z)
        value = loss_kernel(lcode, out_code, o[-1], tgt[-1], yb, idx, shuffled, swb, weighted, d[-1], True, ste,
                            dbiases[-1], True, grad_lo, grad_hi)
        if not isfinite(value):
            if s != 1.0:
                _fold(weights[0], s)
            return total, done, lo, value
        scale = scale_full if rows == cap else scale_last
        if adam:
            step += 1
            bc1, bc2 = t(1 - beta1**step), t(1 - beta2**step)
        small = rows <= _SMALL_BATCH
        for l in layers_down:
            if l > 0:
                matmul(d[l], weights[l], out=d[l - 1])  # Δ^{l-1} = (Δ^l W^l) ⊙ σ′, before W^l changes
                act_backward(o[l - 1], tgt[l - 1], d[l - 1], codes[l - 1], ste, dbiases[l - 1], True)
            if l == 0 and sparse:
                if dense_rows:  # the whole gradient (zero outside the batch's columns), then the dense update
                    dweights[0].fill(0)
                    _k_sparse_scatter(indptr, indices, data, rows_of, shuffled, lo, d[0], dE)
                else:
                    used = _k_sparse_group(indptr, indices, data, rows_of, shuffled, lo, d[0], slot, touched,
                                           grad_rows)
                    if adam:
                        _k_rows_adam(E, grad_rows, touched, used, m_rows, vel_rows, biases[0], dbiases[0], m_b[0],
                                     v_b[0], scale, lr_t, b1_t, b2_t, c1_t, c2_t, bc1, bc2, eps_t, wd_t, zero, one)
                        continue
                    row_lr = lr_t
                    if decay != 1.0:
                        # W¹ ← decay·W¹ − lr·g with W¹ = s·E: s ← decay·s, E ← E − (lr/s)·g. A small s (or a
                        # factor ≤ 0) is folded into E first, so E stays in range.
                        s *= decay
                        if not s >= _FOLD_BELOW:
                            _fold(weights[0], s)
                            s = 1.0
                        s_t, row_lr = t(s), t(lr / s)
                    _k_rows_sgd(E, grad_rows, touched, used, vel_rows, biases[0], dbiases[0], v_b[0], scale, row_lr,
                                lr_t, mom_t, nesterov, row_wd, zero, one)
                    continue
            else:
                a_in = xb if l == 0 else o[l - 1]
                if small:  # Δᵀ A inside the update kernel
                    # For the table, its transpose Aᵀ Δ: the arguments swap, the update pairs the same elements.
                    dd, aa = (a_in, d[0]) if l == 0 and table else (d[l], a_in)
                    if adam:
                        adam_small(wk[l], dd, aa, dwk[l], mk[l], vk[l], biases[l], dbiases[l], m_b[l], v_b[l], scale,
                                   lr_t, b1_t, b2_t, c1_t, c2_t, bc1, bc2, eps_t, wd_t, zero, one)
                    else:
                        sgd_small(wk[l], dd, aa, dwk[l], vk[l], biases[l], dbiases[l], v_b[l], scale, lr_t, mom_t,
                                  nesterov, wd_t, zero, one)
                    continue
                if l == 0 and table:
                    matmul(a_in.T, d[0], out=dwk[0])  # Aᵀ Δ, the table's gradient (the 1/B is in the update)
                else:
                    matmul(dt[l], a_in, out=dwk[l])  # Δᵀ A (the 1/B is applied in the update)
            if adam:
                adam_layer(wk[l], dwk[l], mk[l], vk[l], biases[l], dbiases[l], m_b[l], v_b[l], scale, lr_t, b1_t,
                           b2_t, c1_t, c2_t, bc1, bc2, eps_t, wd_t, zero, one)
            else:
                sgd_layer(wk[l], dwk[l], vk[l], biases[l], dbiases[l], v_b[l], scale, lr_t, mom_t, nesterov, wd_t,
                          zero, one)
        total += value * weight
        done += rows
    if s != 1.0:
        _fold(weights[0], s)
    return total, done, -1, 0.0


# A compiled call of the per-sample path runs about this many multiply-adds (3 per weight per sample), then returns
# to Python: often enough for progress reports and Ctrl-C (~10-20 ms), rarely enough that the call's cost (~5 µs
# to unpack its arguments) is lost in it.
_ROW_CHUNK_WORK = 6_000_000


def _epoch_rows(weights, biases, codes, lcode, x, y, order, views, dweights, dbiases, v_w, v_b, m_w, m_b, adam,
                step, coeffs, sw, ste, grad_lo, grad_hi, zero, one, tick):
    """train_epoch at batch 1 for a dense x with W¹ in rows: runs of samples through _k_epoch_rows (see there);
    returns what train_epoch returns."""
    n = x.shape[0]
    o, tgt, d = (tuple(a) for a in views[:3])
    vws, vbs = tuple(v_w), tuple(v_b)
    mws, mbs = (tuple(m_w), tuple(m_b)) if adam else (vws, vbs)  # not touched without Adam
    args = (tuple(weights), tuple(biases), np.array(codes, dtype=np.int64), lcode, x, y)
    shuffled = order is not None
    rows_of = order if shuffled else _NO_ROWS
    weighted = sw is not None
    swb = sw if weighted else _NO_WEIGHTS[x.dtype]
    chunk = max(1, _ROW_CHUNK_WORK // (3 * sum(w.size for w in weights)))
    total, done = 0.0, 0
    for lo in range(0, n, chunk):
        if tick is not None and lo:
            tick(lo)
        part, rows, bad, value, step = _k_epoch_rows(
            *args, rows_of, shuffled, lo, min(n, lo + chunk), o, tgt, d, tuple(dweights), tuple(dbiases), vws, vbs,
            mws, mbs, adam, step, *coeffs, swb, weighted, ste, grad_lo, grad_hi, zero, one)
        total += part
        done += rows
        if bad >= 0:
            return total, done, bad, value
    return total, done, -1, 0.0


# Plain SGD's lazy decay folds its scale into E once the scale falls below this: far from float32's smallest
# normal numbers (E grows as 1/s), and rare enough (a fold is one pass over E) to cost nothing per step.
_FOLD_BELOW = 1e-6


def _fold(w, s):
    """W¹ = s·E made explicit: E ← s·E (in the network's dtype), after which the scale is 1."""
    np.multiply(w, w.dtype.type(s), out=w)


_local = threading.local()


def _slot_map(n):
    """A column → slot map of n entries, all -1, for _k_sparse_group (which leaves it so). Kept per thread (two
    threads training at once each have their own) and reused, so that a call costs no O(N_0) fill."""
    slots = getattr(_local, "slots", None)
    if slots is None or slots.shape[0] < n:
        slots = _local.slots = np.full(n, -1, dtype=np.int32)
    return slots[:n]


# ---------------------------------------------------------------------------------------------------------------
# Warm-up


def compile_all(dtypes=(np.float32, np.float64)):
    """Compile (or load from Numba's on-disk cache) every kernel for each dtype; returns the seconds it took.

    Each kernel is called through the public functions on a tiny network, so exactly the signatures that
    training uses get compiled: the first call in a new process then costs no compilation.
    """
    start = time.perf_counter()
    for dtype in dtypes:
        dt = np.dtype(dtype)
        if dt not in _DTYPES:
            raise ValueError(f"dtype must be float32 or float64; got {dt}")
        rng = np.random.default_rng(0)
        sizes = [3, 4, 2]
        weights = [rng.standard_normal((sizes[l + 1], sizes[l])).astype(dt) for l in range(2)]
        biases = [np.zeros(sizes[l + 1], dt) for l in range(2)]
        acts = ["tanh", "softmax"]
        rows = 5
        x = rng.standard_normal((rows, 3)).astype(dt)
        y = np.eye(2, dtype=dt)[rng.integers(0, 2, rows)]
        outs = [np.empty((rows, s), dt) for s in sizes[1:]]
        zs = [None, np.empty((rows, 2), dt)]
        deltas = [np.empty((rows, s), dt) for s in sizes[1:]]
        dws = [np.empty_like(w) for w in weights]
        dbs = [np.empty_like(b) for b in biases]
        forward(weights, biases, acts, x, outs, zs)
        backward(weights, acts, "cross_entropy", x, y, outs, zs, deltas, dws, dbs, False)
        loss_value("cross_entropy", "softmax", outs[-1], zs[-1], y)
        activation_forward("relu", outs[0], outs[0])
        activation_backward("relu", outs[0], None, deltas[0], False)
        params = weights + biases
        grads = dws + dbs
        sgd_update(params, grads, [np.zeros_like(p) for p in params], 0.01, 0.9, True, 0.0)
        adam_update(params, grads, [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params], 1,
                    1e-3, 0.9, 0.999, 1e-8, 0.0)
        xbuf, ybuf = np.empty((1, 3), dt), np.empty((1, 2), dt)
        order = np.arange(rows, dtype=np.int64)
        sgd_state = [np.zeros_like(p) for p in params]
        adam_state = [np.zeros_like(p) for p in params + params]
        for spec in (("sgd", 0.01, 0.9, False, 0.0, 0.0, 0.0, 0.0, 0, sgd_state, True),
                     ("adam", 1e-3, 0.0, False, 0.0, 0.9, 0.999, 1e-8, 0, adam_state, True)):
            # shuffled single rows (Δᵀ A fused into the update), then a weighted batch in storage order (Δᵀ A by
            # BLAS; sample weights take the same kernels plus the weight sum)
            train_epoch(weights, biases, acts, "cross_entropy", x, y, order, 1, outs, zs, deltas, dws, dbs, xbuf,
                        ybuf, False, spec)
            train_epoch(weights, biases, acts, "cross_entropy", x, y, None, rows, outs, zs, deltas, dws, dbs, None,
                        None, False, spec, np.ones(rows, dt))
        _compile_rows(dt, x, y, order)
        _compile_sparse(weights, biases, acts, y, outs, zs, deltas, order)
    return time.perf_counter() - start


def _compile_rows(dt, x, y, order):
    """compile_all's per-sample part: _k_epoch_rows takes its layers as tuples, so each depth is its own
    signature. The loop above compiled it for networks of two layers; this adds three (the other common depth;
    other depths compile on first use, a few seconds, then load from the cache)."""
    rows = x.shape[0]
    for sizes in ([3, 4, 3, 2],):
        layers = len(sizes) - 1
        weights = [np.full((sizes[l + 1], sizes[l]), 0.1, dt) for l in range(layers)]
        biases = [np.zeros(n, dt) for n in sizes[1:]]
        acts = ["tanh"] * (layers - 1) + ["softmax"]
        outs = [np.empty((1, n), dt) for n in sizes[1:]]
        zs = [None] * (layers - 1) + [np.empty((1, 2), dt)]
        deltas = [np.empty((1, n), dt) for n in sizes[1:]]
        dws = [np.empty_like(w) for w in weights]
        dbs = [np.empty_like(b) for b in biases]
        state = [np.zeros_like(p) for p in weights + biases]
        moments = state + [np.zeros_like(p) for p in weights + biases]
        for spec in (("sgd", 0.01, 0.9, False, 0.0, 0.0, 0.0, 0.0, 0, state, True),
                     ("adam", 1e-3, 0.0, False, 0.0, 0.9, 0.999, 1e-8, 0, moments, True)):
            train_epoch(weights, biases, acts, "cross_entropy", x, y, order, 1, outs, zs, deltas, dws, dbs,
                        x[:1].copy(), y[:1].copy(), False, spec, np.ones(rows, dt))


def _compile_sparse(weights, biases, acts, y, outs, zs, deltas, order):
    """compile_all's sparse part: forward and backward with W¹ in either layout (predicting or evaluating on
    sparse rows keeps the layout the network has), training in the embedding layout (where fit and train_step
    put W¹ for sparse rows) with every way of updating it."""
    dt = weights[0].dtype
    rows, n_in = outs[0].shape[0], weights[0].shape[1]
    x = CSR(np.arange(rows + 1, dtype=np.int64), (np.arange(rows) % n_in).astype(np.int32), np.ones(rows, dt), n_in)
    for w0 in (weights[0], np.ascontiguousarray(weights[0].T).T):
        w = [w0] + weights[1:]
        dws = [np.empty_like(a) for a in w]  # empty_like keeps W¹'s layout
        dbs = [np.empty_like(b) for b in biases]
        forward(w, biases, acts, x, outs, zs)
        backward(w, acts, "cross_entropy", x, y, outs, zs, deltas, dws, dbs, False)
    params = w + biases
    ybuf = np.empty_like(y)
    for lazy in (True, False):
        sgd = [np.zeros_like(p) for p in params]
        moments = [np.zeros_like(p) for p in params + params]
        for spec in (("sgd", 0.01, 0.0, False, 1e-3, 0.0, 0.0, 0.0, 0, [], lazy),
                     ("sgd", 0.01, 0.9, False, 0.0, 0.0, 0.0, 0.0, 0, sgd, lazy),
                     ("adam", 1e-3, 0.0, False, 0.0, 0.9, 0.999, 1e-8, 0, moments, lazy)):
            train_epoch(w, biases, acts, "cross_entropy", x, y, order, 2, outs, zs, deltas, dws, dbs, None, ybuf,
                        False, spec)
