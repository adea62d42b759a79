"""Training checkpoints: the whole state of a ``fit`` between two epochs, so that a run interrupted (an
exception, Ctrl-C, a killed process) and resumed from its last checkpoint ends exactly as the uninterrupted
run.

``fit(..., checkpoint=path, resume=True)`` uses :func:`save_checkpoint` after an epoch and
:func:`load_checkpoint` + :meth:`Checkpoint.check` + :meth:`Checkpoint.restore` before the first. Of the
processes of a data-parallel fit, rank 0 writes the file while the others wait, and reads it on resume
(pyfastnn.distributed.Replicas.save / resume_point).

File format (version 1; docs/file-formats.md): an ``.npz`` archive like a model file (no pickled objects) with

    header   uint8 array: UTF-8 JSON {"format": "pyfastnn.checkpoint", "format_version": 1,
             "pyfastnn_version", "network": {"layer_sizes", "activations", "dtype", "straight_through"},
             "optimizer": {"name", "config", "n_state", "step"}, "run": the fit's settings (compared on
             resume),
             "epoch", "stop_reason", "best_epoch", "history_keys", "rng" (the shuffling Generator's
             bit_generator.state), "stopper": {"best", "bad"}, "schedule" (its state or null),
             "samples_seen", "loss_scale", "elapsed", "has_best", "has_validation_rows", "sha256"; of a
             distributed fit also "replica_seed", and "run" holds "ranks", "rank_samples", "rank_validation"}
    W0..W{L-1}, b0..b{L-1}   the parameters, C order, in the network's dtype
    state0..state{n_state-1} the optimizer's state arrays (SGD: velocities of W0.., b0..; Adam: m then v),
             each shaped as parameter (i mod 2L) of the list W0..W{L-1}, b0..b{L-1}
    best_W0.., best_b0..     (has_best) the best epoch's parameters, kept for ``restore_best``
    history  float64 (epochs, len(history_keys)): the History's values; epochs  int64 (epochs,)
    validation_rows          (has_validation_rows: fit split them off itself) int64 (run["n_validation"],),
             increasing (of a distributed fit: each rank's segment, in rank order)

``sha256`` is the digest of the header's JSON without it (keys sorted) and of every array's bytes in the order
above: a damaged or edited file fails to load, it never loads as another state.
"""

import copy
import hashlib
import json
import math
import numbers
import os

import numpy as np

from .io import _check_path, _open_array, _read_header, _read_into, _write_atomically

FORMAT = "pyfastnn.checkpoint"
FORMAT_VERSION = 1
KIND = "pyfastnn checkpoint"
_FINISHED = ("tol", "early_stopping", "callback", "lr_plateau")  # stop reasons that end a run for good


def check_arguments(checkpoint, checkpoint_every, resume, writer=True):
    """fit's checkpoint arguments, checked: (path or None, every, resume). The folder must exist where the
    file is written (``writer``: on rank 0 of a distributed fit)."""
    if not isinstance(resume, (bool, np.bool_)):
        raise TypeError(f"resume must be True or False; got {type(resume).__name__} {resume!r}")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, numbers.Integral):
        raise TypeError(f"checkpoint_every must be a positive int; got {type(checkpoint_every).__name__} "
                        f"{checkpoint_every!r}")
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1; got {checkpoint_every}")
    if checkpoint is None:
        if resume:
            raise ValueError("resume=True needs checkpoint=<path of the checkpoint file>")
        return None, int(checkpoint_every), False
    try:
        path = _check_path(checkpoint)
    except TypeError:
        raise TypeError(f"checkpoint must be None or a file path (str, bytes or os.PathLike); got "
                        f"{type(checkpoint).__name__}") from None
    folder = os.path.dirname(os.path.abspath(path))
    if writer and not os.path.isdir(folder):  # found now, not after the first epoch
        raise FileNotFoundError(f"checkpoint: the folder {folder} of {path} does not exist")
    if writer and os.path.isdir(path):
        raise IsADirectoryError(f"checkpoint: {path} is a directory; give the path of a file")
    return path, int(checkpoint_every), bool(resume)


def run_settings(net, loss, optimizer, n_samples, n_features, n_outputs, batch, shuffle, early_stopping,
                 restore_best, monitor, tol, patience, n_validation, schedule, weighted):
    """What fit's behaviour depends on besides the state: a resumed fit must be given the same, or it would
    not continue the same run. Raises TypeError when the schedule's parameters cannot be recorded in JSON."""
    settings = {
        "loss": loss,
        "optimizer": type(optimizer).__name__,
        "n_samples": int(n_samples),
        "n_features": int(n_features),
        "n_outputs": int(n_outputs),
        "batch_size": int(batch),
        "shuffle": bool(shuffle),
        "early_stopping": bool(early_stopping),
        "restore_best": bool(restore_best),
        "monitor": "callable" if callable(monitor) else monitor,
        "tol": None if tol is None else float(tol),
        "patience": int(patience),
        "n_validation": int(n_validation),
        "sample_weight": bool(weighted),
        "lr_schedule": None if schedule is None else {"name": type(schedule).__name__, **schedule._config()},
    }
    try:
        return json.loads(json.dumps(settings))  # as a checkpoint gives them back (tuples as lists)
    except TypeError as exc:
        raise TypeError(f"checkpoint: the lr_schedule {schedule!r} has parameters a checkpoint cannot record "
                        f"({exc}); give it numbers, strings and booleans only") from None


def _network(net):
    return {"layer_sizes": list(net.layer_sizes), "activations": list(net.activations),
            "dtype": net.dtype.name, "straight_through": bool(net.straight_through)}


def _digest(header, arrays):
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode("utf-8"))
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_checkpoint(path, net, optimizer, *, epoch, rng, history, settings, stopper, schedule, best_params,
                    samples_seen, loss_scale, elapsed, validation_rows, replica_seed=None):
    """Write the state of a fit after ``epoch`` to ``path``, atomically and durably (a new file next to it,
    flushed to the disk, renamed over it): a crash at any moment leaves the previous checkpoint or this one.

    Parameters
    ----------
    path : str
    net : MLP
    optimizer : Optimizer
    epoch : int
        The last completed epoch (from 1).
    rng : numpy.random.Generator
        The fit's shuffling generator, as it is before the next epoch's draw.
    history : History
    settings : dict
        :func:`run_settings` of the fit.
    stopper : train._Stopper
    schedule : LRSchedule or None
    best_params : list of arrays or None
        Under early stopping with restore_best, the best epoch's parameters (weights then biases).
    samples_seen : int
    loss_scale : float
        The divergence scale fit measured before its first epoch.
    elapsed : float
        Seconds of training so far (the History's "time" continues from it).
    validation_rows : int array (V,) or None
        The rows fit held out for validation, when it split them off itself (of a distributed fit: every
        rank's, concatenated in rank order; ``settings`` holds each rank's count).
    replica_seed : int or None
        Of a distributed fit: the seed every rank's shuffling draws from (with its rank and the epoch).
    """
    from . import __version__

    state, step = optimizer._checkpoint_state(net.weights + net.biases)
    keys = list(history.history)
    table = np.array([history.history[k] for k in keys], dtype=np.float64).T.reshape(len(history), len(keys))
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pyfastnn_version": __version__,
        "network": _network(net),
        "optimizer": {"name": type(optimizer).__name__,
                      "config": {k: v for k, v in optimizer.get_config().items() if k != "name"},
                      "n_state": len(state), "step": int(step)},
        "run": settings,
        "epoch": int(epoch),
        "stop_reason": history.stop_reason,
        "best_epoch": history.best_epoch,
        "history_keys": keys,
        "rng": rng.bit_generator.state,
        "stopper": {"best": float(stopper.best), "bad": int(stopper.bad)},
        "schedule": None if schedule is None else schedule._checkpoint_state(),
        "samples_seen": int(samples_seen),
        "loss_scale": float(loss_scale),
        "elapsed": float(elapsed),
        "has_best": best_params is not None,
        "has_validation_rows": validation_rows is not None,
    }
    if replica_seed is not None:
        header["replica_seed"] = int(replica_seed)
    arrays = {}
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"W{l}"], arrays[f"b{l}"] = w, b
    for i, a in enumerate(state):
        arrays[f"state{i}"] = a
    if best_params is not None:
        n = net.n_layers
        for l in range(n):
            arrays[f"best_W{l}"], arrays[f"best_b{l}"] = best_params[l], best_params[n + l]
    arrays["history"] = table
    arrays["epochs"] = np.asarray(history.epochs, dtype=np.int64)
    if validation_rows is not None:
        arrays["validation_rows"] = np.asarray(validation_rows, dtype=np.int64)
    arrays = {k: np.ascontiguousarray(a) for k, a in arrays.items()}
    header["sha256"] = _digest(header, arrays.values())
    encoded = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    _write_atomically(path, {"header": encoded, **arrays}, durable=True)


class Checkpoint:
    """A checkpoint read by :func:`load_checkpoint`.

    Attributes
    ----------
    path : str
    header : dict
        The JSON header (see the module's docstring).
    arrays : dict of str → ndarray
        Every array member but the header, checked against the header and the checksum.
    """

    def __init__(self, path, header, arrays):
        self.path, self.header, self.arrays = path, header, arrays

    @property
    def epoch(self):
        return self.header["epoch"]

    @property
    def finished(self):
        """Whether the run ended by a decision (early stopping, tol, a callback, a plateau), not by its count
        of epochs: resuming it trains no further."""
        return self.header["stop_reason"] in _FINISHED

    @property
    def validation_rows(self):
        """The held-out rows as stored (of a distributed fit: every rank's, concatenated), or None."""
        return self.arrays.get("validation_rows")

    @property
    def replica_seed(self):
        """The shuffling seed of a distributed fit's ranks (None for a single-process fit)."""
        return self.header.get("replica_seed")

    def validation_rows_of(self, n_samples, rank=None, ranks=None):
        """The validation rows the fit held out of its ``n_samples`` rows (those of rank ``rank`` of
        ``ranks`` in a distributed fit), or None when it did not split them off itself or had other data."""
        rows, run = self.validation_rows, self.header["run"]
        if rows is None:
            return None
        if rank is None:
            return rows if "ranks" not in run and run["n_samples"] == n_samples else None
        if run.get("ranks") != ranks or run["rank_samples"][rank] != n_samples:
            return None
        start = sum(run["rank_validation"][:rank])
        return rows[start : start + run["rank_validation"][rank]]

    def check(self, net, optimizer, settings, epochs):
        """Raise ValueError when this checkpoint is not of a run of ``net`` and ``optimizer`` with these
        ``settings`` (naming every difference), or is past ``epochs``."""
        differences = []
        for what, mine, theirs in (("network", self.header["network"], _network(net)),
                                   ("fit", self.header["run"], settings)):
            for key in sorted(set(mine) | set(theirs)):
                if mine.get(key) != theirs.get(key):
                    differences.append(f"{what} {key}: checkpoint {mine.get(key)!r}, "
                                       f"this fit {theirs.get(key)!r}")
        if differences:
            raise ValueError(f"the checkpoint {self.path} is of another run, so it cannot be resumed here ("
                             + "; ".join(differences) + "). Resume with the network and fit arguments it was "
                             "written with, or start afresh (resume=False overwrites it)")
        if self.epoch > epochs and not self.finished:
            raise ValueError(f"the checkpoint {self.path} is at epoch {self.epoch}, past epochs={epochs}; "
                             f"pass epochs >= {self.epoch} (the total count, not the count still to train)")

    def restore(self, net, optimizer, rng, history, stopper, schedule):
        """Put the saved state into the network's arrays, the optimizer (hyper-parameters and state), the
        generator, ``history``, the stopper and the schedule (after its ``start``).

        Returns
        -------
        dict
            "samples_seen", "loss_scale", "elapsed" and "best_params" (list of arrays or None).
        """
        h, a = self.header, self.arrays
        n = net.n_layers
        names = [f"W{l}" for l in range(n)] + [f"b{l}" for l in range(n)]
        params = net.weights + net.biases
        # What the file sets is tried on copies first: a value they refuse leaves everything as it was.
        try:
            type(rng.bit_generator)().state = h["rng"]
            if schedule is not None:
                copy.copy(schedule)._restore_checkpoint_state(h["schedule"])
            probe = copy.copy(optimizer)
            probe._set_config(h["optimizer"]["config"])
            probe.reset()
            probe._bind(params)
            n_state = h["optimizer"]["n_state"]
            if n_state and n_state != len(probe.state_arrays()):
                raise ValueError(f"{probe!r} keeps {len(probe.state_arrays())} state arrays; the checkpoint "
                                 f"holds {n_state}")
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{self.path}: invalid checkpoint header: {exc}") from None
        optimizer._set_config(h["optimizer"]["config"])
        rng.bit_generator.state = h["rng"]
        if schedule is not None:
            schedule._restore_checkpoint_state(h["schedule"])
        with net._guard().writing():
            for target, name in zip(params, names):
                np.copyto(target, a[name])
        state = [a[f"state{i}"] for i in range(n_state)]
        optimizer._restore_checkpoint_state(params, state, h["optimizer"]["step"])
        history.epochs = [int(e) for e in a["epochs"]]
        history.history = {k: [float(v) for v in a["history"][:, i]] for i, k in enumerate(h["history_keys"])}
        history.stop_reason = h["stop_reason"]
        history.best_epoch = h["best_epoch"]
        stopper.best, stopper.bad = float(h["stopper"]["best"]), int(h["stopper"]["bad"])
        best = None
        if h["has_best"]:
            best = [a[f"best_W{l}"] for l in range(n)] + [a[f"best_b{l}"] for l in range(n)]
        return {"samples_seen": h["samples_seen"], "loss_scale": h["loss_scale"], "elapsed": h["elapsed"],
                "best_params": best}


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
    ValueError
        Anything but a complete, unchanged checkpoint of a format version this pyfastnn reads: not a zip
        archive, members missing or of another shape or dtype than the header says, a header that is not
        what save_checkpoint writes, or contents that do not match the checksum.
    """
    from .io import _open_archive

    with _open_archive(path, KIND) as (archive, path):
        header = _read_header(archive, path, KIND, FORMAT)
        version = header.get("format_version")
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(f"{path} has checkpoint format version {version!r}; this pyfastnn reads "
                             f"versions up to {FORMAT_VERSION}")
        try:
            members = _members(header)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
            raise ValueError(f"{path}: invalid checkpoint header: {exc}") from None
        arrays = {}
        for name, (shape, dtype) in members.items():
            member, _, fortran = _open_array(archive, path, name, shape, dtype, kind=KIND)
            if fortran:
                member.close()
                raise ValueError(f"{path}: array {name} is stored in Fortran order; a checkpoint's are in C "
                                 "order")
            arrays[name] = np.empty(shape, dtype=dtype)
            _read_into(member, arrays[name], path, name, KIND)
    digest = header.pop("sha256", None)
    if _digest(header, arrays.values()) != digest:
        raise ValueError(f"{path}: the checkpoint does not match its checksum (file corrupted or edited)")
    checkpoint = Checkpoint(path, header, arrays)
    try:
        _check_contents(checkpoint)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise ValueError(f"{path}: invalid checkpoint: {exc}") from None
    return checkpoint


def _members(header):
    """The array members a header announces, in the order of the digest: name → (shape, dtype)."""
    from .network import check_dtype

    net = header["network"]
    sizes = [int(s) for s in net["layer_sizes"]]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"layer_sizes {sizes}")
    dtype = check_dtype(net["dtype"])
    shapes = [(sizes[l + 1], sizes[l]) for l in range(len(sizes) - 1)] + [(s,) for s in sizes[1:]]
    n = len(sizes) - 1
    members = {}
    for l in range(n):
        members[f"W{l}"], members[f"b{l}"] = (shapes[l], dtype), (shapes[n + l], dtype)
    n_state = header["optimizer"]["n_state"]
    if not isinstance(n_state, int) or not 0 <= n_state <= 2 * len(shapes):
        raise ValueError(f"n_state {n_state!r}")
    for i in range(n_state):
        members[f"state{i}"] = (shapes[i % len(shapes)], dtype)
    if header["has_best"] is True:
        for l in range(n):
            members[f"best_W{l}"], members[f"best_b{l}"] = (shapes[l], dtype), (shapes[n + l], dtype)
    epochs, keys = header["epoch"], header["history_keys"]
    if not isinstance(epochs, int) or epochs < 1 or not isinstance(keys, list):
        raise ValueError(f"epoch {epochs!r}, history_keys {keys!r}")
    # Epochs before a resume are in the History, so it holds `epoch` rows (an epoch count, not a size to trust
    # blindly: the arrays' members must hold that much data, which _open_array checks before allocating).
    members["history"] = ((epochs, len(keys)), np.dtype(np.float64))
    members["epochs"] = ((epochs,), np.dtype(np.int64))
    if header["has_validation_rows"] is True:
        members["validation_rows"] = ((int(header["run"]["n_validation"]),), np.dtype(np.int64))
    return members


def _check_contents(checkpoint):
    """What the checksum cannot vouch for in a file someone wrote by hand: values fit would trip on."""
    h, a = checkpoint.header, checkpoint.arrays
    if not all(isinstance(k, str) for k in h["history_keys"]) or "loss" not in h["history_keys"]:
        raise ValueError(f"history_keys {h['history_keys']!r}")
    if not np.array_equal(a["epochs"], np.arange(1, h["epoch"] + 1)):
        raise ValueError("the History's epochs are not 1, 2, ..., epoch")
    if h["stop_reason"] not in ("epochs",) + _FINISHED:
        raise ValueError(f"stop_reason {h['stop_reason']!r}")
    best = h["best_epoch"]
    if best is not None and not (isinstance(best, int) and 1 <= best <= h["epoch"]):
        raise ValueError(f"best_epoch {h['best_epoch']!r}")
    for key in ("samples_seen", "step"):
        value = h["samples_seen"] if key == "samples_seen" else h["optimizer"]["step"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} {value!r}")
    for key in ("loss_scale", "elapsed"):
        if isinstance(h[key], bool) or not isinstance(h[key], (int, float)) or not math.isfinite(h[key]):
            raise ValueError(f"{key} {h[key]!r}")
    stopper = h["stopper"]
    if not isinstance(stopper["best"], (int, float)) or isinstance(stopper["bad"], bool) or not isinstance(
            stopper["bad"], int):
        raise ValueError(f"stopper {stopper!r}")
    if not isinstance(h["rng"], dict) or not isinstance(h["optimizer"]["config"], dict):
        raise ValueError("rng and optimizer config must be objects")
    if not isinstance(h["run"], dict) or not isinstance(h["network"], dict):
        raise ValueError("run and network must be objects")
    seed = h.get("replica_seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"replica_seed {seed!r}")
    run = h["run"]
    if "ranks" in run:  # a distributed fit's: every rank's share of the data
        ranks, counts, held = run["ranks"], run["rank_samples"], run["rank_validation"]
        if (not isinstance(ranks, int) or ranks < 1 or seed is None
                or any(not isinstance(c, list) or len(c) != ranks
                       or not all(isinstance(v, int) and v >= 0 for v in c) for c in (counts, held))
                or sum(counts) != run["n_samples"] or sum(held) != run["n_validation"]):
            raise ValueError(f"ranks {ranks!r}, rank_samples {counts!r}, rank_validation {held!r}")
        parts = zip(counts, np.cumsum([0] + held[:-1]), held)
    else:
        parts = [(run["n_samples"], 0, run["n_validation"])]
    rows = a.get("validation_rows")
    for n, start, count in parts if rows is not None else ():
        mine = rows[start : start + count]
        if mine.size and (mine[0] < 0 or mine[-1] >= n or np.any(np.diff(mine) <= 0)):
            raise ValueError("validation_rows must be increasing row indices below n_samples (of each rank)")
