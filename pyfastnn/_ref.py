"""The NumPy reference backend ("numpy"): the whole mathematics of a multilayer perceptron, written to be read.

This module is the oracle every faster backend is tested against, so it favours the formulas of the classic
derivation over speed. Notation (see docs/design.md): layer l = 1..L, rows of a batch are samples,

    Z^l = A^{l-1} W^lᵀ + b^l,        A^l = σ_l(Z^l),            A^0 = X
    Δ^L = σ'(Z^L) ⊙ ∇_A C            (the output delta, per sample)
    Δ^{l-1} = (Δ^l W^l) ⊙ σ'(Z^{l-1})
    ∂C/∂W^l = Δ^lᵀ A^{l-1} / B,      ∂C/∂b^l = mean over the batch of Δ^l

The cost of a batch is the mean of the per-sample costs; each per-sample cost sums over the outputs.

Sample weights (``sw``, as scikit-learn's): a batch whose rows carry weights s_k ≥ 0, S = Σ s_k, costs
Σ s_k C_k / S, the weighted mean. Its gradient is that of the plain mean once row k of the output delta is
multiplied by s_k·B/S, so every backend scales the output delta where it is produced and leaves everything
downstream (which divides by B) untouched. All weights 1 give exactly the unweighted mean. A batch with S = 0
costs 0 and has an all-zero output delta. A zero weight does not hide a non-finite cost (0·∞ is NaN), so a
diverging row still shows. ``sw`` is None or a C-contiguous 1-D array of the network's dtype with one finite
weight ≥ 0 per row (of ``a`` / ``y`` for the loss kernels, of ``x`` for backward and train_epoch); anything else
raises ValueError or TypeError.

Kernel contract (shared with ``_core`` and ``_numba``; ``KERNELS`` lists it and a test enforces it). Kernels
write into arrays the caller owns; lists are indexed by layer, 0-based (index l holds layer l+1):

    gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0) -> None
    activation_forward(name, z, out) -> None                          out = σ(z); out may be z
    activation_backward(name, a, z, delta, ste) -> None               delta ⊙= σ'(z), in place
    loss_and_output_delta(loss, act, a, z, y, delta, ste, sw=None) -> float
                                                                      batch-mean loss; delta = ∂C_k/∂z^L per sample
                                                                      (times s_k·B/S with weights)
    loss_value(loss, act, a, z, y, sw=None) -> float                  batch-mean (weighted-mean) loss only
    forward(weights, biases, acts, x, outs, zs) -> None               outs[l] = A^{l+1}; zs[l] = Z^{l+1} or None
    backward(weights, acts, loss, x, y, outs, zs, deltas, dweights, dbiases, ste, sw=None) -> float
    sgd_update(params, grads, velocities, lr, momentum, nesterov, weight_decay) -> None
    adam_update(params, grads, ms, vs, step, lr, beta1, beta2, eps, weight_decay) -> None
    train_epoch(weights, biases, acts, loss, x, y, order, batch, outs, zs, deltas, dweights, dbiases,
                xbuf, ybuf, ste, opt, sw=None, progress=None)
                                                -> (loss_sum, samples_done, bad_batch_start, bad_loss)

train_epoch's loss_sum is Σ over the applied batches of (batch loss × batch rows) = Σ_k C_k, or with weights
Σ (batch loss × S) = Σ_k s_k C_k: the caller divides by the rows, or by Σ s_k, for the epoch's mean. In
train_epoch sw[k] belongs to row k of x (it is gathered through ``order`` like x and y). A batch whose weights
sum to 0 is skipped: no update at all (not even weight decay, momentum or Adam's step), and it adds
nothing to loss_sum or samples_done; samples_done counts only the rows of applied batches, so the number of
updates made is still ceil(samples_done / batch). train_epoch may end early with KeyboardInterrupt (Ctrl-C): the
compiled core checks for signals between batches, the Python backends anywhere in their loop, so the parameters
and the optimizer's state are then partly updated; a caller that needs a consistent state restores a snapshot
(fit and train_step do). ``progress`` (None or a callable) reports progress within an epoch: it is called
between batches, at most every ``PROGRESS_INTERVAL`` seconds (the first time that long after the epoch
starts), with one int, the rows of x gone through so far (applied or skipped for a zero weight sum), so its
successive arguments increase and stay below len(x). The compiled core calls it when it takes the GIL back to check for
signals anyway, never once per batch. An exception it raises ends the epoch like Ctrl-C does; it must not use
the call's arrays. None costs nothing.

No array a kernel writes (an output, a buffer, a parameter it updates) may share memory with another of the
call's arrays: each backend refuses that with the same ValueError naming both, before touching anything. The one
exception is ``activation_forward`` with ``out`` the very array ``z`` (in place).

``zs[l]`` is None where layer l+1 does not need its pre-activation kept: only the output layer (for the stable
log-sigmoid / log-softmax losses) and step/sign layers trained with the straight-through estimator need it.

Sparse input (docs/sparse.md). ``x`` of forward, backward and train_epoch may be a :class:`CSR`: rows in
compressed sparse row form, indptr int64 (rows + 1), indices int32, data of the network's dtype, n_cols = N_0.
Duplicate entries of a row add up and the order of a row's entries does not matter, as in scipy. Only the first
layer sees the difference: Z¹ = X W¹ᵀ + b¹ sums the columns of W¹ that a row's entries pick, ∂C/∂W¹ = Δ¹ᵀ X / B,
and nothing below Z¹ is needed. train_epoch reads a sparse x's rows through ``order`` (xbuf is None then).

The first layer's weights come in either of two layouts, and every kernel that takes weights accepts both:
``weights[0]`` C-contiguous (N_1, N_0), or the transpose of a C-contiguous (N_0, N_1) table E (an F-contiguous
array: the embedding layout, in which the column of W¹ a sparse entry picks is one contiguous row of E). The
arrays that go with weights[0] (dweights[0], the optimizer state of W¹) have its layout. Other layers are
C-contiguous.

The optimizer tuple ``opt`` of train_epoch is (kind, lr, momentum, nesterov, weight_decay, beta1, beta2, eps,
step, state, lazy). ``lazy`` matters only for a sparse x with a stateful optimizer (momentum or Adam): then only
the rows of E (columns of W¹) that occur among the batch's stored entries are updated, with their velocities /
moments, as PyTorch's SparseAdam does; other rows keep their weights and state. Adam's step count is global.
With ``lazy`` False, or plain SGD, the update is exactly the dense formulas' (weight decay included).
"""

import time
from typing import NamedTuple

import numpy as np

# Seconds between two calls of train_epoch's progress callable (the compiled core's progress_interval).
PROGRESS_INTERVAL = 0.2

KERNELS = (
    "gemm",
    "activation_forward",
    "activation_backward",
    "loss_and_output_delta",
    "loss_value",
    "forward",
    "backward",
    "sgd_update",
    "adam_update",
    "train_epoch",
)



class CSR(NamedTuple):
    """Rows of a sparse input in compressed sparse row form, as the kernels take them.

    Row i holds the entries data[indptr[i]:indptr[i+1]] in the columns indices[indptr[i]:indptr[i+1]].
    """

    indptr: np.ndarray  # int64, (rows + 1,), indptr[0] = 0, non-decreasing, indptr[-1] = nnz
    indices: np.ndarray  # int32, (nnz,), each in 0..n_cols-1
    data: np.ndarray  # float32 or float64, (nnz,)
    n_cols: int

    @property
    def shape(self):
        return (self.indptr.shape[0] - 1, self.n_cols)

    @property
    def dtype(self):
        return self.data.dtype


def _operand(x, n_cols, dtype):
    """x as the first layer multiplies it: a scipy CSR matrix (sharing the arrays) for a CSR, checked against
    the contract (a malformed one raises ValueError / TypeError), else x."""
    if not isinstance(x, CSR):
        return x
    _check_csr(x, n_cols, dtype)
    import scipy.sparse

    return scipy.sparse.csr_matrix((x.data, x.indices, x.indptr), shape=x.shape, copy=False)


def _check_csr(x, n_cols, dtype):
    for name, a, want in (("indptr", x.indptr, np.int64), ("indices", x.indices, np.int32), ("data", x.data, dtype)):
        if not isinstance(a, np.ndarray) or a.dtype != want or a.ndim != 1 or not a.flags.c_contiguous:
            got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"x.{name} must be a contiguous 1-D {np.dtype(want)} array; got {got}")
    if x.n_cols != n_cols:
        raise ValueError(f"x has {x.n_cols} columns but weights[0] takes {n_cols} inputs")
    nnz = x.indices.shape[0]
    if x.data.shape[0] != nnz or x.indptr.shape[0] < 1:
        raise ValueError(f"x.data has {x.data.shape[0]} entries for {nnz} indices")
    if x.indptr[0] != 0 or x.indptr[-1] != nnz or np.any(np.diff(x.indptr) < 0):
        raise ValueError(f"x.indptr must rise from 0 to nnz = {nnz} without decreasing")
    if nnz and (x.indices.min() < 0 or x.indices.max() >= n_cols):
        raise ValueError(f"x.indices must lie in 0..{n_cols - 1}")


def _interface_address(a):
    """The address of an array's first element."""
    return a.__array_interface__["data"][0]


def _byte_range(a, address=_interface_address):
    """[lo, hi): the bytes an array's elements lie in (for a contiguous array exactly its memory)."""
    lo = hi = address(a)
    if a.flags.c_contiguous or a.flags.f_contiguous:  # the contract's arrays: no loop over the dimensions
        return lo, lo + a.nbytes
    for n, stride in zip(a.shape, a.strides):
        if stride < 0:
            lo += (n - 1) * stride
        else:
            hi += (n - 1) * stride
    return lo, hi + a.itemsize


def _named(what, arrays):
    """(name, array) for each entry of a per-layer list (None entries and non-arrays left out)."""
    return [(f"{what}[{i}]", a) for i, a in enumerate(arrays) if isinstance(a, np.ndarray)]


def _refuse_overlap(written, read=(), address=_interface_address):
    """Refuse (ValueError) an array a kernel writes that shares memory with another of the call's arrays.

    ``written`` and ``read`` are lists of (name, array). A kernel reads and writes its arrays in an order of
    its own (a GEMM in blocks, a gather before the layers that read the data), so an output overlapping an
    input or another output gives wrong results silently. Overlap is judged on byte ranges — exact for the
    contiguous arrays of the contract, cautious for strided ones — by one sort, not by pairs: the call's
    cost grows as n log n in its arrays. Every backend raises the same message (the compiled core's bindings
    too). ``address(a)``: the address of a's first element (the numba backend passes a faster one).
    """
    ranges = []
    for flag, named in ((True, written), (False, read)):
        for name, a in named:
            if isinstance(a, np.ndarray) and a.size:
                ranges.append((*_byte_range(a, address), flag, name))
    ranges.sort(key=lambda r: r[0])
    reach = reach_written = None  # the range reaching furthest so far: of all, of the written ones
    for lo, hi, flag, name in ranges:
        other = reach if flag else reach_written
        if other is not None and lo < other[1]:
            first, second = (name, other[3]) if flag else (other[3], name)
            raise ValueError(f"{first} overlaps {second} in memory: the arrays a kernel writes must not share "
                             "memory with its other arrays")
        if reach is None or hi > reach[1]:
            reach = (lo, hi, flag, name)
        if flag and (reach_written is None or hi > reach_written[1]):
            reach_written = (lo, hi, flag, name)


def _same_memory(a, b):
    """Whether two arrays are the same elements in the same layout (an in-place call, allowed where documented)."""
    if a is b:
        return True
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
            and a.strides == b.strides and _byte_range(a) == _byte_range(b))


def _refuse_network_overlap(weights, biases, x, outs, zs, y=None, sw=None, deltas=(), dweights=(), dbiases=(),
                            train=None, address=_interface_address):
    """_refuse_overlap for forward, backward and train_epoch. The per-layer buffers count as written in all
    three; the weights and biases are read, except by train_epoch, which writes them and the arrays in
    ``train`` = (xbuf or None, ybuf or None, the optimizer's state arrays) and reads ``order`` too."""
    params = _named("weights", weights) + _named("biases", biases)
    written = (_named("outs", outs) + _named("zs", zs) + _named("deltas", deltas) + _named("dweights", dweights)
               + _named("dbiases", dbiases))
    read = _csr_arrays(x) + [("y", y), ("sw", sw)]
    if train is None:
        read += params
    else:
        xbuf, ybuf, state, order = train
        written += params + [("xbuf", xbuf), ("ybuf", ybuf)] + _named("optimizer state", state)
        read.append(("order", order))
    _refuse_overlap(written, read, address)


def _csr_arrays(x):
    """The arrays of a CSR x, named, or x itself (a dense input)."""
    if isinstance(x, CSR):
        return [("x.indptr", x.indptr), ("x.indices", x.indices), ("x.data", x.data)]
    return [("x", x)]


def _is_sparse(a):
    return hasattr(a, "tocsr")


# ---------------------------------------------------------------------------------------------------------------
# GEMM


def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """out = alpha·op(a)·op(b) + beta·out, where op(x) = xᵀ when trans_x."""
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    if beta == 0.0:
        # beta = 0 must not read out: it may hold garbage (even NaN) on entry.
        np.matmul(opa, opb, out=out)
        if alpha != 1.0:
            out *= alpha
    else:
        out *= beta
        out += alpha * (opa @ opb)


# ---------------------------------------------------------------------------------------------------------------
# Activations σ(z). The derivatives are written in terms of the output a where the output determines them, so
# z need not be kept (docs/design.md, "Activations").


def _softmax(z, out):
    # log-sum-exp: subtracting the row maximum keeps exp from overflowing.
    np.subtract(z, z.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)


def _forward_step(z, out):
    # Heaviside with H(0) = 1/2 (and H(NaN) = NaN, as every unit propagates NaN).
    np.heaviside(z, 0.5, out=out)


def _forward_sigmoid(z, out):
    # 1/(1+e^{-z}) for z >= 0 and e^{z}/(1+e^{z}) for z < 0: neither branch overflows.
    e = np.exp(-np.abs(z))
    out[...] = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


_FORWARD = {
    "step": _forward_step,
    "sign": lambda z, out: np.sign(z, out=out),
    "linear": lambda z, out: np.copyto(out, z),
    "piecewise_linear": lambda z, out: np.clip(z + 0.5, 0.0, 1.0, out=out),
    "sigmoid": _forward_sigmoid,
    "tanh": lambda z, out: np.tanh(z, out=out),
    "relu": lambda z, out: np.maximum(z, 0.0, out=out),
    "softmax": _softmax,
}


def _derivative(name, a, z, ste):
    """σ'(z) for the elementwise activations, from the output a (or z where a is not enough)."""
    if name in ("step", "sign"):
        if not ste:
            return np.zeros_like(a)  # σ' = 0 almost everywhere (and undefined at 0)
        # Straight-through estimator: the derivative of the nearest piecewise-linear unit: clip(z + 1/2, 0, 1)
        # for step, clip(z, -1, 1) for sign.
        half_width = 0.5 if name == "step" else 1.0
        return (np.abs(z) < half_width).astype(a.dtype)
    if name == "linear":
        return np.ones_like(a)
    if name == "piecewise_linear":
        return ((a > 0) & (a < 1)).astype(a.dtype)
    if name == "sigmoid":
        return a * (1 - a)
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (a > 0).astype(a.dtype)
    raise KeyError(name)


def _check_activation(name):
    if not isinstance(name, str) or name not in _FORWARD:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(_FORWARD)}")


def activation_forward(name, z, out):
    """out = σ(z) row by row (softmax normalises each row); out may be z itself."""
    _check_activation(name)
    if not _same_memory(out, z):
        _refuse_overlap([("out", out)], [("z", z)])
    _FORWARD[name](z, out)


def activation_backward(name, a, z, delta, ste):
    """delta ← Jᵀ delta, the vector–Jacobian product of σ at each row: σ'(z) ⊙ delta for the elementwise units.

    For softmax the Jacobian is diag(a) − a aᵀ, so the product is a ⊙ (delta − ⟨delta, a⟩).
    """
    _check_activation(name)
    if z is None and ste and name in ("step", "sign"):
        raise ValueError("z is needed for step/sign with ste=True")
    _refuse_overlap([("delta", delta)], [("a", a), ("z", z)])
    if name == "softmax":
        delta[...] = a * (delta - np.sum(delta * a, axis=-1, keepdims=True))
    else:
        delta *= _derivative(name, a, z, ste)


# ---------------------------------------------------------------------------------------------------------------
# Losses. Each returns the batch mean of the per-sample costs C_k, each summed over the outputs, and writes
# delta = ∂C_k/∂z^L for every sample k (not divided by the batch size; the gradients divide once).

_EPS = {np.dtype(np.float32): 1e-7, np.dtype(np.float64): 1e-15}


def _softplus(z):
    # log(1 + e^z) without overflow.
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _log_softmax(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _per_sample_loss(loss, act, a, z, y):
    """C_k for every sample (shape (B,)), computed in float64."""
    if z is None and (loss, act) in (("binary_cross_entropy", "sigmoid"), ("cross_entropy", "softmax")):
        raise ValueError(f"z is needed for {loss} with {act} outputs")
    a = a.astype(np.float64, copy=False)
    y = y.astype(np.float64, copy=False)
    if loss == "squared_error":
        return np.sum((y - a) ** 2, axis=1)
    if loss == "hinge":
        return np.sum(np.maximum(0.0, 1.0 - y * a), axis=1)
    eps = _EPS[np.dtype(np.float64)]
    if loss == "binary_cross_entropy":
        if act == "sigmoid":
            # -[y log σ(z) + (1-y) log(1-σ(z))] = softplus(z) - y z : the log-sigmoid form, exact for any z.
            z = z.astype(np.float64, copy=False)
            return np.sum(_softplus(z) - y * z, axis=1)
        f = np.clip(a, eps, 1 - eps)
        return -np.sum(y * np.log(f) + (1 - y) * np.log(1 - f), axis=1)
    if loss == "cross_entropy":
        if act == "softmax":
            return -np.sum(y * _log_softmax(z.astype(np.float64, copy=False)), axis=1)
        return -np.sum(y * np.log(np.clip(a, eps, None)), axis=1)
    raise ValueError(
        f"unknown loss {loss!r}; valid names: squared_error, hinge, binary_cross_entropy, cross_entropy"
    )


def _loss_gradient(loss, a, y):
    """∇_a C_k for every sample, the generic (unfused) form."""
    if loss == "squared_error":
        return 2 * (a - y)
    if loss == "hinge":
        return np.where(y * a < 1, -y, 0).astype(a.dtype)
    eps = _EPS[a.dtype]
    if loss == "binary_cross_entropy":
        f = np.clip(a, eps, 1 - eps)
        return (f - y) / (f * (1 - f))
    if loss == "cross_entropy":
        return -y / np.clip(a, eps, None)
    raise KeyError(loss)


def _check_sample_weight(sw, rows, dtype):
    """sw as the contract wants it: None, or a C-contiguous 1-D array of ``dtype`` with ``rows`` finite weights ≥ 0."""
    if sw is None:
        return None
    if not isinstance(sw, np.ndarray):
        raise TypeError(f"sw must be a NumPy array or None; got {type(sw).__name__}")
    if sw.dtype != dtype:
        raise TypeError(f"sw must have dtype {np.dtype(dtype)} (the network's); got {sw.dtype}")
    if sw.ndim != 1 or sw.shape[0] != rows:
        raise ValueError(f"sw must have shape ({rows},), one weight per sample; got {sw.shape}")
    if not sw.flags.c_contiguous:
        raise ValueError("sw must be C-contiguous")
    bad = ~(np.isfinite(sw) & (sw >= 0))  # NaN fails both
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"sw must hold finite weights >= 0; got sw[{k}] = {sw[k]}")
    return sw


class _ProgressTicker:
    """Calls ``progress(rows_done)`` when ``PROGRESS_INTERVAL`` seconds have passed since the last call (or
    since it was made): train_epoch's progress reports for the Python backends, which loop over batches in
    Python."""

    __slots__ = ("last", "progress")

    def __init__(self, progress):
        self.progress = progress
        self.last = time.perf_counter()

    def __call__(self, rows_done):
        now = time.perf_counter()
        if now - self.last >= PROGRESS_INTERVAL:
            self.last = now
            self.progress(rows_done)


def _progress_ticker(progress):
    """train_epoch's ``progress`` checked: None (no reports, no cost) or a :class:`_ProgressTicker`."""
    if progress is None:
        return None
    if not callable(progress):
        raise TypeError(
            f"progress must be None or a callable progress(rows_done); got {type(progress).__name__}")
    return _ProgressTicker(progress)


def _weight_sum(sw):
    return float(np.sum(sw, dtype=np.float64))


def _weighted_mean(per_sample, sw):
    """Σ s_k C_k / Σ s_k (0 when the weights sum to 0); the plain mean when sw is None."""
    if sw is None:
        return float(np.mean(per_sample))
    total = _weight_sum(sw)
    if total == 0.0:
        return 0.0
    # With all weights 1 this is the same sum, in the same order, as np.mean's, over the same divisor.
    return float(np.sum(per_sample * sw.astype(np.float64)) / total)


def _weight_output_delta(delta, sw):
    """Row k of delta ×= s_k·B/S, so that the 1/B of the gradients gives those of the weighted mean."""
    total = _weight_sum(sw)
    if total == 0.0:
        delta[...] = 0
        return
    factor = (sw.astype(np.float64) * delta.shape[0] / total).astype(delta.dtype)  # exactly 1 for unit weights
    delta *= factor[:, None]


def loss_value(loss, act, a, z, y, sw=None):
    """Batch mean of the per-sample loss; with sample weights sw (shape (B,)) the weighted mean Σ s_k C_k / Σ s_k,
    which is 0 when the weights sum to 0."""
    sw = _check_sample_weight(sw, a.shape[0], a.dtype)
    return _weighted_mean(_per_sample_loss(loss, act, a, z, y), sw)


def loss_and_output_delta(loss, act, a, z, y, delta, ste, sw=None):
    """Batch-mean loss; delta = σ'(z^L) ⊙ ∇_a C_k, fused to p − y for sigmoid+BCE and softmax+CE.

    With sample weights sw (shape (B,)) the loss is the weighted mean and row k of delta is multiplied by
    s_k·B/S (S = Σ s_k); when S = 0 the loss is 0 and delta is all zeros.
    """
    sw = _check_sample_weight(sw, a.shape[0], a.dtype)
    _refuse_overlap([("delta", delta)], [("a", a), ("z", z), ("y", y), ("sw", sw)])
    value = _weighted_mean(_per_sample_loss(loss, act, a, z, y), sw)
    if loss == "binary_cross_entropy" and act == "sigmoid":
        np.subtract(a, y, out=delta)
    elif loss == "cross_entropy" and act == "softmax":
        # ∂/∂z of -Σ y log softmax(z) is p·Σy − y, which is p − y for targets that sum to one.
        np.subtract(a * y.sum(axis=1, keepdims=True), y, out=delta)
    else:
        delta[...] = _loss_gradient(loss, a, y)
        activation_backward(act, a, z, delta, ste)
    if sw is not None:
        _weight_output_delta(delta, sw)
    return value


# ---------------------------------------------------------------------------------------------------------------
# The whole network


def _check_layers(weights, **lists):
    """Every per-layer list has one entry per layer: zip would silently stop at the shortest."""
    for name, items in lists.items():
        if not isinstance(items, (list, tuple)) or len(items) != len(weights):
            got = f"{len(items)} entries" if isinstance(items, (list, tuple)) else type(items).__name__
            raise ValueError(f"{name} must be a list of {len(weights)} entries (one per layer); got {got}")


def forward(weights, biases, acts, x, outs, zs):
    """Forward pass: outs[l] = σ(A W^ᵀ + b) layer by layer; zs[l] keeps Z where it is not None. x: an array
    (B, N_0) or a CSR."""
    _check_layers(weights, biases=biases, acts=acts, outs=outs, zs=zs)
    _refuse_network_overlap(weights, biases, x, outs, zs)
    _forward(weights, biases, acts, _operand(x, weights[0].shape[1], outs[0].dtype), outs, zs)


def _forward(weights, biases, acts, x, outs, zs):
    a_prev = x
    for w, b, act, out, z in zip(weights, biases, acts, outs, zs):
        target = out if z is None else z
        if _is_sparse(a_prev):
            target[...] = a_prev @ w.T  # row i: the sum of x_ij · W[:, j] over the row's entries
        else:
            np.matmul(a_prev, w.T, out=target)
        target += b
        activation_forward(act, target, out)
        a_prev = out


def backward(weights, acts, loss, x, y, outs, zs, deltas, dweights, dbiases, ste, sw=None):
    """Backpropagation after ``forward``: fills deltas, dweights and dbiases; returns the batch-mean loss.

    With sample weights sw (one per row of x) the loss and the gradients are those of the weighted mean. For a
    sparse x (a CSR) dweights[0] is still the whole gradient of W¹: zero outside the columns x uses.
    """
    _check_layers(weights, acts=acts, outs=outs, zs=zs, deltas=deltas, dweights=dweights, dbiases=dbiases)
    _refuse_network_overlap(weights, (), x, outs, zs, y, sw, deltas, dweights, dbiases)
    x = _operand(x, weights[0].shape[1], outs[0].dtype)
    return _backward(weights, acts, loss, x, y, outs, zs, deltas, dweights, dbiases, ste, sw)


def _backward(weights, acts, loss, x, y, outs, zs, deltas, dweights, dbiases, ste, sw):
    n_layers = len(weights)
    sw = _check_sample_weight(sw, x.shape[0], outs[-1].dtype)
    value = loss_and_output_delta(loss, acts[-1], outs[-1], zs[-1], y, deltas[-1], ste, sw)
    inv_batch = 1.0 / x.shape[0]
    for l in range(n_layers - 1, -1, -1):
        a_prev = x if l == 0 else outs[l - 1]
        if _is_sparse(a_prev):
            dweights[l][...] = (a_prev.T @ deltas[l]).T * inv_batch  # ∂C/∂W¹ = (Xᵀ Δ¹)ᵀ / B
        else:
            gemm(deltas[l], a_prev, dweights[l], trans_a=True, alpha=inv_batch)  # ∂C/∂W = Δᵀ A / B
        np.mean(deltas[l], axis=0, out=dbiases[l])
        if l > 0:
            np.matmul(deltas[l], weights[l], out=deltas[l - 1])  # Δ^{l-1} = (Δ^l W^l) ⊙ σ'
            activation_backward(acts[l - 1], outs[l - 1], zs[l - 1], deltas[l - 1], ste)
    return value


# ---------------------------------------------------------------------------------------------------------------
# Optimizers. Weight decay adds weight_decay·p to the gradient (L2 regularisation); the caller passes 0 for biases.


def sgd_update(params, grads, velocities, lr, momentum, nesterov, weight_decay):
    """p ← p − lr·g, with momentum v ← μv + g (and Nesterov's look-ahead g + μv) when momentum > 0."""
    _refuse_overlap(_named("params", params) + (_named("velocities", velocities) if momentum else []),
                    _named("grads", grads))
    for i, (p, g) in enumerate(zip(params, grads)):
        g = g + weight_decay * p if weight_decay else g
        if momentum:
            v = velocities[i]
            v *= momentum
            v += g
            g = g + momentum * v if nesterov else v
        p -= (lr * g).astype(p.dtype, copy=False)


def adam_update(params, grads, ms, vs, step, lr, beta1, beta2, eps, weight_decay):
    """Adam (Kingma & Ba) with bias correction; ``step`` counts updates from 1."""
    _refuse_overlap(_named("params", params) + _named("ms", ms) + _named("vs", vs), _named("grads", grads))
    for p, g, m, v in zip(params, grads, ms, vs):
        g = g + weight_decay * p if weight_decay else g
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        m_hat = m / (1 - beta1**step)
        v_hat = v / (1 - beta2**step)
        p -= (lr * m_hat / (np.sqrt(v_hat) + eps)).astype(p.dtype, copy=False)


# ---------------------------------------------------------------------------------------------------------------
# One epoch of training


def train_epoch(weights, biases, acts, loss, x, y, order, batch, outs, zs, deltas, dweights, dbiases, xbuf, ybuf,
                ste, opt, sw=None, progress=None):
    """Train on x in batches of ``batch`` rows, visiting rows in ``order`` (or in storage order when None).

    The per-layer buffers hold at least min(batch, len(x)) rows; a shorter last batch uses their first rows.
    Shuffled batches of a dense x are gathered into xbuf / ybuf; a sparse x (a CSR) is read through ``order``
    and xbuf is None. ``opt`` = (kind, lr, momentum, nesterov, weight_decay, beta1, beta2, eps, step, state,
    lazy) where state lists the optimizer's arrays: SGD with momentum the velocities of the weights then of
    the biases; Adam the first moments (weights, biases) then the second moments; ``lazy``: see the module
    docstring (sparse x only).

    ``sw`` (None or one weight per row of x, gathered through ``order`` like x and y) weights the samples: each
    batch then minimises its weighted-mean loss, and a batch whose weights sum to 0 is skipped entirely (no
    update, no decay, no momentum or Adam step; it counts neither in the loss sum nor in the rows trained).

    ``progress`` (None or a callable) is called between batches, every ``PROGRESS_INTERVAL`` seconds at most,
    with the rows of x gone through so far.

    Returns (Σ batch loss × batch rows, or with weights Σ batch loss × batch weight sum; rows trained; first
    row of the batch whose loss was not finite or −1; that loss). A batch with a non-finite loss is not applied
    and ends the epoch.
    """
    kind, lr, momentum, nesterov, weight_decay, beta1, beta2, eps, step, state, lazy = opt
    _check_layers(weights, biases=biases, acts=acts, outs=outs, zs=zs, deltas=deltas, dweights=dweights,
                  dbiases=dbiases)
    n_layers = len(weights)
    n = x.shape[0]
    sparse = isinstance(x, CSR)
    shuffled = order is not None
    _refuse_network_overlap(weights, biases, x, outs, zs, y, sw, deltas, dweights, dbiases, train=(
        xbuf if shuffled and not sparse else None, ybuf if shuffled else None,
        state if kind == "adam" or momentum else (), order))
    x = _operand(x, weights[0].shape[1], outs[0].dtype)
    sw = _check_sample_weight(sw, n, outs[-1].dtype)
    tick = _progress_ticker(progress)
    # Lazy updates leave the rows of E = W¹ᵀ that a batch does not use alone, state included.
    lazy = sparse and bool(lazy) and (kind == "adam" or momentum != 0)
    total, done = 0.0, 0
    for lo in range(0, n, batch):
        if tick is not None and lo:  # between batches, as the compiled core
            tick(lo)
        rows = min(batch, n - lo)
        swb, weight = None, float(rows)
        if sw is not None:
            swb = sw[lo : lo + rows] if order is None else sw[order[lo : lo + rows]]
            weight = _weight_sum(swb)
            if weight == 0.0:
                continue  # nothing to learn from this batch: leave every parameter and state as it is
        if order is None:
            xb, yb = x[lo : lo + rows], y[lo : lo + rows]
        elif sparse:
            xb, yb = x[order[lo : lo + rows]], np.take(y, order[lo : lo + rows], axis=0, out=ybuf[:rows])
        else:
            xb = np.take(x, order[lo : lo + rows], axis=0, out=xbuf[:rows])
            yb = np.take(y, order[lo : lo + rows], axis=0, out=ybuf[:rows])
        o = [a[:rows] for a in outs]
        z = [None if a is None else a[:rows] for a in zs]
        d = [a[:rows] for a in deltas]
        _forward(weights, biases, acts, xb, o, z)
        value = _backward(weights, acts, loss, xb, yb, o, z, d, dweights, dbiases, ste, swb)
        if not np.isfinite(value):
            return total, done, lo, value
        # The layers the optimizer updates as a whole; with lazy updates the first layer is handled apart.
        first = 1 if lazy else 0
        seen = np.unique(xb.indices) if lazy else None  # the rows of E the batch uses
        if kind == "sgd":
            vw = state[:n_layers] if momentum else [None] * n_layers
            vb = state[n_layers:] if momentum else None
            if lazy:
                table = _rows(seen, weights[0], dweights[0], vw[0])
                sgd_update(table[:1], table[1:2], table[2:], lr, momentum, nesterov, weight_decay)
                _put_rows(seen, table, weights[0], None, vw[0])
            sgd_update(weights[first:], dweights[first:], vw[first:], lr, momentum, nesterov, weight_decay)
            sgd_update(biases, dbiases, vb, lr, momentum, nesterov, 0.0)
        else:
            step += 1
            m_w, m_b = state[:n_layers], state[n_layers : 2 * n_layers]
            v_w, v_b = state[2 * n_layers : 3 * n_layers], state[3 * n_layers :]
            if lazy:
                table = _rows(seen, weights[0], dweights[0], m_w[0], v_w[0])
                adam_update(table[:1], table[1:2], table[2:3], table[3:], step, lr, beta1, beta2, eps, weight_decay)
                _put_rows(seen, table, weights[0], None, m_w[0], v_w[0])
            adam_update(weights[first:], dweights[first:], m_w[first:], v_w[first:], step, lr, beta1, beta2, eps,
                        weight_decay)
            adam_update(biases, dbiases, m_b, v_b, step, lr, beta1, beta2, eps, 0.0)
        total += value * weight
        done += rows
    return total, done, -1, 0.0


def _rows(seen, *arrays):
    """Copies of the rows ``seen`` of Aᵀ for each (N_1, N_0) array A: the columns of W¹ (and of its gradient
    and state) that a sparse batch touched, as rows of the (N_0, N_1) table."""
    return [a.T[seen] for a in arrays]


def _put_rows(seen, table, *arrays):
    """Write rows updated by _rows' copies back; None skips an array that was only read (the gradient)."""
    for part, a in zip(table, arrays):
        if a is not None:
            a.T[seen] = part
