"""The training loop: epochs of shuffled mini-batches, validation, stopping criteria, progress and callbacks."""

import functools
import numbers
import os
import sys
import time

import numpy as np

from . import _backend
from ._progress import Progress
from .datasets import train_test_split
from .losses import prepare_targets
from ._validation import CSR, check_inputs, take_rows
from .network import (EXPLOSION, _all_finite, _one_trainer_at_a_time, cast_sample_weight, check_bool,
                      check_sample_weight, check_seed, divergence_cause)
from . import _checkpoint
from .optim import SGD, make_optimizer
from .schedules import make_schedule


class History:
    """What ``fit`` measured, epoch by epoch.

    Attributes
    ----------
    history : dict of str → list
        "loss" (mean training loss over the epoch's batches, each measured before its update), "lr" (the
        learning rate of the epoch), "time" (seconds since fit began), and with validation data "val_loss" and, for classification, "val_accuracy".
    epochs : list of int
        The epoch numbers (from 1).
    stop_reason : str
        Why training ended: "epochs", "tol", "early_stopping", "callback" or "lr_plateau" (a
        ``ReduceOnPlateau(stop=True)`` schedule reached its smallest rate).
    best_epoch : int or None
        The epoch with the best monitored value (training loss, or under early stopping the validation
        monitor); under early stopping with ``restore_best`` the network ends with this epoch's weights.
    """

    def __init__(self):
        self.history = {}
        self.epochs = []
        self.stop_reason = None
        self.best_epoch = None

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


def _row_classes(y, loss):
    """The class of each (prepared) target row, for class weights: argmax of one-hot / probability rows, or the
    0/1 (−1/+1 for hinge) value of a single output."""
    if y.shape[1] > 1:
        if loss != "cross_entropy":
            raise ValueError("class_weight needs single-label targets: integer labels or one-hot rows with "
                             f"cross_entropy, or one 0/1 output; these targets have {y.shape[1]} columns and loss {loss}")
        return np.argmax(y, axis=1)
    if loss == "squared_error":
        raise ValueError("class_weight applies to classification losses, not squared_error")
    return (y[:, 0] > (0.0 if loss == "hinge" else 0.5)).astype(np.int64)


def _sample_weights(net, y, loss, sample_weight, class_weight):
    """Per-row weights (or None) from sample_weight (B,) and class_weight (dict class → weight, or "balanced")."""
    n = y.shape[0]
    sw = None if sample_weight is None else check_sample_weight(sample_weight, n, np.float64)
    if class_weight is not None:
        classes = _row_classes(y, loss)
        n_classes = max(2, y.shape[1])
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ValueError(f"class_weight must be a dict, 'balanced' or None; got {class_weight!r}")
            counts = np.bincount(classes, minlength=n_classes).astype(np.float64)
            present = counts > 0
            table = np.zeros(n_classes)
            table[present] = n / (present.sum() * counts[present])  # n / (classes present × class count)
        elif isinstance(class_weight, dict):
            table = np.ones(n_classes)
            for key, value in class_weight.items():
                if isinstance(key, bool) or not isinstance(key, numbers.Integral) or not 0 <= key < n_classes:
                    raise ValueError(f"class_weight keys must be class indices 0..{n_classes - 1}; got {key!r}")
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (np.isfinite(value) and value >= 0):
                    raise ValueError(f"class_weight values must be finite numbers >= 0; got {value!r} for class {key}")
                table[key] = float(value)
        else:
            raise TypeError(f"class_weight must be a dict, 'balanced' or None; got {type(class_weight).__name__}")
        cw = table[classes]
        sw = cw if sw is None else sw * cw
    if sw is None:
        return None
    if not sw.sum() > 0:
        raise ValueError("the sample weights are all zero: there is nothing to train on")
    return cast_sample_weight(sw, net.dtype)


def _check_validation(net, loss, validation_data):
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise TypeError("validation_data must be a pair (X_val, y_val) or a triple (X_val, y_val, sample_weight_val)")
    x_val, _ = check_inputs(validation_data[0], net.layer_sizes[0], net.dtype, what="X_val")
    y_val = prepare_targets(loss, validation_data[1], net.layer_sizes[-1], x_val.shape[0], net.dtype)
    sw_val = None
    if len(validation_data) == 3 and validation_data[2] is not None:
        sw_val = _sample_weights(net, y_val, loss, validation_data[2], None)
    return x_val, y_val, sw_val


def _validation_rows(x, y, loss, fraction, seed, saved=None):
    """The sorted indices of ``fraction`` of the rows (stratified by class for classification losses), held
    out for early stopping; ``saved`` (a checkpoint's) when given."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must lie in (0, 1); got {fraction!r}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"early stopping needs at least 2 samples to hold out a validation fraction; got {n}")
    if saved is not None:
        return saved
    classify = loss != "squared_error" and (y.shape[1] == 1 or loss == "cross_entropy")
    labels = _row_classes(y, loss) if classify else np.zeros(n, dtype=np.int64)
    # datasets.train_test_split on the row indices: stratified by class for classification losses.
    _, val, _, _ = train_test_split(np.arange(n), labels, test_size=fraction, stratify=classify, seed=seed)
    return np.sort(val)


def _split_validation(net, x, y, sw, loss, fraction, seed, val=None):
    """(train part, validation part) of (x, y, sw): the validation part the rows ``val``, by default
    ``_validation_rows``."""
    if val is None:
        val = _validation_rows(x, y, loss, fraction, seed)
    keep = np.ones(x.shape[0], dtype=bool)
    keep[val] = False
    keep = np.flatnonzero(keep)
    pick = lambda a, rows: None if a is None else np.ascontiguousarray(a[rows])  # noqa: E731
    return (take_rows(x, keep), y[keep], pick(sw, keep)), (take_rows(x, val), y[val], pick(sw, val))


_MONITORS = ("val_loss", "val_accuracy")


@_one_trainer_at_a_time
def fit(net, x, y, loss=None, optimizer=None, batch_size=32, epochs=10, shuffle=True, seed=None, tol=None,
        validation_data=None, callbacks=(), progress=True, *, sample_weight=None, class_weight=None,
        lr_schedule=None, early_stopping=False, validation_fraction=0.1, patience=5, monitor="val_loss",
        restore_best=True, comm=None, check_replicas=False, checkpoint=None, checkpoint_every=1,
        resume=False):
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
        The most epochs to train.
    shuffle : bool
        Visit the samples in a new random order every epoch.
    seed : int or None
        Seed of the shuffling and of the validation split. With the same seed, backend, dtype and thread
        count, training is bit-for-bit reproducible.
    tol : float or None
        Without early stopping: stop when the training loss has not fallen more than ``tol`` below its best
        value for ``patience`` epochs in a row. With early stopping: the improvement of the monitored value
        that counts (default 0).
    validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val) or None
        Evaluated after every epoch: "val_loss", and "val_accuracy" for classification losses.
    callbacks : iterable of callables ``cb(epoch, logs) -> bool``
        Called after every epoch with the epoch's logs; returning True stops training.
    progress : bool
        Print a line per epoch to standard error; on a terminal, a bar redrawn also within each epoch (the
        rows done so far, every 0.2 s).
    sample_weight : array (B,) of weights >= 0, or None
        Each batch minimises Σ s_i ℓ_i / Σ s_i over its rows (scikit-learn's convention); the logged loss is
        the weighted mean over the epoch. A batch whose weights are all zero is skipped.
    class_weight : dict {class index: weight}, "balanced" or None
        Multiplies each row's weight by the weight of its class (argmax of one-hot rows / integer labels, or
        the 0/1 value of a single output). "balanced": n / (classes × count of the class).
    lr_schedule : None, name or :mod:`pyfastnn.schedules` object
        How the optimizer's learning rate changes between epochs ("constant", "step", "exponential",
        "invscaling", "plateau"); after fit the optimizer has its own rate again. Without a schedule fit
        leaves the rate alone (a callback may change ``optimizer.lr``). Each epoch's rate is logged as "lr".
    early_stopping : bool
        Hold out ``validation_fraction`` of the data (stratified by class for classification; unless
        ``validation_data`` is given), stop when ``monitor`` has not improved by more than ``tol`` for
        ``patience`` epochs, and (``restore_best``) end with the weights of the best epoch.
    validation_fraction : float in (0, 1)
    patience : int >= 1
    monitor : "val_loss", "val_accuracy" or callable ``score(net) -> float`` (higher is better, logged as
        "val_score")
    restore_best : bool
    comm : mpi4py intracommunicator or None
        Synchronous data-parallel training (see :mod:`pyfastnn.distributed`): every rank of ``comm`` calls fit
        with its own shard of the data and the same network, loss, optimizer and settings (checked before
        training: a difference raises ValueError on every rank). ``batch_size`` is per rank; each step
        averages the ranks' gradients weighted by their batches' real sizes (or sample weights), so the update
        is that of the global batch, and every rank applies it. Rank 0's weights and optimizer state are the
        starting point; the logs, stopping and schedule decisions come from global sums, the same on every
        rank; progress prints on rank 0 only. Wrap the training of each rank in
        :func:`pyfastnn.distributed.abort_on_error` so that an exception after training started ends the job
        instead of leaving the other ranks waiting.
    check_replicas : bool
        With ``comm``: compare a digest of the parameters and optimizer state of every rank after each epoch
        and raise RuntimeError if they differ (a debugging aid; costs one hash of the parameters per epoch).
    checkpoint : path or None
        Write the state of the run to this file (a no-pickle .npz; see docs/file-formats.md) after every
        ``checkpoint_every`` epochs and after the last: the parameters, the optimizer's hyper-parameters and
        state, the epoch, the shuffling generator's state, the History, the early-stopping and lr-schedule
        state, the best weights kept for ``restore_best`` and the validation split. Atomic and flushed to
        the disk: a crash or a kill at any moment leaves the previous checkpoint or the new one.
    checkpoint_every : int >= 1
    resume : bool
        Continue the run recorded in ``checkpoint`` (when the file exists; without it, start afresh and
        write it): the network's parameters, the optimizer's hyper-parameters and state and everything else
        are taken from the file (``seed`` then only matters for a fresh start), and training continues with
        the next epoch up to ``epochs`` (the total count). A run interrupted after any epoch and resumed ends
        with exactly the weights, optimizer state and History losses of the uninterrupted run (same backend,
        dtype and thread count). A finished run (stopped early, by tol, a callback or a plateau) is not
        trained further. The network, the data's size and fit's arguments (loss, optimizer type, batch
        size, shuffle, early stopping, monitor, tol, patience, lr schedule, sample weights or not) must be
        those of the run, or ValueError names the differences. With ``comm``: rank 0 writes the file while
        the other ranks wait, and reads it on resume (the other ranks need not see it); the checkpoint also
        records the number of ranks, each rank's row count and validation split and the shuffling seed, and
        resuming needs the same number of ranks with the same shards.

    Returns
    -------
    History
        With ``best_epoch`` set under early stopping.

    Raises
    ------
    FloatingPointError
        When an epoch diverges: a non-finite loss or weights, or an epoch loss more than 1000 times its level
        before training (the larger of the network's loss then and the loss of all-zero outputs), which a
        far too large step reaches while every value is still finite. The weights and the optimizer's state
        are restored to the end of the previous epoch, and the message names the likely cause: parameters that
        were already not finite, data far from unit scale, or the learning rate.
    KeyboardInterrupt
        On Ctrl-C, within a fraction of a second on every backend (the compiled epoch checks for signals
        between batches, every 0.1 s at most). The weights and the optimizer's state are then those at the end
        of the last completed epoch (at the start of training if none was): finite and ready to use or to
        train further.

    Callbacks may change the optimizer's hyper-parameters (checked on assignment) and may replace parameter
    arrays by arrays of the same shape and dtype; ``restore_best`` then restores into the network's current
    arrays, and the optimizer's state for replaced arrays starts afresh.

    Threads: training calls on one network (fit, train_step) run one after the other. Inference on the
    network in other threads (predict, loss, ...) runs alongside, each epoch being one update: it waits
    while an epoch runs and sees the weights of an epoch boundary. A callback may use the network, but must
    not wait for another thread that trains it.
    """
    replicas = None
    if comm is not None:
        from .distributed._replicas import Replicas

        replicas = Replicas(comm, check_replicas)
    try:
        return _fit(net, x, y, loss, optimizer, batch_size, epochs, shuffle, seed, tol, validation_data,
                    callbacks, progress, sample_weight, class_weight, lr_schedule, early_stopping,
                    validation_fraction, patience, monitor, restore_best, replicas, checkpoint, checkpoint_every,
                    resume)
    except Exception as exc:
        if replicas is not None:
            replicas.fail(exc)  # a rank that cannot start makes every rank raise instead of wait
        raise


def _fit(net, x, y, loss, optimizer, batch_size, epochs, shuffle, seed, tol, validation_data, callbacks,
         progress, sample_weight, class_weight, lr_schedule, early_stopping, validation_fraction, patience,
         monitor, restore_best, replicas, checkpoint, checkpoint_every, resume):
    seed = check_seed(seed)
    checkpoint, checkpoint_every, resume = _checkpoint.check_arguments(
        checkpoint, checkpoint_every, resume, writer=replicas is None or replicas.rank == 0)
    if replicas is None:
        resumed = _checkpoint.load_checkpoint(checkpoint) if resume and os.path.exists(checkpoint) else None
    else:  # rank 0 reads it (only rank 0 writes it)
        resumed = replicas.resume_point(checkpoint, resume)
    shuffle = check_bool("shuffle", shuffle)
    early_stopping = check_bool("early_stopping", early_stopping)
    restore_best = check_bool("restore_best", restore_best)
    net._check_trainable()
    x, y, loss = net._prepare(x, y, loss)
    epochs = _check_positive_int("epochs", epochs)
    patience = _check_positive_int("patience", patience)
    optimizer = make_optimizer(SGD(lr=0.1) if optimizer is None else optimizer)
    schedule = None if lr_schedule is None else make_schedule(lr_schedule)
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
            raise ValueError(f"tol must be a number >= 0 or None; got {tol!r}")
    if not (callable(monitor) or monitor in _MONITORS):
        raise ValueError(f"monitor must be one of {', '.join(_MONITORS)} or a callable score(net); got {monitor!r}")
    if monitor == "val_accuracy" and not _has_accuracy(net, loss):
        raise ValueError("monitor='val_accuracy' needs a classification loss (or softmax outputs)")
    sw = _sample_weights(net, y, loss, sample_weight, class_weight)
    x_val = y_val = sw_val = val_rows = None
    n_samples = x.shape[0]
    if validation_data is not None:
        x_val, y_val, sw_val = _check_validation(net, loss, validation_data)
    elif early_stopping:
        saved = None
        if resumed is not None:
            saved = (resumed.validation_rows_of(n_samples) if replicas is None
                     else resumed.validation_rows_of(n_samples, replicas.rank, replicas.size))
        val_rows = _validation_rows(x, y, loss, validation_fraction, seed, saved)
        (x, y, sw), (x_val, y_val, sw_val) = _split_validation(net, x, y, sw, loss, validation_fraction, seed,
                                                               val_rows)
        if sw is not None and not sw.sum() > 0:
            raise ValueError("the sample weights of the training part (after the validation split) are all zero")
    callbacks = list(callbacks or ())
    for cb in callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables cb(epoch, logs) -> bool; got {cb!r}")

    n = x.shape[0]
    batch = _check_batch_size(batch_size, n)
    if checkpoint is not None:
        settings = _checkpoint.run_settings(
            net, loss, optimizer, n_samples, x.shape[1], y.shape[1], batch, shuffle, early_stopping,
            restore_best, monitor, tol, patience, 0 if x_val is None else x_val.shape[0], schedule, sw is not None)
    weight_total = float(n) if sw is None else float(sw.sum(dtype=np.float64))
    extra = () if sw is None else (sw,)
    kernels = _backend.kernels()
    rng = np.random.default_rng(seed)
    history = History()
    history.stop_reason = "epochs"
    dws, dbs = net._gradient_buffers()
    # Shuffled dense batches are gathered into xbuf; sparse rows are read in place through the order.
    xbuf = np.empty((batch, x.shape[1]), dtype=net.dtype) if shuffle and not isinstance(x, CSR) else None
    ybuf = np.empty((batch, y.shape[1]), dtype=net.dtype) if shuffle else None
    reporter = Progress(epochs, stream=sys.stderr,
                        enabled=bool(progress) and (replicas is None or replicas.rank == 0))
    if schedule is not None:
        schedule.start(optimizer.lr)
    stopper = _Stopper(early_stopping, monitor, tol, patience)
    best_params = None
    samples_seen = elapsed = 0
    first = 1
    scale = net._loss_scale(kernels, loss, x, y) if resumed is None else 0.0  # a resumed run's is restored
    if replicas is not None:
        signature = {
            "layer_sizes": net.layer_sizes, "activations": net.activations, "dtype": net.dtype.name,
            "straight_through": net.straight_through, "sparse input": isinstance(x, CSR), "loss": loss,
            "optimizer": optimizer.get_config(), "batch_size": "full" if batch_size is None else batch_size,
            "epochs": epochs, "shuffle": shuffle, "tol": tol, "early_stopping": early_stopping,
            "patience": patience, "monitor": "a callable" if callable(monitor) else monitor,
            "restore_best": restore_best, "validation data": x_val is not None,
            "lr_schedule": None if lr_schedule is None else repr(lr_schedule),
            "backend": _backend.get_backend(),
        }
        # Every rank takes the same number of steps per epoch (the most any shard needs); a resumed run
        # shuffles on from the seed it started with.
        steps, weight_total, scale = replicas.agree(signature, -(-n // batch), weight_total, scale,
                                                    seed if resumed is None else resumed.replica_seed)
        if checkpoint is not None:
            val_rows = replicas.shards(n_samples, settings["n_validation"], val_rows, settings)
    if resumed is not None:
        # Checked on every rank alike (the same file, the same settings): each raises the same error.
        resumed.check(net, optimizer, settings, epochs)
        state = resumed.restore(net, optimizer, rng, history, stopper, schedule)
        samples_seen, scale, elapsed, best_params = (
            state[k] for k in ("samples_seen", "loss_scale", "elapsed", "best_params"))
        first = epochs + 1 if resumed.finished else resumed.epoch + 1
    if replicas is not None:
        replicas.broadcast(net.weights + net.biases, optimizer)
        buffers = replicas.gradient_buffers(net)
        val_weight = 0.0 if x_val is None else float(x_val.shape[0] if sw_val is None else sw_val.sum())
    start = time.perf_counter() - elapsed
    guard = net._guard()
    workspace = net._workspace(batch)
    outs, zs, deltas = workspace.__enter__()  # this fit's until the end (the finally below gives it back)
    try:
        for epoch in range(first, epochs + 1):
            # The network's current arrays: a callback may have replaced some (then the optimizer's state for
            # them starts afresh).
            params = _current_parameters(net, epoch)
            order = None
            if shuffle:
                order = rng.permutation(n) if replicas is None else replicas.permutation(epoch, n)
            spec = optimizer.native_spec(params)
            # A snapshot per epoch (O(parameters), small next to an epoch) lets a diverging epoch be undone; its
            # buffers are the network's, kept between epochs (no allocation, no page faults per epoch).
            snapshot = net._snapshot(params + optimizer.state_arrays())
            # The epoch and its undoing are one write: inference in other threads waits for its end.
            with guard.writing():
                try:
                    if replicas is None:
                        total, done, bad_start, bad_loss = kernels.train_epoch(
                            net.weights, net.biases, net.activations, loss, x, y, order, batch, outs, zs,
                            deltas, dws, dbs, xbuf, ybuf, net.straight_through, spec, *extra,
                            progress=_within_epoch(reporter, epoch, n),
                        )
                        batches = -(-done // batch)
                        optimizer.advance(batches)
                    else:  # the optimizer counts its own steps there
                        total, done, bad_start, bad_loss, batches = replicas.epoch(
                            kernels, net, loss, x, y, sw, order, batch, steps, (outs, zs, deltas), buffers,
                            xbuf, ybuf, optimizer, progress=_within_epoch(reporter, epoch, n))
                except BaseException:
                    # Ctrl-C stops an epoch between two batches (on the numba and numpy backends anywhere in
                    # their Python loop, even between two layers' updates): the weights and the optimizer's
                    # state go back to the start of this epoch, a state the network was in.
                    _restore(params + optimizer.state_arrays(), snapshot)
                    raise
                epoch_loss = total / weight_total
                # Divergence: a non-finite loss or weights, or a loss exploding far past where it started (a
                # too-large step can leave every value finite, e.g. losses of 1e20 and weights of 1e17).
                exploded = epoch_loss > EXPLOSION * scale
                if bad_start >= 0 or exploded or not _all_finite(params):
                    _restore(params + optimizer.state_arrays(), snapshot)
                    optimizer.advance(-batches)
                    if bad_start >= 0:
                        what = f"the loss was {bad_loss} on the batch starting at sample {bad_start}"
                    elif exploded:
                        what = (f"the loss exploded to {epoch_loss:.3g}, more than {EXPLOSION:g} times its "
                                f"level before training ({scale:.3g})")
                    else:
                        what = "the weights stopped being finite"
                    kept = f"end of epoch {epoch - 1}" if epoch > 1 else "start of training"
                    raise FloatingPointError(
                        f"training diverged in epoch {epoch}: {what}. The weights were restored to the "
                        f"{kept}; " + divergence_cause(snapshot, net.n_layers, x, y, optimizer.lr)
                    )
            if replicas is not None:
                replicas.check(net, optimizer, epoch)
            samples_seen += done
            logs = {"loss": epoch_loss, "lr": optimizer.lr}
            if x_val is not None:
                with net._forward(kernels, x_val) as (val_outs, val_zs, _):
                    logs["val_loss"] = kernels.loss_value(
                        loss, net.output_activation, val_outs[-1], val_zs[-1], y_val,
                        *(() if sw_val is None else (sw_val,))
                    )
                    if _has_accuracy(net, loss):  # from the outputs just computed
                        logs["val_accuracy"] = net._accuracy(val_outs[-1], y_val, sw_val)
                if callable(monitor):
                    logs["val_score"] = float(monitor(net))
            logs["time"] = time.perf_counter() - start
            if replicas is not None:
                replicas.reduce_logs(logs, val_weight)
            history._append(epoch, logs)
            reporter.update(epoch, logs)
            is_best, stop = stopper.update(logs)
            if is_best:
                history.best_epoch = epoch
                if early_stopping and restore_best:
                    best_params = [p.copy() for p in params]
            if schedule is not None:
                optimizer.lr = schedule.after_epoch(epoch, logs, samples_seen)
            # Every callback sees every epoch, also when an earlier one asks to stop.
            answers = [bool(cb(epoch, dict(logs))) for cb in callbacks]
            if any(answers) if replicas is None else replicas.any(any(answers)):
                history.stop_reason = "callback"
            elif stop:
                history.stop_reason = "early_stopping" if early_stopping else "tol"
            elif schedule is not None and schedule.stopped:
                history.stop_reason = "lr_plateau"
            finished = history.stop_reason != "epochs"
            if checkpoint is not None and (epoch % checkpoint_every == 0 or epoch == epochs or finished):
                write = functools.partial(
                    _checkpoint.save_checkpoint, checkpoint, net, optimizer, epoch=epoch, rng=rng,
                    history=history, settings=settings, stopper=stopper, schedule=schedule,
                    best_params=best_params, samples_seen=samples_seen, loss_scale=scale, elapsed=logs["time"],
                    validation_rows=val_rows, replica_seed=None if replicas is None else replicas.seed)
                if replicas is None:
                    write()
                else:
                    replicas.save(write)
            if finished:
                break
    finally:
        workspace.__exit__(None, None, None)
        reporter.close()
        if schedule is not None:
            optimizer.lr = schedule.lr0  # a schedule changes the rate for this fit only
    if best_params is not None:
        # Into the arrays the network has now, which a callback may have replaced since the best epoch.
        with guard.writing():
            _restore(_current_parameters(net, len(history) + 1), best_params)
    return history


def _within_epoch(reporter, epoch, n):
    """The kernels' progress callable for ``epoch`` of ``n`` rows, or None (no cost) when nothing would
    show."""
    if not reporter.shows_within_epoch:
        return None
    return lambda rows_done: reporter.within_epoch(epoch, rows_done, n)


def _restore(targets, saved):
    """Copy each saved array back into its target, in place."""
    for target, a in zip(targets, saved):
        np.copyto(target, a)


def _current_parameters(net, epoch):
    """net.weights + net.biases, checked again after epoch 1: callbacks may replace arrays, but only by arrays
    of the same shape, dtype and layout."""
    if epoch > 1:
        try:
            net._check_parameters()
        except ValueError as exc:
            raise ValueError(
                f"{exc}: it was changed during fit, after epoch {epoch - 1} (by a callback?); a callback may "
                "replace a parameter array only by one of the same shape and dtype (or write into it in "
                "place)"
            ) from None
    return net.weights + net.biases


class _Stopper:
    """Counts epochs without improvement of the monitored value (training loss without early stopping)."""

    def __init__(self, early_stopping, monitor, tol, patience):
        self.active = early_stopping or tol is not None
        self.key = ("val_score" if callable(monitor) else monitor) if early_stopping else "loss"
        self.sign = 1.0 if self.key in ("val_loss", "loss") else -1.0  # minimise losses, maximise scores
        self.tol = float(tol or 0.0)
        self.patience = patience
        self.best = np.inf
        self.bad = 0


    def update(self, logs):
        """(whether this epoch is the best so far, whether to stop). Like scikit-learn: an epoch counts as no
        improvement when it is not below the best value by more than tol; the best value follows any decrease."""
        value = self.sign * logs[self.key]
        self.bad = self.bad + 1 if value > self.best - self.tol else 0
        is_best = value < self.best
        if is_best:
            self.best = value
        return is_best, self.active and self.bad >= self.patience
