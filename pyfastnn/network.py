"""The multilayer perceptron: parameters, forward pass, loss, gradients and one training step."""

import contextlib
import functools
import math
import numbers
import os
import threading

import numpy as np

from . import _backend
from ._validation import CSR, check_inputs, largest_magnitude, take_rows
from .activations import ZERO_GRADIENT_ACTIVATIONS, check_activation
from .losses import check_loss, default_loss, prepare_targets
from .optim import SGD, make_optimizer

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INITS = ("auto", "he", "glorot")


def check_seed(seed):
    """A seed for np.random.default_rng: None or an int >= 0."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int >= 0 or None; got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0 or None; got {seed}")
    return int(seed)


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {type(value).__name__} {value!r}")
    return bool(value)


def check_dtype(dtype):
    if dtype is None:
        raise TypeError("dtype must be float32 or float64; got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64; got {dtype!r}") from None
    if dt not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64; got {dt}")
    return dt


def check_sample_weight(sample_weight, n, dtype):
    """Per-row weights as a C-contiguous (n,) array of ``dtype``: finite, >= 0, not all zero."""
    try:
        sw = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"sample_weight must be an array of numbers; got {type(sample_weight).__name__}") from None
    if sw.ndim != 1 or sw.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},), one weight per sample; got {sw.shape}")
    if not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError("sample_weight must hold finite weights >= 0")
    if not sw.sum() > 0:
        raise ValueError("the sample weights are all zero: there is nothing to train on")
    return cast_sample_weight(sw, dtype)


def cast_sample_weight(sw, dtype):
    """Finite float64 weights >= 0 (not all zero) in the network's ``dtype``, refusing weights it cannot
    hold."""
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(sw, dtype=dtype)
    if not np.all(np.isfinite(out)):
        k = int(np.flatnonzero(~np.isfinite(out))[0])
        raise ValueError(
            f"sample_weight[{k}] = {sw[k]:.3g} overflows {info.dtype} (largest {float(info.max):.3g}); only "
            "the ratios of the weights matter, so divide them all by a common factor"
        )
    if not out.sum(dtype=np.float64) > 0:
        raise ValueError(
            f"sample_weight values round to 0 in {info.dtype} (its smallest positive value is "
            f"{float(info.smallest_subnormal):.3g}); only the ratios of the weights matter, so multiply them "
            "all by a common factor"
        )
    return out


def _all_finite(arrays):
    """Whether every element is finite: the maximum and minimum of each array (plain ufunc reductions, no
    temporary arrays) are NaN or ±inf if any element is."""
    for a in arrays:
        r = a.ravel(order="K")  # a view in memory order: no copy of an embedding table (F-contiguous W¹)
        if not (math.isfinite(np.maximum.reduce(r)) and math.isfinite(np.minimum.reduce(r))):
            return False
    return True


# Training counts as diverged when a loss exceeds this many times the level it started from (see
# MLP._loss_scale). Healthy runs stay below that level; a far too large step passes 1e4 times it in an epoch.
EXPLOSION = 1e3
_DATA_SCALE = 1e6  # data beyond this magnitude is named as the likely cause of a divergence


def _parameter_names(n_layers, n_arrays):
    """Names of the arrays ``weights + biases + optimizer.state_arrays()`` (n_arrays in all), for messages."""
    return ([f"net.weights[{l}]" for l in range(n_layers)] + [f"net.biases[{l}]" for l in range(n_layers)]
            + ["the optimizer's state"] * (n_arrays - 2 * n_layers))


def divergence_cause(before, n_layers, x, y, lr):
    """Advice for a diverged update, from the arrays ``before`` it (weights + biases + optimizer state of a
    network of n_layers), the data and the learning rate: parameters that were not finite already, data far
    from unit scale, or the step size."""
    for name, a in zip(_parameter_names(n_layers, len(before)), before):
        if not _all_finite([a]):
            return (f"{name} already held NaN or infinity before the update (written by hand or by a "
                    "callback?): re-initialise the network or restore its weights")
    for what, a in (("inputs X", x), ("targets y", y)):
        top = largest_magnitude(a)
        if top > _DATA_SCALE:
            return f"the {what} reach magnitude {top:.3g}: scale them (e.g. to mean 0, standard deviation 1)"
    return f"try a smaller learning rate (lr={lr:g})"


# ---- one network, several threads -------------------------------------------------------------------------
#
# Why this scheme: training mutates the weights and reuses scratch buffers, so two training calls on one
# network cannot share it; they are serialised (a reentrant lock: a callback of fit may call train_step).
# Raising an error instead would turn a harmless pattern, threads taking turns to train one model, into
# failures. Inference must stay fast when several threads predict with one trained network, so it never takes
# that lock: each call borrows its own activation buffers from a small pool, and inference calls run side by
# side (the kernels release the GIL). Against training, inference is a reader and the weight updates are the
# writer of a readers-writer lock held per native epoch (per train_step): a predict during fit waits at most
# one epoch and sees the weights of an epoch boundary, never a half-updated network. The writer is fair: its
# release lets the readers already waiting in before the next epoch starts, so neither side starves.

_fork_generation = 0  # bumped in a forked child: the guards of the parent (perhaps held by a thread that does
_making_guard = threading.Lock()  # not exist in the child) are then replaced on first use


def _after_fork_in_child():
    global _fork_generation, _making_guard
    _fork_generation += 1
    _making_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Guard:
    """The locks and the workspace pool of one network: never pickled nor copied (see ``MLP._guard``)."""

    MAX_SIZES = 4  # batch sizes kept: full batch, mini-batch, last partial batch, one evaluation size
    MAX_FREE = 4  # free workspaces kept per size (one per thread predicting at once)

    def __init__(self):
        self.generation = _fork_generation
        self.training = threading.RLock()
        self._mutex = threading.Lock()  # the condition's lock: taken directly where no wait can follow
        self._cond = threading.Condition(self._mutex)
        self._readers = 0  # inference calls running
        self._readers_waiting = 0
        self._writing = False
        self._writers_waiting = 0
        self._admitted = 0  # readers let in by the last write's end, ahead of the next write
        self._pool = {}  # batch size -> free workspaces
        self._pool_lock = threading.Lock()

    def begin_read(self):
        with self._cond:
            self._readers_waiting += 1
            try:
                while self._writing or (self._writers_waiting and not self._admitted):
                    self._cond.wait()
            except BaseException:  # KeyboardInterrupt in the wait: no writer may go on waiting for this reader
                self._readers_waiting -= 1
                self._admitted = min(self._admitted, self._readers_waiting)
                self._cond.notify_all()
                raise
            self._readers_waiting -= 1
            if self._admitted:
                self._admitted -= 1
            self._readers += 1

    def end_read(self):
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def begin_write(self):
        """Take exclusive access to the weights (the caller holds ``training``, so writers never compete);
        ``end_write`` gives it back. ``writing`` is the same as a context manager; train_step calls these two
        directly, a generator-based ``with`` costing as much as its whole native step."""
        with self._mutex:  # uncontended (the usual case): no wait, so the plain lock is enough
            if not (self._writing or self._readers or self._admitted):
                self._writing = True
                return
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers or self._admitted:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True

    def end_write(self):
        with self._mutex:
            self._writing = False
            self._admitted = self._readers_waiting
            if self._readers_waiting or self._writers_waiting:  # every waiter counts itself before waiting
                self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self):
        """Exclusive access to the weights for the ``with`` block (see ``begin_write``)."""
        self.begin_write()
        try:
            yield
        finally:
            self.end_write()

    def take(self, batch):
        """A free workspace for ``batch`` rows, or None."""
        with self._pool_lock:
            free = self._pool.get(batch)
            return free.pop() if free else None

    def give(self, batch, ws):
        with self._pool_lock:
            free = self._pool.get(batch)
            if free is None:
                if len(self._pool) >= self.MAX_SIZES:
                    self._pool.pop(next(iter(self._pool)))
                free = self._pool[batch] = []
            if len(free) < self.MAX_FREE:
                free.append(ws)


def _one_trainer_at_a_time(train):
    """Decorate ``train(net, ...)``: calls on one network run one after the other (see ``_Guard``)."""

    @functools.wraps(train)
    def serialised(net, *args, **kwargs):
        if not isinstance(net, MLP):
            raise TypeError(f"{train.__name__} trains a pyfastnn.MLP; got {type(net).__name__}")
        with net._guard().training:
            return train(net, *args, **kwargs)

    return serialised


class MLP:
    """A fully connected feedforward network f: R^N → R^M, z^l = W^l a^{l-1} + b^l, a^l = σ_l(z^l).

    Parameters
    ----------
    layer_sizes : sequence of int
        [N_0, N_1, ..., N_L]: inputs, hidden layers, outputs. Two entries give a network with no hidden layer.
    activation : str or sequence of str
        Hidden activation, one name for all hidden layers or one per hidden layer: step, sign, linear,
        piecewise_linear, sigmoid, tanh, relu.
    output_activation : str
        Activation of the output layer (any of the above or softmax). "auto": softmax when there are at least
        two outputs, sigmoid for one.
    dtype : float32 or float64
    seed : int or None
        Seed of the initial weights.
    init : {"auto", "he", "glorot"}
        He normal (std √(2/fan_in)) or Glorot uniform (limit √(6/(fan_in+fan_out))); "auto" uses He for
        relu layers and Glorot otherwise. Biases start at zero.
    straight_through : bool
        Train through step and sign units with the straight-through estimator: their zero-almost-everywhere
        derivative is replaced by that of the nearest piecewise-linear unit (1 on |z| < 1/2 for step,
        |z| < 1 for sign). Without it, training a network with such units raises an error.

    Attributes
    ----------
    weights : list of ndarray
        W^l of shape (N_l, N_{l-1}); writable in place.
    biases : list of ndarray
        b^l of shape (N_l,); writable in place.
    classes_ : ndarray, shape (n_classes,), or None
        What each label of :meth:`predict_labels` stands for (``net.classes_[net.predict_labels(x)]``): saved
        in the model file and set by :func:`pyfastnn.load` when the file records it (``pyfastnn train`` does);
        None otherwise. n_classes is N_L, or 2 for a single output.
    feature_names_ : ndarray of str, shape (N_0,), or None
        The name of each input (a CSV header), saved and loaded like ``classes_``; None when unknown.
    """

    # Class attributes, so networks pickled before these existed unpickle with them.
    classes_ = None
    feature_names_ = None

    def __init__(
        self,
        layer_sizes,
        activation="relu",
        output_activation="auto",
        dtype=np.float32,
        seed=None,
        init="auto",
        straight_through=False,
    ):
        sizes = self._check_sizes(layer_sizes)
        n_hidden = len(sizes) - 2
        if isinstance(activation, str) or not hasattr(activation, "__len__"):
            hidden = [check_activation(activation)] * n_hidden
        else:
            hidden = [check_activation(a) for a in activation]
            if len(hidden) != n_hidden:
                raise ValueError(
                    f"activation lists one name per hidden layer: {n_hidden} expected, {len(hidden)} given"
                )
        if output_activation == "auto":
            output_activation = "softmax" if sizes[-1] > 1 else "sigmoid"
        check_activation(output_activation, output=True, what="output_activation")
        if output_activation == "softmax" and sizes[-1] < 2:
            raise ValueError("softmax needs at least 2 outputs; use sigmoid for a single output")
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; valid names: {', '.join(INITS)}")
        seed = check_seed(seed)
        self.layer_sizes = sizes
        self.activations = hidden + [output_activation]
        self.dtype = check_dtype(dtype)
        self.init = init
        self.straight_through = check_bool("straight_through", straight_through)
        self.weights, self.biases = self._initial_parameters(seed)

    # ---- construction ----------------------------------------------------------------------------------------

    @staticmethod
    def _check_sizes(layer_sizes):
        try:
            sizes = list(layer_sizes)
        except TypeError:
            raise TypeError(f"layer_sizes must be a sequence of ints; got {type(layer_sizes).__name__}") from None
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output size; got {sizes}")
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral):
                raise TypeError(f"layer sizes must be ints; got {s!r} in {sizes}")
            if s < 1:
                raise ValueError(f"every layer needs at least one neuron; got {sizes}")
        return [int(s) for s in sizes]

    def _initial_parameters(self, seed):
        rng = np.random.default_rng(seed)
        weights, biases = [], []
        for fan_in, fan_out, act in zip(self.layer_sizes[:-1], self.layer_sizes[1:], self.activations):
            use_he = self.init == "he" or (self.init == "auto" and act == "relu")
            if use_he:
                w = rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                w = rng.uniform(-limit, limit, (fan_out, fan_in))
            # Drawn in float64 so one seed gives the same network in both dtypes (up to rounding).
            weights.append(np.ascontiguousarray(w, dtype=self.dtype))
            biases.append(np.zeros(fan_out, dtype=self.dtype))
        return weights, biases

    # ---- properties ------------------------------------------------------------------------------------------

    @property
    def n_layers(self):
        """L, the number of weight layers."""
        return len(self.layer_sizes) - 1

    @property
    def output_activation(self):
        return self.activations[-1]

    @property
    def n_parameters(self):
        return sum(w.size + b.size for w, b in zip(self.weights, self.biases))

    def __repr__(self):
        hidden = self.activations[:-1]
        act = hidden[0] if hidden and len(set(hidden)) == 1 else hidden
        return (
            f"MLP({self.layer_sizes}, activation={act!r}, output_activation={self.output_activation!r}, "
            f"dtype={self.dtype.name})"
        )

    # Kept between calls, neither pickled nor shared with a copy: the guard (locks and workspace pool, see
    # _Guard), the gradient buffers, the snapshot buffers of train_step and fit, and train_step's native plan.
    _SCRATCH = ("_locks", "_grads", "_saved", "_step_plan")

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._SCRATCH}

    def __setstate__(self, state):
        state.pop("_workspaces", None)  # scratch of pickles from pyfastnn versions before the guard
        self.__dict__.update(state)
        self.dtype = np.dtype(self.dtype.name)  # the canonical dtype object, not the unpickled copy

    def copy(self):
        """A deep copy with its own parameters."""
        other = object.__new__(MLP)
        other.__dict__.update(self.__dict__)
        other.layer_sizes = list(self.layer_sizes)
        other.activations = list(self.activations)
        other.weights = [w.copy(order="K") for w in self.weights]  # "K": an embedding table stays one
        other.biases = [b.copy() for b in self.biases]
        for key in ("_named_optimizers", *self._SCRATCH):
            other.__dict__.pop(key, None)
        return other

    def astype(self, dtype):
        """A copy of the network in another dtype."""
        other = self.copy()
        other.dtype = check_dtype(dtype)
        other.weights = [w.astype(other.dtype, order="K") for w in self.weights]
        other.biases = [np.ascontiguousarray(b, dtype=other.dtype) for b in self.biases]
        return other

    # ---- internals -------------------------------------------------------------------------------------------

    def _check_parameters(self, writable=True):
        """The kernels trust shapes and layout, so check parameters a user may have replaced. Training writes
        them in place; evaluating only reads them (they may be read-only, e.g. memory-mapped)."""
        for name in ("weights", "biases"):
            value = getattr(self, name)
            if not isinstance(value, list) or len(value) != self.n_layers:
                got = f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__
                raise ValueError(f"net.{name} must be a list of {self.n_layers} arrays (one per layer); it is {got}")
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            shape = (self.layer_sizes[l + 1], self.layer_sizes[l])
            for name, arr, want in ((f"weights[{l}]", w, shape), (f"biases[{l}]", b, shape[:1])):
                if not isinstance(arr, np.ndarray) or arr.shape != want or arr.dtype != self.dtype:
                    got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
                    raise ValueError(f"{name} must be a {self.dtype} array of shape {want}; it is {got}")
                # weights[0] may also be the transpose of a C-contiguous (N_0, N_1) table: the embedding layout.
                table = name == "weights[0]" and arr.flags.f_contiguous
                if not (arr.flags.c_contiguous or table) or (writable and not arr.flags.writeable):
                    raise ValueError(
                        f"{name} must be C-contiguous{' (or the transpose of a C-contiguous table)' if l == 0 else ''}"
                        f"{' and writable' if writable else ''}"
                    )

    def _guard(self):
        """This network's _Guard, made on first use (whatever made the network: constructor, copy, unpickling)
        and again in a forked child."""
        guard = self.__dict__.get("_locks")
        if guard is not None and guard.generation == _fork_generation:
            return guard
        with _making_guard:  # two threads meeting a new network must not make two guards
            guard = self.__dict__.get("_locks")
            if guard is None or guard.generation != _fork_generation:
                guard = self.__dict__["_locks"] = _Guard()
            return guard

    @contextlib.contextmanager
    def _workspace(self, batch):
        """Activations, kept pre-activations and deltas (outs, zs, deltas) for a batch size, this caller's for
        the duration of the ``with``: taken from the network's pool, or allocated and given to it after."""
        guard = self._guard()
        ws = guard.take(batch)
        if ws is None:
            ws = self._new_workspace(batch)
        try:
            yield ws
        finally:
            guard.give(batch, ws)

    def _new_workspace(self, batch):
        """Fresh (outs, zs, deltas) for ``batch`` rows: zs keeps Z only where the kernels need it."""
        outs = [np.empty((batch, n), dtype=self.dtype) for n in self.layer_sizes[1:]]
        last = self.n_layers - 1
        zs = [
            np.empty((batch, n), dtype=self.dtype)
            if l == last or (self.straight_through and self.activations[l] in ZERO_GRADIENT_ACTIVATIONS)
            else None
            for l, n in enumerate(self.layer_sizes[1:])
        ]
        deltas = [np.empty((batch, n), dtype=self.dtype) for n in self.layer_sizes[1:]]
        return outs, zs, deltas

    def _gradient_buffers(self):
        """dW and db buffers for training (under the training lock, so one set per network is enough)."""
        # empty_like keeps each weight's layout: dW¹ has W¹'s (the kernels want them alike).
        grads = self.__dict__.get("_grads")
        if grads is None or any(g.flags.c_contiguous != w.flags.c_contiguous
                                for g, w in zip(grads[0], self.weights)):
            grads = self._grads = ([np.empty_like(w) for w in self.weights],
                                   [np.empty_like(b) for b in self.biases])
        return grads

    @property
    def embedding_layout(self):
        """Whether W¹ is stored as an embedding table: ``weights[0]`` is then the transpose of a C-contiguous
        (N_0, N_1) array, so the column of W¹ that an input picks is one contiguous row in memory. Training on
        sparse input switches it on (that is where it pays: a sparse entry reads and updates one row); dense
        input works in either layout."""
        w = self.weights[0]
        return bool(w.flags.f_contiguous and not w.flags.c_contiguous)

    def _use_embedding_layout(self):
        """Store W¹ as an embedding table (one copy, once). ``weights[0]`` becomes a new array (the transposed
        view of the table): a reference to the old one no longer aliases the network."""
        if not self.embedding_layout and self.layer_sizes[0] > 1 and self.layer_sizes[1] > 1:
            self.weights[0] = np.ascontiguousarray(self.weights[0].T).T

    def _resolve_loss(self, loss):
        return default_loss(self.output_activation) if loss is None else check_loss(loss)

    def _prepare(self, x, y, loss, writable=True):
        self._check_parameters(writable)
        loss = self._resolve_loss(loss)
        x, _ = check_inputs(x, self.layer_sizes[0], self.dtype)
        if writable and isinstance(x, CSR):
            self._use_embedding_layout()  # training on sparse rows: the layout where they are cheap
        y = prepare_targets(loss, y, self.layer_sizes[-1], x.shape[0], self.dtype)
        return x, y, loss

    def _check_trainable(self):
        blocked = sorted({a for a in self.activations if a in ZERO_GRADIENT_ACTIVATIONS})
        if blocked and not self.straight_through:
            raise ValueError(
                f"this network uses {' and '.join(blocked)} units, whose derivative is zero almost everywhere: "
                "backpropagation would leave the weights below them unchanged and training would learn "
                "nothing. Create the network with MLP(..., straight_through=True) to train them with the "
                "straight-through estimator, or use piecewise_linear / tanh / sigmoid units instead."
            )

    @contextlib.contextmanager
    def _forward(self, kernels, x):
        """The forward pass on x into a workspace of this caller's: ``with`` yields (outs, zs, deltas), and
        until its end no training epoch or step writes the weights (the block may run the backward pass)."""
        with self._workspace(x.shape[0]) as ws:
            guard = self._guard()
            guard.begin_read()
            try:
                kernels.forward(self.weights, self.biases, self.activations, x, ws[0], ws[1])
                yield ws
            finally:
                guard.end_read()

    def _null_loss(self, kernels, loss, y):
        """The loss of all-zero pre-activations on targets y: chance level for the classification losses,
        the mean of ‖y‖² for squared error with a linear output."""
        z = np.zeros_like(y)
        a = np.empty_like(y)
        kernels.activation_forward(self.output_activation, z, a)
        return kernels.loss_value(loss, self.output_activation, a, z, y)

    def _loss_scale(self, kernels, loss, x, y):
        """The scale a loss is compared with to tell an explosion: the larger of the network's current loss on
        (at most 512 rows of) the data, so a network that starts far off is not blamed for it, and of the null
        loss, so a network that starts almost exact may still move (and at least 1e-12, never 0)."""
        step = -(-x.shape[0] // 512)
        xs, ys = take_rows(x, np.arange(0, x.shape[0], step)), np.ascontiguousarray(y[::step])
        with self._forward(kernels, xs) as (outs, zs, _):
            current = kernels.loss_value(loss, self.output_activation, outs[-1], zs[-1], ys)
        scale = max(self._null_loss(kernels, loss, ys), 1e-12)
        return max(scale, current) if math.isfinite(current) else scale

    def _output_error(self, x):
        """Why the outputs for inputs x are not finite, as a FloatingPointError."""
        params = self.weights + self.biases
        for name, a in zip(_parameter_names(self.n_layers, len(params)), params):
            if not _all_finite([a]):
                return FloatingPointError(f"the outputs are not finite because {name} holds NaN or infinity")
        top = largest_magnitude(x)
        widest = max(float(np.max(np.abs(w))) for w in self.weights)
        return FloatingPointError(
            f"the outputs are not finite: the {self.dtype.name} network overflowed (its inputs reach "
            f"magnitude {top:.3g}, its largest weight is {widest:.3g}); scale the inputs"
            + (" or use a float64 network" if self.dtype == np.float32 else "")
        )


    def _snapshot(self, arrays):
        """Copies of ``arrays`` in buffers kept between calls (train_step restores them if an update fails)."""
        saved = self.__dict__.get("_saved")
        if saved is None or len(saved) != len(arrays) or any(
            b.shape != a.shape or b.dtype != a.dtype for a, b in zip(arrays, saved)
        ):
            saved = self._saved = [np.empty_like(a) for a in arrays]
        for target, a in zip(saved, arrays):
            np.copyto(target, a)
        return saved

    # ---- public API ------------------------------------------------------------------------------------------

    def forward(self, x):
        """The network's output a^L.

        Parameters
        ----------
        x : array, shape (B, N_0) or (N_0,)

        Returns
        -------
        ndarray, shape (B, N_L), or (N_L,) for a 1-D x

        Raises
        ------
        FloatingPointError
            If an output is NaN or infinite (never returned: a NaN would pass for a label or a prediction),
            naming the cause: a weight or bias that holds NaN or infinity, or inputs so large that the network
            overflows its dtype.
        """
        self._check_parameters(writable=False)
        x, single = check_inputs(x, self.layer_sizes[0], self.dtype)
        with self._forward(_backend.kernels(), x) as (outs, _, _):
            y = outs[-1].copy()
        # One sum is the cheap test (it is finite when every output is, unless they are close to overflowing).
        if not math.isfinite(np.add.reduce(y, axis=None)) and not np.isfinite(y).all():
            raise self._output_error(x)
        return y[0] if single else y

    predict = forward

    def _threshold(self):
        """Where a single output splits the two classes: 0.5 for units with range [0, 1], else 0."""
        return 0.5 if self.output_activation in ("sigmoid", "step", "piecewise_linear") else 0.0

    def _labels(self, f):
        """Labels from outputs f (B, N_L): the argmax, or for a single output a threshold (``_threshold``)."""
        if self.layer_sizes[-1] == 1:
            return (f[:, 0] > self._threshold()).astype(np.int64)
        return np.argmax(f, axis=1)

    def predict_labels(self, x):
        """Class labels: the argmax of the outputs, or for a single output a threshold at 0.5 for outputs in
        [0, 1] (sigmoid, step, piecewise_linear) and at 0 otherwise."""
        f = self.forward(x)
        labels = self._labels(np.atleast_2d(f))
        return labels[0] if f.ndim == 1 else labels

    def accuracy(self, x, y):
        """Fraction of samples whose predicted label equals y (integer labels, one-hot rows, or ±1/0-1 targets)."""
        return self._accuracy(np.atleast_2d(self.forward(x)), y)

    def _accuracy(self, f, y, sample_weight=None):
        """accuracy() from already computed outputs f (B, N_L); weighted by sample_weight when given."""
        try:
            y = np.asarray(y)
        except ValueError as exc:
            raise ValueError(f"y must be a rectangular array of labels: {exc}") from None
        if y.dtype.kind not in "biuf":
            raise TypeError(f"y must hold numeric labels (or one-hot rows); got dtype {y.dtype}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity")
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] not in (1, self.layer_sizes[-1])):
            raise ValueError(
                f"y must be labels (B,) or rows of {self.layer_sizes[-1]} targets; got shape {y.shape}"
            )
        if y.ndim == 2 and y.shape[1] > 1:
            y = np.argmax(y, axis=1)
        y = y.reshape(-1)
        if self.layer_sizes[-1] == 1:
            y = (y > self._threshold()).astype(np.int64)
        pred = self._labels(f)
        if pred.shape != y.shape:
            raise ValueError(f"X has {pred.shape[0]} samples but y has {y.shape[0]}")
        if sample_weight is not None:
            return float(np.average(pred == y, weights=sample_weight))
        return float(np.mean(pred == y))

    def loss(self, x, y, loss=None):
        """The batch mean of the per-sample loss (each summed over the outputs).

        ``loss`` defaults to cross_entropy for softmax outputs, binary_cross_entropy for sigmoid, hinge for
        sign and squared_error otherwise. For cross_entropy y may be integer labels (B,) or one-hot (B, M).
        """
        x, y, loss = self._prepare(x, y, loss, writable=False)
        kernels = _backend.kernels()
        with self._forward(kernels, x) as (outs, zs, _):
            return kernels.loss_value(loss, self.output_activation, outs[-1], zs[-1], y)

    def loss_and_gradients(self, x, y, loss=None):
        """The loss and its gradients by backpropagation.

        Returns
        -------
        loss : float
        grads : list of (dW, db)
            ∂C/∂W^l of shape (N_l, N_{l-1}) and ∂C/∂b^l of shape (N_l,), for l = 1..L (fresh arrays).
        """
        x, y, loss = self._prepare(x, y, loss, writable=False)
        kernels = _backend.kernels()
        # Buffers of this call's (the training ones belong to the thread training): they are the result too.
        dws, dbs = [np.empty_like(w) for w in self.weights], [np.empty_like(b) for b in self.biases]
        with self._forward(kernels, x) as (outs, zs, deltas):
            value = kernels.backward(
                self.weights, self.activations, loss, x, y, outs, zs, deltas, dws, dbs, self.straight_through
            )
        return value, list(zip(dws, dbs))

    def train_step(self, x, y, loss=None, optimizer=None, sample_weight=None):
        """Apply one update on the batch (x, y) and return the batch loss measured before it.

        ``optimizer`` is an Optimizer (kept between calls for its state) or a name; default SGD(lr=0.1),
        created once per network. ``sample_weight`` (B,) weighs the rows (the loss is Σ sᵢℓᵢ / Σ sᵢ). The step
        runs natively in one call (forward, loss, backward and the fused update); if the loss, the new weights
        or the optimizer's state are not finite, or the loss is more than 1000 times that of this network's
        first train_step (and than the loss of all-zero outputs), everything is restored and
        FloatingPointError raised, naming the likely cause: on any error the network and the optimizer are
        left as they were. One exception: a Ctrl-C (KeyboardInterrupt) that arrives just as a plain-SGD step
        ends on the compiled backend may leave that whole step applied (never part of it; plain SGD keeps no
        copy to put back, and has no state that could disagree with the weights).

        Training calls on one network (train_step, fit) from several threads run one after the other;
        inference calls in other threads run alongside and see the network before or after a step.
        """
        # The training lock as _one_trainer_at_a_time takes it, without its wrapper call (a tenth of a step).
        guard = self._guard()
        with guard.training:
            kernels = _backend.kernels()
            if hasattr(kernels, "step_plan"):
                value = fast_train_step(self, guard, kernels, x, y, loss, optimizer, sample_weight)
                if value is not None:
                    return value
            return self._general_train_step(kernels, x, y, loss, optimizer, sample_weight)

    def _general_train_step(self, kernels, x, y, loss, optimizer, sample_weight):
        """train_step for any input (lists, other dtypes, sparse rows), every backend, and the errors; the
        caller holds the training lock."""
        self._check_trainable()
        x, y, loss = self._prepare(x, y, loss)
        sw = () if sample_weight is None else (check_sample_weight(sample_weight, x.shape[0], self.dtype),)
        if optimizer is None:
            optimizer = "sgd"
        if isinstance(optimizer, str):
            # A named optimizer is created once per network and name, so its state (momentum, moments) persists.
            cache = self.__dict__.setdefault("_named_optimizers", {})
            key = optimizer.lower()
            if key not in cache:
                cache[key] = SGD(lr=0.1) if key == "sgd" else make_optimizer(optimizer)
            optimizer = cache[key]
        optimizer = make_optimizer(optimizer)
        rows = x.shape[0]
        params = self.weights + self.biases
        spec = optimizer.native_spec(params)
        state = optimizer.state_arrays()
        saved = self._snapshot(params + state)
        dws, dbs = self._gradient_buffers()
        # The update and its undoing are one write: inference in other threads sees the network before or
        # after it.
        with self._workspace(rows) as (outs, zs, deltas), self._guard().writing():
            try:
                total, done, bad_start, bad_loss = kernels.train_epoch(
                    self.weights, self.biases, self.activations, loss, x, y, None, rows, outs, zs, deltas, dws,
                    dbs, None, None, self.straight_through, spec, *sw,
                )
            except BaseException:  # Ctrl-C (the numpy backend may stop between two layers' updates), ...
                for target, a in zip(params + state, saved):
                    np.copyto(target, a)
                raise
            if bad_start >= 0:  # the kernel applies no update after a non-finite loss
                raise FloatingPointError(
                    f"the loss is {bad_loss}: training diverged (the weights were not updated); "
                    + divergence_cause(saved, self.n_layers, x, y, optimizer.lr)
                )
            optimizer.advance(1 if done else 0)
            value = total / (rows if not sw else float(sw[0].sum(dtype=np.float64)))
            # The loss is measured before the update, so an explosion shows one step after the update that
            # caused it; this step is undone, and the message says the weights had already diverged.
            ref = self.__dict__.get("_first_step_loss")
            if ref is None and done:
                ref = self._first_step_loss = value
            exploded = (ref is not None and value > EXPLOSION * max(ref, 1e-12)
                        and value > EXPLOSION * self._null_loss(kernels, loss, y))
            if exploded or not _all_finite(params + state):
                for target, a in zip(params + state, saved):
                    np.copyto(target, a)
                optimizer.advance(-1 if done else 0)
                what = (f"the loss is {value:.3g}, more than {EXPLOSION:g} times its level at this network's "
                        f"first train_step ({ref:.3g}): the weights diverged in earlier steps" if exploded
                        else f"this update overflowed {self.dtype.name}")
                cause = divergence_cause(saved, self.n_layers, x, y, optimizer.lr)
                raise FloatingPointError(f"{what} (the weights were not updated); {cause}")
        return value

    def _step_failure(self, what, x, y, optimizer):
        """The FloatingPointError of a train_step that left everything as it was: ``what`` happened;
        the advice comes from the parameters and state (as they were), the data and the learning rate."""
        before = self.weights + self.biases + optimizer.state_arrays()
        cause = divergence_cause(before, self.n_layers, x, y, optimizer.lr)
        return FloatingPointError(f"{what} (the weights were not updated); {cause}")

    def fit(self, x, y, loss=None, optimizer=None, batch_size=32, epochs=10, shuffle=True, seed=None, tol=None,
            validation_data=None, callbacks=(), progress=True, **options):
        """Train by gradient descent; see :func:`pyfastnn.train.fit` for the parameters (and the keyword-only
        ``options``: sample_weight, class_weight, lr_schedule, early_stopping, validation_fraction, patience,
        monitor, restore_best, checkpoint, checkpoint_every, resume, and comm / check_replicas for
        distributed training over MPI). Returns a History."""
        from .train import fit

        return fit(self, x, y, loss=loss, optimizer=optimizer, batch_size=batch_size, epochs=epochs,
                   shuffle=shuffle, seed=seed, tol=tol, validation_data=validation_data, callbacks=callbacks,
                   progress=progress, **options)

    def save(self, path):
        """Write the network to ``path`` (.npz arrays plus a JSON header; see :mod:`pyfastnn.io`)."""
        from .io import save

        save(self, path)

    # ---- export (pyfastnn.export; torch / onnx are optional and imported there on use) ----------------------

    def to_torch(self):
        """This network as a ``torch.nn.Sequential`` (Linear, activation, ...) with copies of its parameters;
        see :func:`pyfastnn.export.to_torch`. Needs ``pip install 'pyfastnn[torch]'``."""
        from .export import to_torch

        return to_torch(self)

    @classmethod
    def from_torch(cls, module):
        """A network from a ``torch.nn.Sequential`` of Linear layers and supported activations; see
        :func:`pyfastnn.export.from_torch`."""
        from .export import from_torch

        return from_torch(module)

    def to_onnx(self, path=None, *, opset=None):
        """This network as an ``onnx.ModelProto`` (input ``X``, output ``Y``), saved to ``path`` when given; see
        :func:`pyfastnn.export.to_onnx`. Needs ``pip install 'pyfastnn[onnx]'``."""
        from .export import OPSET, to_onnx

        return to_onnx(self, path, opset=OPSET if opset is None else opset)


# Last: the fast path imports names of this module, all defined by now.
from ._train_step import fast_train_step
