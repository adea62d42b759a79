"""Optimizers: how a gradient becomes an update of the weights.

An optimizer object holds its hyper-parameters and, once bound to a network, its state (velocities, moments).
The arithmetic runs in the backend's fused update kernels. Weight decay is L2 regularisation on the weights
(``weight_decay·W`` added to the gradient); biases are not decayed.
"""

import numbers

import numpy as np


def _check_number(name, value, *, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}; got {value}")
    return value


class Optimizer:
    """Base class. Subclasses define ``_init_state`` and ``_apply``, and in ``_LIMITS`` the range of each
    numeric hyper-parameter (keywords of ``_check_number``).

    Hyper-parameters are checked whenever they are set, also after construction (a callback lowering ``lr``
    between epochs), so a bad value is refused where it is written instead of training uphill or failing
    inside a kernel later."""

    _LIMITS = {}

    def __init__(self):
        self._state = None
        self._key = None

    def __setattr__(self, name, value):
        limits = self._LIMITS.get(name)
        if limits is not None:
            value = _check_number(name, value, **limits)
        elif name == "sparse_update":
            value = _check_sparse_update(value)
        object.__setattr__(self, name, value)
        if name != "lr" and not name.startswith("_"):
            self._changed()

    def _changed(self):
        """Count a change of what a native train_step plan holds (hyper-parameters but lr, which every step
        passes, and the state arrays): the plan is then made again."""
        object.__setattr__(self, "_version", self.__dict__.get("_version", 0) + 1)

    @staticmethod
    def _key_of(params):
        return tuple((id(p), p.shape, p.dtype.str) for p in params)

    def _bind(self, params):
        """(Re)create the state when the optimizer meets a new set of parameters."""
        key = self._key_of(params)
        if key != self._key:
            self._state = self._init_state(params)
            self._key = key
            self._changed()

    def reset(self):
        """Forget the accumulated state (velocities, moments, step count)."""
        self._state = None
        self._key = None
        self._changed()

    def step(self, kernels, weights, biases, dweights, dbiases):
        """Apply one update with the backend ``kernels`` to weights and biases, in place."""
        self._bind(weights + biases)
        self._apply(kernels, weights, biases, dweights, dbiases)

    def native_spec(self, params):
        """The tuple the ``train_epoch`` kernels take: (kind, lr, momentum, nesterov, weight_decay, beta1,
        beta2, eps, step, state arrays, lazy)."""
        raise NotImplementedError

    def advance(self, steps):
        """Record ``steps`` updates made by a kernel (Adam counts them for its bias correction)."""

    def state_arrays(self):
        """The arrays of the optimizer's state, for snapshots."""
        return []

    def get_config(self):
        return {"name": type(self).__name__, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def _set_config(self, config):
        """Set the hyper-parameters to ``config`` (get_config without "name", from a checkpoint): the same
        names, each value checked as on any assignment."""
        expected = set(self.get_config()) - {"name"}
        if set(config) != expected:
            raise ValueError(f"{type(self).__name__} has hyper-parameters {sorted(expected)}; got "
                             f"{sorted(config)}")
        for name, value in config.items():
            setattr(self, name, value)

    def _checkpoint_state(self, params):
        """(state arrays, step count): what a checkpoint records of the state for the parameters ``params``
        (weights + biases). None when the state is of other arrays (a callback replaced some), or was reset:
        the next step starts afresh, and so does a resumed run."""
        if self._key != self._key_of(params):
            return [], 0
        return self.state_arrays(), self._step()

    def _step(self):
        return 0

    def _restore_checkpoint_state(self, params, arrays, step):
        """Take the state recorded by ``_checkpoint_state`` for ``params`` (weights + biases)."""
        if not arrays:
            self.reset()  # the state starts afresh at the next step, as it would have
            return
        self._bind(params)
        own = self.state_arrays()
        if len(own) != len(arrays):
            raise ValueError(f"{self!r} keeps {len(own)} state arrays; got {len(arrays)}")
        for target, a in zip(own, arrays):
            np.copyto(target, a)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


SPARSE_UPDATES = ("lazy", "dense")


def _check_sparse_update(value):
    if value not in SPARSE_UPDATES:
        raise ValueError(f"sparse_update must be one of {', '.join(SPARSE_UPDATES)}; got {value!r}")
    return value


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    With momentum μ > 0 the velocity is v ← μ·v + g and the step p ← p − lr·v (Nesterov: p ← p − lr·(g + μ·v)).

    Parameters
    ----------
    lr : float > 0
        Learning rate η.
    momentum : float in [0, 1)
    nesterov : bool
        Nesterov's accelerated gradient (needs momentum > 0).
    weight_decay : float >= 0
        L2 penalty on the weights.
    sparse_update : {"lazy", "dense"}
        How a stateful update treats the first layer when the input is sparse (the optimizer's state makes
        every weight move every step, even those the batch does not use). "lazy" (the default): only the
        columns of W¹ that the batch's inputs use are updated, with their state — as PyTorch's SparseAdam and
        embedding trainers do; a step costs what the batch touches, and weight decay reaches a column when
        it is used. "dense": exactly the dense formulas, every column every step (correct and slow: a full
        pass over W¹ per step). Plain SGD without momentum is always exact (weight decay included).
    """

    _LIMITS = {
        "lr": dict(low=0, low_open=True),
        "momentum": dict(low=0, high=1, high_open=True),
        "weight_decay": dict(low=0),
    }

    def __init__(self, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0, sparse_update="lazy"):
        super().__init__()
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.sparse_update = sparse_update

    def __setattr__(self, name, value):
        if name == "nesterov":
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"nesterov must be a bool; got {type(value).__name__}")
            value = bool(value)
            if value and self.momentum == 0:
                raise ValueError("nesterov=True needs momentum > 0")
        elif name == "momentum":
            value = _check_number(name, value, **self._LIMITS[name])
            if value == 0 and getattr(self, "nesterov", False):
                raise ValueError("nesterov=True needs momentum > 0")
            if (value == 0) != (getattr(self, "momentum", 0.0) == 0):
                self.reset()  # velocities appear or disappear: the state is re-created at the next step
        super().__setattr__(name, value)

    def _set_config(self, config):
        # nesterov=True needs momentum > 0: cleared first, set last (sorted is stable).
        self.nesterov = False
        super()._set_config(dict(sorted(config.items(), key=lambda item: item[0] == "nesterov")))

    def _init_state(self, params):
        return [np.zeros_like(p) for p in params] if self.momentum else [None] * len(params)

    def native_spec(self, params):
        self._bind(params)
        state = self._state if self.momentum else []
        return ("sgd", self.lr, self.momentum, self.nesterov, self.weight_decay, 0.0, 0.0, 0.0, 0, state,
                self.sparse_update == "lazy")

    def state_arrays(self):
        return [v for v in (self._state or []) if v is not None]

    def _apply(self, kernels, weights, biases, dweights, dbiases):
        n = len(weights)
        vel_w, vel_b = self._state[:n], self._state[n:]
        kernels.sgd_update(weights, dweights, vel_w, self.lr, self.momentum, self.nesterov, self.weight_decay)
        kernels.sgd_update(biases, dbiases, vel_b, self.lr, self.momentum, self.nesterov, 0.0)


class Adam(Optimizer):
    """Adam: adaptive moment estimation (Kingma & Ba, 2015), with bias correction.

    Parameters
    ----------
    lr : float > 0
    beta1, beta2 : float in [0, 1)
    eps : float > 0
    weight_decay : float >= 0
        L2 penalty on the weights, added to the gradient before the moments.
    sparse_update : {"lazy", "dense"}
        For a sparse input, whether only the columns of W¹ the batch uses move (with their moments) or every
        column every step; see :class:`SGD`.
    """

    _LIMITS = {
        "lr": dict(low=0, low_open=True),
        "beta1": dict(low=0, high=1, high_open=True),
        "beta2": dict(low=0, high=1, high_open=True),
        "eps": dict(low=0, low_open=True),
        "weight_decay": dict(low=0),
    }

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, sparse_update="lazy"):
        super().__init__()
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.sparse_update = sparse_update

    def _init_state(self, params):
        return {"m": [np.zeros_like(p) for p in params], "v": [np.zeros_like(p) for p in params], "t": 0}

    def native_spec(self, params):
        self._bind(params)
        s = self._state
        return ("adam", self.lr, 0.0, False, self.weight_decay, self.beta1, self.beta2, self.eps, s["t"],
                s["m"] + s["v"], self.sparse_update == "lazy")

    def advance(self, steps):
        self._state["t"] += steps

    def _step(self):
        return self._state["t"]

    def _restore_checkpoint_state(self, params, arrays, step):
        super()._restore_checkpoint_state(params, arrays, step)
        if arrays:
            self._state["t"] = step

    def state_arrays(self):
        return (self._state["m"] + self._state["v"]) if self._state else []

    def _apply(self, kernels, weights, biases, dweights, dbiases):
        s = self._state
        n = len(weights)
        s["t"] += 1
        args = (s["t"], self.lr, self.beta1, self.beta2, self.eps)
        kernels.adam_update(weights, dweights, s["m"][:n], s["v"][:n], *args, self.weight_decay)
        kernels.adam_update(biases, dbiases, s["m"][n:], s["v"][n:], *args, 0.0)


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(optimizer, lr=None):
    """An Optimizer from an instance, or from a name ("sgd", "adam") with an optional learning rate."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; valid names: {', '.join(OPTIMIZERS)}")
        return OPTIMIZERS[key]() if lr is None else OPTIMIZERS[key](lr=lr)
    raise TypeError(
        f"optimizer must be an Optimizer (pf.SGD, pf.Adam) or one of {', '.join(OPTIMIZERS)}; "
        f"got {type(optimizer).__name__}"
    )
