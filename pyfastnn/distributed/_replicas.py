"""The replicas of one network across MPI ranks: agreement before training, the per-step allreduce, and the
collective decisions after each epoch. mpi4py is imported on first use only."""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import os
import sys
import traceback
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal

import numpy as np

from .._ref import _progress_ticker
from .._validation import CSR, take_rows
from ..network import MLP, check_bool, check_seed
from ..optim import Optimizer

# Trailing elements of the gradient buffer, reduced with the gradients in the same allreduce: the step's
# weight sum (rows, or sample weights), its loss sum (batch-mean loss × weight) and its row count.
_WEIGHT, _LOSS, _ROWS = 0, 1, 2
_EXTRA = 3


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            f"distributed training (comm=...) needs mpi4py: pip install 'pyfastnn[mpi]' ({exc})"
        ) from None
    return MPI


def _communicator(comm: Any) -> Any:
    """comm checked: an mpi4py intracommunicator; returns the MPI module."""
    MPI = _mpi()
    if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
        raise TypeError("comm must be an mpi4py intracommunicator (e.g. mpi4py.MPI.COMM_WORLD) or None; got "
                        f"{type(comm).__name__} {comm!r}")
    return MPI


def _contiguous(a: np.ndarray) -> np.ndarray:
    """a, or its transpose when it is F-contiguous (the embedding layout of W¹): a C-contiguous view of the
    same memory, for MPI's buffer interface."""
    return a if a.flags.c_contiguous else a.T


def parameters_digest(net: MLP, extra: Sequence[np.ndarray] = ()) -> str:
    """A SHA-256 hex digest of the network's weights and biases (and of the arrays ``extra``, e.g. an
    optimizer's state), byte for byte: two replicas are bit-identical exactly when their digests agree (up
    to a hash collision)."""
    h = hashlib.sha256()
    for a in list(net.weights) + list(net.biases) + list(extra):
        h.update(np.ascontiguousarray(_contiguous(a)).tobytes())
    return h.hexdigest()


def shard_rows(n: int, rank: int, size: int, seed: int | None = None) -> np.ndarray:
    """The rows of an ``n``-row data set that rank ``rank`` of ``size`` trains on: every size-th row from the
    rank's position, after a shuffle that every rank draws alike from ``seed`` (no shuffle when None).

    Returns
    -------
    ndarray of int64, shape (⌈(n − rank)/size⌉,)
    """
    for name, value, low in (("n", n, 0), ("size", size, 1), ("rank", rank, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}")
    if rank >= size:
        raise ValueError(f"rank must lie in [0, size); got rank {rank} of size {size}")
    seed = check_seed(seed)
    order = np.arange(n, dtype=np.int64) if seed is None else np.random.default_rng(seed).permutation(n)
    return order[rank::size]


def shard(x: Any, y: Any, comm: Any, seed: int | None = None) -> tuple[Any, np.ndarray]:
    """This rank's rows of (x, y): ``shard_rows(len(x), comm rank, comm size, seed)``. x may be a NumPy array
    or a scipy.sparse CSR matrix; y an array with one entry (or row) per sample."""
    _communicator(comm)
    n = x.shape[0]
    if len(y) != n:
        raise ValueError(f"x has {n} rows but y has {len(y)}")
    rows = shard_rows(n, comm.Get_rank(), comm.Get_size(), seed)
    return x[rows], np.asarray(y)[rows]


def _rows_of_step(x: Any, y: np.ndarray, sw: np.ndarray | None, order: np.ndarray | None, lo: int, rows: int,
                  xbuf: Any, ybuf: Any) -> tuple[Any, np.ndarray, Any, float] | None:
    """The batch of a step, rows lo..lo+rows of the visiting order: (xb, yb, sample weights or None, weight),
    or None when it has no rows or no weight. Shuffled dense rows are gathered into xbuf / ybuf."""
    if rows == 0:
        return None
    sparse = isinstance(x, CSR)
    if order is None:
        part = np.arange(lo, lo + rows) if sparse else slice(lo, lo + rows)
        xb, yb = (take_rows(x, part) if sparse else x[part]), y[lo : lo + rows]
    else:
        part = order[lo : lo + rows]
        xb = take_rows(x, part) if sparse else np.take(x, part, axis=0, out=xbuf[:rows])
        yb = np.take(y, part, axis=0, out=ybuf[:rows])
    swb = None if sw is None else np.ascontiguousarray(sw[part])
    weight = float(rows) if swb is None else float(swb.sum(dtype=np.float64))
    return (xb, yb, swb, weight) if weight > 0 else None


def _backward(kernels: Any, net: MLP, loss: str, workspace: Any, dws: list[np.ndarray], dbs: list[np.ndarray],
              xb: Any, yb: np.ndarray, swb: np.ndarray | None) -> float:
    """The forward and backward pass of one batch into dws, dbs (the contract's kernels, on the first rows of
    the workspace); returns the batch's (weighted) mean loss."""
    rows = yb.shape[0]
    outs, zs, deltas = ([None if a is None else a[:rows] for a in part] for part in workspace)
    kernels.forward(net.weights, net.biases, net.activations, xb, outs, zs)
    return kernels.backward(net.weights, net.activations, loss, xb, yb, outs, zs, deltas, dws, dbs,
                            net.straight_through, *(() if swb is None else (swb,)))


class abort_on_error(contextlib.ContextDecorator):
    """End the whole MPI job when the block (or decorated function) raises on this rank.

    MPI collectives have no timeout: when one rank fails, the others wait for it forever. Around the training
    code of every rank, ``with abort_on_error():`` prints the traceback (prefixed with the rank) to standard
    error and calls ``comm.Abort(exit_code)``, which ends every process of the job (mpiexec exits non-zero).
    A successful block, ``SystemExit(0)`` and jobs of a single process pass through unchanged.

    Parameters
    ----------
    comm : mpi4py communicator or None
        The job to end; default ``MPI.COMM_WORLD``.
    exit_code : int
    """

    def __init__(self, comm: Any = None, exit_code: int = 1) -> None:
        if comm is not None:
            _communicator(comm)
        if isinstance(exit_code, bool) or not isinstance(exit_code, numbers.Integral):
            raise TypeError(f"exit_code must be an int; got {exit_code!r}")
        self.comm: Any = comm
        self.exit_code: int = int(exit_code)

    def __enter__(self) -> abort_on_error:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        if kind is None or exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            return False
        comm = self.comm if self.comm is not None else _mpi().COMM_WORLD
        if comm.Get_size() == 1:
            return False
        text = "".join(traceback.format_exception(kind, exc, tb))
        rank = comm.Get_rank()
        prefixed = "".join(f"[rank {rank}] {line}\n" for line in text.rstrip("\n").split("\n"))
        sys.stderr.write(f"{prefixed}[rank {rank}] aborting the MPI job (exit code {self.exit_code})\n")
        sys.stderr.flush()
        comm.Abort(self.exit_code)
        return False  # not reached: Abort does not return


def _describe(value: Any) -> str:
    return "a callable" if callable(value) else repr(value)


class Replicas:
    """One rank's side of a distributed ``fit``: created from the communicator before anything is checked,
    so that an error on one rank before training reaches every rank (``fail``) instead of leaving them
    waiting."""

    def __init__(self, comm: Any, check_replicas: bool = False) -> None:
        self.MPI = _communicator(comm)
        self.check_replicas = check_bool("check_replicas", check_replicas)
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.agreed = False
        self.seed = None

    # ---- before training ---------------------------------------------------------------------------------

    def fail(self, exc: BaseException) -> None:
        """Tell the other ranks that this one cannot start (they raise too); nothing once training began."""
        if not self.agreed:
            self.agreed = True
            self.comm.allgather((f"{type(exc).__name__}: {exc}", None))

    def _exchange(self, payload: Any) -> list[Any]:
        """Every rank's ``payload``, gathered before training, in the one message form ``fail`` sends too:
        when a rank failed instead, raise ValueError on every rank (and send nothing more)."""
        gathered = self.comm.allgather((None, payload))
        failed = [f"rank {r}: {err}" for r, (err, _) in enumerate(gathered) if err is not None]
        if failed:
            self.agreed = True
            raise ValueError("distributed fit: no rank trains because " + "; ".join(failed))
        return [part for _, part in gathered]

    def resume_point(self, path: str | None, resume: bool) -> Any:
        """The checkpoint to resume from, read by rank 0 and sent to every rank (so only rank 0 needs to see
        the file), or None (no checkpoint, resume=False, or no file yet). Raises ValueError on every rank
        when the ranks were given different checkpoint arguments."""
        from .._checkpoint import load_checkpoint

        found = None
        if self.rank == 0 and path is not None and resume and os.path.exists(path):
            found = load_checkpoint(path)  # an error here reaches the other ranks through fail()
        parts = self._exchange((path is not None, bool(resume), found))
        asked = [part[:2] for part in parts]
        if any(a != asked[0] for a in asked):
            self.agreed = True
            each = ", ".join(f"rank {r}: checkpoint {'given' if c else 'None'}, resume={res}"
                             for r, (c, res) in enumerate(asked))
            raise ValueError("distributed fit: the ranks must pass the same checkpoint and resume arguments "
                             f"(a path on every rank or on none); they differ ({each})")
        return parts[0][2]

    def shards(self, n_samples: int, n_validation: int, validation_rows: np.ndarray | None,
               settings: dict[str, Any]) -> np.ndarray | None:
        """Record every rank's share of the data in a checkpoint's ``settings`` (totals in n_samples and
        n_validation, the per-rank counts in rank_samples and rank_validation): resuming needs the same
        shards. Returns the ranks' held-out validation rows, concatenated in rank order, when fit split them
        off itself (else None)."""
        parts = self.comm.allgather((int(n_samples), int(n_validation), validation_rows))
        settings.update(ranks=self.size, n_samples=sum(p[0] for p in parts),
                        n_validation=sum(p[1] for p in parts), rank_samples=[p[0] for p in parts],
                        rank_validation=[p[1] for p in parts])
        if validation_rows is None:
            return None
        return np.concatenate([np.asarray(p[2], dtype=np.int64) for p in parts])

    def save(self, write: Any) -> None:
        """``write()`` (a checkpoint's) on rank 0 while the others wait for it; an error writing raises on
        every rank."""
        error = None
        if self.rank == 0:
            try:
                write()
            except Exception as exc:
                error = exc
        message = self.comm.bcast(None if error is None else f"{type(error).__name__}: {error}", root=0)
        if error is not None:
            raise error
        if message is not None:
            raise RuntimeError(f"distributed fit: rank 0 could not write the checkpoint ({message})")

    def agree(self, signature: dict[str, Any], steps: int, weight_total: float, scale: float,
              seed: int | None) -> tuple[int, float, float]:
        """Exchange what must match (``signature``, a dict) and what is combined: each rank's step count,
        weight sum and loss scale. Raises ValueError on every rank when a rank failed to start or the
        signatures differ. Returns (steps: the largest, weight_total: the sum, scale: the largest)."""
        if seed is None:
            entropy: Any = np.random.SeedSequence().entropy
            seed = int(entropy) % (1 << 63)  # rank 0's is the one used
        parts = self._exchange((signature, steps, weight_total, scale, seed))
        self.agreed = True
        differ = []
        for key in signature:
            values = [p[0].get(key) for p in parts]
            if any(v != values[0] for v in values):
                each = ", ".join(f"rank {r}: {_describe(v)}" for r, v in enumerate(values))
                differ.append(f"{key} ({each})")
        if differ:
            raise ValueError("distributed fit: the ranks must train the same network the same way, but they "
                             "differ in " + "; ".join(differ))
        self.seed = parts[0][4]
        return max(p[1] for p in parts), sum(p[2] for p in parts), max(p[3] for p in parts)

    def broadcast(self, params: list[np.ndarray], optimizer: Optimizer) -> None:
        """Rank 0's parameters and optimizer state (arrays and step count) on every rank."""
        spec = optimizer.native_spec(params)  # binds the state arrays to these parameters
        for a in list(params) + list(optimizer.state_arrays()):
            self.comm.Bcast(_contiguous(a), root=0)
        step = self.comm.bcast(spec[8], root=0)
        optimizer.advance(step - spec[8])

    def gradient_buffers(self, net: MLP) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """(buffer, dweights, dbiases): one contiguous buffer of the network's dtype holding every dW and db
        (views shaped and laid out like the parameters) and then the _EXTRA scalars of a step."""
        params = net.weights + net.biases
        total = sum(p.size for p in params)
        buf = np.empty(total + _EXTRA, dtype=net.dtype)
        views, at = [], 0
        for p in params:
            part = buf[at : at + p.size]
            # An F-contiguous W¹ (embedding layout) gets an F-contiguous gradient: the kernels want them
            # alike.
            views.append(part.reshape(p.shape) if p.flags.c_contiguous else part.reshape(p.shape[::-1]).T)
            at += p.size
        n = net.n_layers
        return buf, views[:n], views[n:]

    # ---- training ----------------------------------------------------------------------------------------

    def permutation(self, epoch: int, n: int) -> np.ndarray:
        """This rank's visiting order of its n rows in ``epoch``, drawn from (seed, rank, epoch)."""
        return np.random.default_rng([self.seed, self.rank, epoch]).permutation(n)

    def epoch(self, kernels: Any, net: MLP, loss: str, x: Any, y: np.ndarray, sw: np.ndarray | None,
              order: np.ndarray | None, batch: int, steps: int, workspace: Any, buffers: Any,
              xbuf: np.ndarray | None, ybuf: np.ndarray | None, optimizer: Optimizer,
              progress: Any = None) -> tuple[float, int, int, float, int]:
        """``steps`` synchronous steps (every rank the same number): per step the rank's backward pass into
        the gradient buffer, scaled by the batch's weight; one in-place allreduce (gradients, weight, loss,
        rows); the global weighted-mean gradient; the optimizer's update. A rank whose shard has run out
        contributes zeros. ``progress``: None or a callable ``progress(rows_done)`` of this rank's rows,
        called every 0.2 s at most, as train_epoch's. Returns (Σ step loss × weight, rows trained, first local
        row of a step whose loss was not finite or −1, that loss, updates applied), all global except the row,
        the same on every rank."""
        buf, dws, dbs = buffers
        tick = _progress_ticker(progress)  # this rank's rows done, every 0.2 s at most (fit: on rank 0 only)
        g = buf.shape[0] - _EXTRA
        grads, extra = buf[:g], buf[g:]
        total, done, applied = 0.0, 0, 0
        try:
            for step in range(steps):
                lo = step * batch
                rows = max(0, min(batch, x.shape[0] - lo))
                part = _rows_of_step(x, y, sw, order, lo, rows, xbuf, ybuf)
                if part is not None:
                    xb, yb, swb, weight = part
                    value = _backward(kernels, net, loss, workspace, dws, dbs, xb, yb, swb)
                    grads *= weight  # the mean becomes the sum: the global mean is Σ sums / Σ weights
                    extra[_WEIGHT], extra[_LOSS], extra[_ROWS] = weight, value * weight, rows
                else:
                    buf.fill(0)  # nothing to add, but every rank takes part in every allreduce
                self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
                weight_sum = float(extra[_WEIGHT])
                if weight_sum == 0.0:
                    continue  # no rank had weight in this step: no update (as train_epoch skips such batches)
                loss_sum = float(extra[_LOSS])
                if not math.isfinite(loss_sum):
                    return total, done, lo, loss_sum / weight_sum, applied
                grads *= 1.0 / weight_sum
                optimizer.step(kernels, net.weights, net.biases, dws, dbs)
                applied += 1
                total += loss_sum
                done += int(extra[_ROWS])
                if tick is not None:
                    tick(min(lo + batch, x.shape[0]))
        except BaseException:  # Ctrl-C: fit restores the arrays; the optimizer's step count goes back too
            optimizer.advance(-applied)
            raise
        return total, done, -1, 0.0, applied

    # ---- after each epoch --------------------------------------------------------------------------------

    def reduce_logs(self, logs: dict[str, float], val_weight: float) -> None:
        """The epoch's logs made global, the same on every rank: val_loss and val_accuracy as weighted means
        over the ranks' validation rows (``val_weight``: this rank's row count or weight sum), val_score (a
        callable monitor's) as the mean of the ranks' scores, time as the slowest rank's."""
        mine = (logs.get("val_loss", 0.0) * val_weight, logs.get("val_accuracy", 0.0) * val_weight,
                val_weight, logs.get("val_score", 0.0), logs["time"])
        parts = self.comm.allgather(mine)
        weight = sum(p[2] for p in parts)
        if "val_loss" in logs:
            logs["val_loss"] = sum(p[0] for p in parts) / weight
        if "val_accuracy" in logs:
            logs["val_accuracy"] = sum(p[1] for p in parts) / weight
        if "val_score" in logs:
            logs["val_score"] = sum(p[3] for p in parts) / self.size
        logs["time"] = max(p[4] for p in parts)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank."""
        return any(self.comm.allgather(bool(flag)))

    def check(self, net: MLP, optimizer: Optimizer, epoch: int) -> None:
        """With check_replicas: raise RuntimeError on every rank when the ranks' parameters or optimizer
        states are no longer bit-identical."""
        if not self.check_replicas:
            return
        digests = self.comm.allgather(parameters_digest(net, optimizer.state_arrays()))
        if any(d != digests[0] for d in digests):
            odd = [r for r, d in enumerate(digests) if d != digests[0]]
            raise RuntimeError(f"distributed fit: after epoch {epoch} the replicas differ: ranks {odd} hold "
                               "other parameters than rank 0 (a callback changing the weights on some ranks "
                               "only?)")
