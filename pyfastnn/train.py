"""The training loop: epochs of shuffled mini-batches, validation, stopping criteria, progress and callbacks."""

import numbers
import sys
import time

import numpy as np

from . import _backend
from ._progress import Progress
from .losses import prepare_targets
from .network import MLP, check_bool, check_inputs, check_seed
from .optim import SGD, make_optimizer


class History:
    """What ``fit`` measured, epoch by epoch.

    Attributes
    ----------
    history : dict of str → list
        "loss" (mean training loss over the epoch's batches, each measured before its update), "time"
        (seconds since fit began), and with validation data "val_loss" and, for classification, "val_accuracy".
    epochs : list of int
        The epoch numbers (from 1).
    stop_reason : str
        Why training ended: "epochs", "tol" or "callback".
    """

    def __init__(self):
        self.history = {}
        self.epochs = []
        self.stop_reason = None

    def _append(self, epoch, logs):
        self.epochs.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def __len__(self):
        return len(self.epochs)

    def __repr__(self):
        last = {k: v[-1] for k, v in self.history.items()}
        return f"History(epochs={len(self.epochs)}, stop_reason={self.stop_reason!r}, last={last})"


def _check_batch_size(batch_size, n):
    if batch_size is None or (isinstance(batch_size, str) and batch_size == "full"):
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch_size must be a positive int, None or 'full'; got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (or None / 'full' for the whole data set); got {batch_size}")
    return min(int(batch_size), n)  # a batch larger than the data is the whole data


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int; got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}")
    return int(value)


def _has_accuracy(net, loss):
    return loss != "squared_error" or net.output_activation == "softmax"


def fit(net, x, y, loss=None, optimizer=None, batch_size=32, epochs=10, shuffle=True, seed=None, tol=None,
        validation_data=None, callbacks=(), progress=True):
    """Train ``net`` by gradient descent.

    Parameters
    ----------
    net : MLP
    x : array (B, N_0)
    y : array (B, N_L), or integer labels (B,) for cross_entropy
    loss : str or None
        Default by output activation (see ``MLP.loss``).
    optimizer : Optimizer or str
        Default ``SGD(lr=0.1)``. Its state carries over between calls to fit.
    batch_size : int, None or "full"
        None / "full": full-batch gradient descent; 1: per-sample SGD; else mini-batch SGD. Clamped to the
        data size. The last batch of an epoch may be smaller.
    epochs : int
    shuffle : bool
        Visit the samples in a new random order every epoch.
    seed : int or None
        Seed of the shuffling.
    tol : float or None
        Stop when an epoch lowers the training loss by less than ``tol``.
    validation_data : (X_val, y_val) or None
        Evaluated after every epoch: "val_loss", and "val_accuracy" for classification losses.
    callbacks : iterable of callables ``cb(epoch, logs) -> bool``
        Called after every epoch; returning True stops training.
    progress : bool
        Print a line per epoch (a redrawn bar on a terminal) to standard error.

    Returns
    -------
    History
    """
    if not isinstance(net, MLP):
        raise TypeError(f"fit trains a pyfastnn.MLP; got {type(net).__name__}")
    seed = check_seed(seed)
    shuffle = check_bool("shuffle", shuffle)
    net._check_trainable()
    x, y, loss = net._prepare(x, y, loss)
    n = x.shape[0]
    batch = _check_batch_size(batch_size, n)
    epochs = _check_positive_int("epochs", epochs)
    optimizer = make_optimizer(SGD(lr=0.1) if optimizer is None else optimizer)
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
            raise ValueError(f"tol must be a number >= 0 or None; got {tol!r}")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (X_val, y_val)")
        x_val, _ = check_inputs(validation_data[0], net.layer_sizes[0], net.dtype, what="X_val")
        y_val = prepare_targets(loss, validation_data[1], net.layer_sizes[-1], x_val.shape[0], net.dtype)
    callbacks = list(callbacks or ())
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(epoch, logs) -> bool; got {cb!r}")

    kernels = _backend.kernels()
    rng = np.random.default_rng(seed)
    history = History()
    history.stop_reason = "epochs"
    params = net.weights + net.biases
    outs, zs, deltas = net._workspace(batch)
    dws, dbs = net._gradient_buffers()
    xbuf = np.empty((batch, x.shape[1]), dtype=net.dtype) if shuffle else None
    ybuf = np.empty((batch, y.shape[1]), dtype=net.dtype) if shuffle else None
    reporter = Progress(epochs, stream=sys.stderr, enabled=bool(progress))
    start = time.perf_counter()
    previous = None
    try:
        for epoch in range(1, epochs + 1):
            order = rng.permutation(n) if shuffle else None
            spec = optimizer.native_spec(params)
            # A snapshot per epoch (O(parameters), small next to an epoch) lets a diverging epoch be undone.
            snapshot = [a.copy() for a in params + optimizer.state_arrays()]
            total, done, bad_start, bad_loss = kernels.train_epoch(
                net.weights, net.biases, net.activations, loss, x, y, order, batch, outs, zs, deltas, dws, dbs,
                xbuf, ybuf, net.straight_through, spec,
            )
            batches = -(-done // batch)
            optimizer.advance(batches)
            if bad_start >= 0 or not all(np.isfinite(p).all() for p in params):
                for target, saved in zip(params + optimizer.state_arrays(), snapshot):
                    np.copyto(target, saved)
                optimizer.advance(-batches)
                what = (f"the loss was {bad_loss} on the batch starting at sample {bad_start}" if bad_start >= 0
                        else "the weights stopped being finite")
                kept = f"end of epoch {epoch - 1}" if epoch > 1 else "start of training"
                raise FloatingPointError(
                    f"training diverged in epoch {epoch}: {what}. The weights were restored to the {kept}; "
                    "try a smaller learning rate"
                )
            logs = {"loss": total / n}
            if validation_data is not None:
                val_outs, val_zs, _ = net._forward(kernels, x_val)
                logs["val_loss"] = kernels.loss_value(loss, net.output_activation, val_outs[-1], val_zs[-1], y_val)
                if _has_accuracy(net, loss):
                    logs["val_accuracy"] = net._accuracy(val_outs[-1], y_val)  # the outputs just computed
            logs["time"] = time.perf_counter() - start
            history._append(epoch, logs)
            reporter.update(epoch, logs)
            stop = False
            for cb in callbacks:
                stop = bool(cb(epoch, dict(logs))) or stop
            if stop:
                history.stop_reason = "callback"
                break
            if tol is not None and previous is not None and previous - logs["loss"] < tol:
                history.stop_reason = "tol"
                break
            previous = logs["loss"]
    finally:
        reporter.close()
    return history
