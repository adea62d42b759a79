"""``pyfastnn bench``: training-step throughput of pyfastnn against its peers, side by side in one process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pyfastnn bench [--quick | --smoke] [--out DIR] [--threads N]
        [--shapes S,M,L] [--batches 1,8,32,256,1024] [--repeat N] [--peers ...] [--no-plots]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pyfastnn bench --targets [--quick | --smoke] [--epochs N]

``--targets`` measures pyfastnn's performance targets instead, a row each (pyfastnn/_bench_targets.py, which
holds the targets); what follows describes the training-step table.

One training step = forward, softmax + cross-entropy, backward, plain SGD update (lr 0.01), float32, ReLU
hidden layers, on the standard shapes S = [64, 128, 10], M = [784, 512, 256, 10], L = [784, 2048, 2048, 10].
Columns, in samples/s (the median over the repeats):

  cpp fit     pyfastnn's "cpp" backend through ``net.fit(X, y, batch_size=B, epochs=E, shuffle=False)``: the
              native epoch loop, how users train (the time includes fit's input checks and per-epoch snapshot)
  cpp step    ``net.train_step(x, y)`` once per batch from a Python loop (bench_train.py only, by default)
  numba-be    pyfastnn's "numba" backend through fit
  numpy-be    pyfastnn's "numpy" (reference) backend through fit
  hand NumPy  hand-written NumPy of the same formulas (``pyfastnn._peers.NumpyMLP``)
  torch       PyTorch CPU: nn.Sequential + CrossEntropyLoss + optim.SGD, the usual loop
  sklearn     scikit-learn ``MLPClassifier(solver="sgd", momentum=0, alpha=0, batch_size=B)``: one
              ``partial_fit`` per epoch over the rows, one SGD step per B rows

How it measures (this module is the machinery; benchmarks/bench_train.py and the pytest-benchmark suites in
benchmarks/ use it too): every peer trains on the same i.i.d. random rows, in consecutive batches, from the
same initial weights, with the same thread count (pyfastnn, torch, and NumPy's BLAS through threadpoolctl).
Each (shape, batch, peer) is warmed up and sized so one timed run lasts >= ~0.2 s and has >= 3 steps; the
peers' runs alternate so drift hits all alike; each timed run follows a short idle gap (the previous library's
spinning threads go to sleep) and is redone when other processes used the CPUs meanwhile (/proc/stat). A
sanity check per shape runs a few identical steps in pyfastnn and every peer and compares the weights.
GFLOP/s counts 6·Σ N_l N_{l-1} FLOPs per sample.
"""

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

from . import _backend, _peers

try:
    import resource
except ImportError:  # not on Windows: no load monitoring there
    resource = None

SHAPES = {"S": [64, 128, 10], "M": [784, 512, 256, 10], "L": [784, 2048, 2048, 10]}
SMOKE_SHAPES = {"S": [64, 16, 10], "M": [784, 32, 16, 10], "L": [784, 64, 64, 10]}
BATCHES = (1, 8, 32, 256, 1024)
MODES = {  # default shapes and batches of each mode
    "full": (("S", "M", "L"), BATCHES),
    "quick": (("S", "M"), (1, 32, 256)),
    "smoke": (("S", "M"), (1, 8, 32)),
}
LR = 0.01
POOL_BYTES = 64 << 20      # the random data of one shape
SMOKE_POOL_ROWS = 512
GEMM_N = 1024              # the size of the square GEMMs that give the machine's BLAS rate
SMOKE_GEMM_N = 64

PEERS = ("cpp fit", "cpp step", "numba-be", "numpy-be", "hand NumPy", "torch", "sklearn")
BENCH_PEERS = tuple(p for p in PEERS if p != "cpp step")  # the columns of `pyfastnn bench` by default
BACKEND_OF = {"cpp fit": "cpp", "cpp step": "cpp", "numba-be": "numba", "numpy-be": "numpy"}
PEER_DOC = {
    "cpp fit": "pyfastnn `net.fit(X, y, batch_size=B, shuffle=False)` on the cpp backend (the native epoch loop)",
    "cpp step": "pyfastnn `net.train_step(x, y)` per batch from a Python loop, cpp backend",
    "numba-be": "pyfastnn `fit` on the numba backend",
    "numpy-be": "pyfastnn `fit` on the numpy (reference) backend",
    "hand NumPy": "the formulas hand-written in NumPy with preallocated buffers (`pyfastnn._peers.NumpyMLP`)",
    "torch": "PyTorch CPU: `nn.Sequential` + `CrossEntropyLoss` + `optim.SGD`, the zero_grad/backward/step loop",
    "sklearn": "scikit-learn `MLPClassifier(solver=\"sgd\", momentum=0, alpha=0, batch_size=B, shuffle=False)`: "
               "one `partial_fit` call per pass over the rows, one SGD step per B rows",
}
PINNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
SMOKE_ENV = "PYFASTNN_BENCH_SMOKE"


def flops_per_sample(sizes):
    """FLOPs of one training step per sample: 6·Σ N_l N_{l-1} (forward, ∂W and Δ^{l-1} products).

    The convention of every report: it counts the input layer's Δ^0 = Δ^1 W^1 too, which no backend computes
    (see :func:`real_flops_per_sample`)."""
    return 6 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def real_flops_per_sample(sizes):
    """FLOPs a training step does per sample: :func:`flops_per_sample` without the input layer's Δ product,
    6·Σ N_l N_{l-1} − 2·N_0·N_1."""
    return flops_per_sample(sizes) - 2 * sizes[0] * sizes[1]


def smoke_from_env():
    """True when PYFASTNN_BENCH_SMOKE is set to something other than '', 0, false or no."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


# ------------------------------------------------------------------------------------------------------------
# Machine facts


def cpu_model():
    """The CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


usable_cpus = _backend.usable_cpus
blas_info = _peers.blas_info


def core_file():
    """The path of the compiled extension, or None."""
    try:
        from . import _core
    except ImportError:
        return None
    return _core.__file__


def file_mtime(path):
    try:
        return os.path.getmtime(path)
    except (OSError, TypeError):
        return None


def pinned_openblas():
    """[(name, value)] of the environment variables that pin NumPy's OpenBLAS to a kernel."""
    return [(k, os.environ[k]) for k in PINNING_VARS if k in os.environ]


def pinning_warning(command):
    """The warning for pinned OpenBLAS variables (None when unset); ``command`` is how to run without them."""
    pinned = pinned_openblas()
    if not pinned:
        return None
    names = ", ".join(f"{k}={v}" for k, v in pinned)
    return (f"{names} set: it pins NumPy's OpenBLAS (numpy-be, hand NumPy, sklearn, the sgemm rate) to another "
            "kernel, and the benchmark cannot change that after NumPy is loaded. For a fair comparison run "
            f"`env -u {' -u '.join(PINNING_VARS)} {command}`.")


def import_torch():
    """(torch, None) or (None, why not)."""
    try:
        import torch
    except ImportError as exc:
        return None, f"torch is not installed ({exc}); `pip install torch`"
    return torch, None


def sklearn_version():
    """(version, None) or (None, why not)."""
    try:
        import sklearn
        import sklearn.neural_network
    except ImportError as exc:
        return None, f"scikit-learn is not installed ({exc}); `pip install scikit-learn`"
    return sklearn.__version__, None


def unavailable_peers(peers, torch_reason=None, sklearn_reason=None):
    """{peer: reason} for the peers of ``peers`` that cannot run here."""
    states = _backend.backends()
    out = {}
    for peer in peers:
        backend = BACKEND_OF.get(peer)
        if backend is not None and not states[backend]["available"]:
            out[peer] = f"pyfastnn's {backend} backend is unavailable: {states[backend]['reason']}"
        elif peer == "torch" and torch_reason:
            out[peer] = torch_reason
        elif peer == "sklearn" and sklearn_reason:
            out[peer] = sklearn_reason
    return out


class EqualThreads:
    """Context manager: the same thread count for pyfastnn, torch (if given) and NumPy's BLAS; restored after.

    ``blas_reason`` is None when NumPy's BLAS was limited, else why not (threadpoolctl missing).
    """

    def __init__(self, threads, torch=None):
        self.threads = threads
        self.torch = torch
        self.blas_reason = None
        self._limiter = None
        self._saved = None

    def __enter__(self):
        self._saved = (_backend.get_num_threads(), self.torch.get_num_threads() if self.torch else None)
        _backend.set_num_threads(self.threads)
        if self.torch is not None:
            self.torch.set_num_threads(self.threads)
        try:
            import threadpoolctl
        except ImportError:
            self.blas_reason = "threadpoolctl is not installed (`pip install threadpoolctl`)"
        else:
            # After torch is imported: it may bring a BLAS of its own, which is limited too.
            self._limiter = threadpoolctl.threadpool_limits(limits=self.threads, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self._limiter is not None:
            self._limiter.restore_original_limits()
        _backend.set_num_threads(self._saved[0])
        if self.torch is not None:
            self.torch.set_num_threads(self._saved[1])
        return False


# ------------------------------------------------------------------------------------------------------------
# Timing on a shared machine


class Settings:
    """How long and how carefully each cell is timed (``Settings.for_mode("full" | "quick" | "smoke")``)."""

    def __init__(self, *, repeat=5, target_s=0.2, min_steps=3, max_run_s=3.0, quiet_gap_s=0.15, max_foreign=0.25,
                 max_retries=4, max_wait_s=120.0, wait_budget_s=None, fixed_steps=None):
        self.repeat = repeat                # timed runs per cell; the median is reported
        self.target_s = target_s            # a timed run lasts at least this long ...
        self.min_steps = min_steps          # ... and has at least this many steps
        self.max_run_s = max_run_s          # the reference backend is skipped where one run would take longer
        self.quiet_gap_s = quiet_gap_s      # idle time before each run: the last library's threads stop spinning
        self.max_foreign = max_foreign      # a run during which others used more CPUs than this is redone
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s        # longest wait for a quiet machine before one run
        self.wait_budget_s = wait_budget_s  # total waiting allowed in the whole run (None: no limit)
        self.fixed_steps = fixed_steps      # smoke: every run is this many steps, no sizing, no waiting

    @classmethod
    def for_mode(cls, mode, repeat=None):
        if mode == "full":
            s = cls()
        elif mode == "quick":  # one repeat; wait and retry less, so it stays short on a busy machine
            s = cls(repeat=1, max_retries=1, max_wait_s=5.0, wait_budget_s=30.0)
        elif mode == "smoke":  # CI: exercises every code path in seconds; the numbers mean nothing
            s = cls(repeat=1, min_steps=1, quiet_gap_s=0.0, max_retries=0, max_wait_s=0.0, wait_budget_s=0.0,
                    fixed_steps=3)
        else:
            raise ValueError(f"unknown mode {mode!r}; valid: full, quick, smoke")
        if repeat is not None:
            s.repeat = repeat
        return s


class LoadMonitor:
    """CPU time the rest of the machine used while we ran (Linux /proc/stat minus our own rusage), in CPUs.

    These machines are shared: a run during which another process kept a CPU busy is not a measurement of us.
    """

    def __init__(self):
        self.available = resource is not None and os.path.exists("/proc/stat")
        self.tick = os.sysconf("SC_CLK_TCK") if self.available else 100

    def _busy(self):
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        steal = fields[7] if len(fields) > 7 else 0
        return (sum(fields[:8]) - idle - steal) / self.tick, steal / self.tick

    def start(self):
        if not self.available:
            return None
        r = resource.getrusage(resource.RUSAGE_SELF)
        return self._busy(), r.ru_utime + r.ru_stime, time.perf_counter()

    def foreign(self, mark):
        """Average CPUs busy outside this process (incl. hypervisor steal) since ``mark``."""
        if mark is None:
            return 0.0
        (busy0, steal0), own0, t0 = mark
        busy1, steal1 = self._busy()
        r = resource.getrusage(resource.RUSAGE_SELF)
        own1 = r.ru_utime + r.ru_stime
        wall = max(time.perf_counter() - t0, 1e-9)
        return max(0.0, (busy1 - busy0) - (own1 - own0) + (steal1 - steal0)) / wall


def _timed(run, rows, epochs):
    t0 = time.perf_counter()
    run(rows, epochs)
    return time.perf_counter() - t0


class Meter:
    """Times ``run(rows, epochs)`` functions on a quiet machine and keeps the statistics of the noise."""

    def __init__(self, settings):
        self.s = settings
        self.monitor = LoadMonitor()
        self.runs = 0
        self.redone = 0
        self.kept_noisy = 0
        self.foreign = []
        self.waited = 0.0

    def _may_wait(self):
        return self.s.wait_budget_s is None or self.waited < self.s.wait_budget_s

    def wait_quiet(self):
        """Sleep quiet_gap_s, and longer (up to max_wait_s) while other processes keep the CPUs busy."""
        if self.s.quiet_gap_s <= 0:
            return
        waited = 0.0
        while True:
            mark = self.monitor.start()
            time.sleep(self.s.quiet_gap_s)
            if self.monitor.foreign(mark) <= self.s.max_foreign or waited >= self.s.max_wait_s or not self._may_wait():
                break
            time.sleep(1.0)
            waited += 1.0 + self.s.quiet_gap_s
            self.waited += 1.0 + self.s.quiet_gap_s

    def timed(self, run, rows, epochs):
        """Seconds of one run on a quiet machine, redone (a few times at most) if other processes used the CPUs."""
        for attempt in range(self.s.max_retries + 1):
            self.wait_quiet()
            mark = self.monitor.start()
            t = _timed(run, rows, epochs)
            load = self.monitor.foreign(mark)
            self.runs += 1
            if load <= self.s.max_foreign:
                break
            if attempt == self.s.max_retries or not self._may_wait():
                self.kept_noisy += 1
                break
            self.redone += 1
        self.foreign.append(load)
        return max(t, 1e-9)

    def calibrate(self, run, batch, pool_rows):
        """Warm up and size a run: (rows, epochs, estimated seconds). Starts with one batch and grows ×4, then
        checks the size with quiet runs (a rate measured on a busy machine would make the run too short)."""
        s = self.s
        run(batch, 1)  # warm-up: numba compiles, torch and the BLAS start their threads, buffers are allocated
        if s.fixed_steps:
            rows = min(s.fixed_steps * batch, pool_rows)
            return rows, 1, _timed(run, rows, 1)
        rows = batch
        while True:
            t = max(_timed(run, rows, 1), 1e-9)
            if t >= 0.03 or rows >= pool_rows or t * 4 > s.max_run_s:
                break
            rows = min(pool_rows, rows * 4)
        rate = rows / t
        for _ in range(3):
            steps = max(s.min_steps, math.ceil(s.target_s * rate / batch))
            rows = min(steps * batch, pool_rows)
            epochs = math.ceil(steps * batch / rows)
            if rows * epochs / rate > s.max_run_s:
                break
            t = self.timed(run, rows, epochs)
            rate = max(rate, rows * epochs / t)
            if t >= 0.7 * s.target_s or steps == s.min_steps:
                break
        steps = max(s.min_steps, math.ceil(s.target_s * rate / batch))
        rows = min(steps * batch, pool_rows)
        epochs = math.ceil(steps * batch / rows)
        return rows, epochs, rows * epochs / rate

    def busy(self):
        """Mean CPUs other processes used during the kept timed runs, when above max_foreign (else None)."""
        if not self.monitor.available or not self.foreign or self.s.fixed_steps:
            return None
        mean = statistics.mean(self.foreign)
        return mean if mean > self.s.max_foreign else None

    def summary(self):
        """One line about the noise during the kept timed runs (None without /proc/stat)."""
        if not self.monitor.available or not self.foreign:
            return None
        f = self.foreign
        kept = f"; {self.kept_noisy} kept anyway (retries exhausted)" if self.kept_noisy else ""
        return (f"other processes used {statistics.mean(f):.2f} CPUs on average during the kept timed runs "
                f"(max {max(f):.2f}); {self.redone} of {self.runs} runs were redone because they used more than "
                f"{self.s.max_foreign}; waited {self.waited:.0f} s for quiet{kept}")


# ------------------------------------------------------------------------------------------------------------
# Peers. make_peer returns run(rows, epochs): train `epochs` passes over the first `rows` rows of (x, y).


def fresh_net(sizes):
    """The network every peer starts from: ``pf.MLP(sizes, seed=0)`` (ReLU hidden, softmax output)."""
    from .network import MLP

    return MLP(sizes, seed=0)


def make_peer(peer, sizes, batch, x, y, torch=None, lr=LR):
    """run(rows, epochs) for one column of the table; ``torch`` is the module for the torch peer."""
    from .optim import SGD

    net = fresh_net(sizes)
    if peer in ("cpp fit", "numba-be", "numpy-be"):
        backend, opt = BACKEND_OF[peer], SGD(lr=lr)

        def run(rows, epochs):
            with _backend.use_backend(backend):
                net.fit(x[:rows], y[:rows], batch_size=batch, epochs=epochs, shuffle=False, progress=False,
                        optimizer=opt)

        return run
    if peer == "cpp step":
        opt = SGD(lr=lr)

        def run(rows, epochs):
            with _backend.use_backend("cpp"):
                for _ in range(epochs):
                    for lo in range(0, rows, batch):
                        net.train_step(x[lo : lo + batch], y[lo : lo + batch], optimizer=opt)

        return run
    if peer == "hand NumPy":
        hand = _peers.NumpyMLP(net.weights, net.biases, batch)

        def run(rows, epochs):
            for _ in range(epochs):
                hand.train_epoch(x[:rows], y[:rows], batch, lr)

        return run
    if peer == "torch":
        if torch is None:
            raise ValueError("the torch peer needs the torch module")
        tp = _peers.TorchMLP(net.weights, net.biases, lr)
        xt, yt = tp.tensors(x, y)

        def run(rows, epochs):
            for _ in range(epochs):
                tp.train_epoch(xt[:rows], yt[:rows], batch)

        return run
    if peer == "sklearn":
        sk = _peers.SklearnMLP(net.weights, net.biases, lr, batch)

        def run(rows, epochs):
            for _ in range(epochs):
                sk.train_epoch(x[:rows], y[:rows])

        return run
    raise ValueError(f"unknown peer {peer!r}; valid: {', '.join(PEERS)}")


def make_pool(sizes, max_batch, smoke=False, seed=1):
    """i.i.d. standard-normal rows (≤ 64 MB) and uniform labels; a multiple of max_batch rows, ≥ 3 batches."""
    n_in = sizes[0]
    rows = SMOKE_POOL_ROWS if smoke else min(1 << 16, POOL_BYTES // (4 * n_in))
    rows = max(rows, 3 * max_batch, 512)
    rows -= rows % max_batch
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n_in), dtype=np.float32)
    y = rng.integers(0, sizes[-1], rows).astype(np.int64)
    return x, y


# ------------------------------------------------------------------------------------------------------------
# Sanity check: the same few steps from the same weights in pyfastnn and every peer


def _update_error(w0, wa, wb):
    """max over layers of ||wa − wb|| / ||wb − w0||: the mismatch relative to the size of the update."""
    err = 0.0
    for a, b, o in zip(wa, wb, w0):
        step = np.linalg.norm(b.astype(np.float64) - o)
        err = max(err, float(np.linalg.norm(a.astype(np.float64) - b) / max(step, 1e-30)))
    return err


def sanity_check(sizes, x, y, torch=None, sklearn=False, steps=4, lr=0.1, backend=None):
    """Run ``steps`` identical SGD steps (batch 1 and 32) from the same weights in pyfastnn (``backend``,
    default cpp if available, through fit), hand NumPy, torch (if given) and scikit-learn (if ``sklearn``).

    Returns (ok, text): ok is False when a training loss differs by more than 1e-4 (relative) or the weights by
    more than 1e-3 of the size of the update; text lists the relative differences against hand NumPy.
    """
    from .optim import SGD

    if backend is None:
        backend = "cpp" if _backend.backends()["cpp"]["available"] else _backend.get_backend()
    ok = True
    parts = []
    x_eval, y_eval = x[-256:], y[-256:]
    for batch in (1, 32):
        xs, ys = x[: steps * batch], y[: steps * batch]
        net = fresh_net(sizes)
        w0 = [w.astype(np.float64) for w in net.weights]
        b0 = [b.copy() for b in net.biases]
        hand = _peers.NumpyMLP(net.weights, net.biases, batch)
        with _backend.use_backend(backend):
            hist = net.fit(xs, ys, batch_size=batch, epochs=1, shuffle=False, progress=False, optimizer=SGD(lr=lr))
        train_pf = hist["loss"][0]
        train_hand = hand.train_epoch(xs, ys, batch, lr) / xs.shape[0]
        eval_pf = _peers.ce_loss(net.weights, net.biases, x_eval, y_eval)
        eval_hand = _peers.ce_loss(hand.weights, hand.biases, x_eval, y_eval)
        scale = max(1.0, abs(train_hand))
        errs = {"train loss": abs(train_pf - train_hand) / scale,
                "loss after": abs(eval_pf - eval_hand) / max(1.0, abs(eval_hand)),
                "update": _update_error(w0, net.weights, hand.weights)}
        if torch is not None:
            tp = _peers.TorchMLP(w0, b0, lr)
            xt, yt = tp.tensors(xs, ys)
            train_torch = tp.train_epoch(xt, yt, batch) / xs.shape[0]
            errs["torch train loss"] = abs(train_torch - train_hand) / scale
            errs["torch update"] = _update_error(w0, tp.weights()[0], hand.weights)
        if sklearn:
            # Not scikit-learn's own training loss: it clips probabilities at the float32 epsilon, so it
            # differs where a step starts from a confident wrong prediction. The loss after the steps is ours.
            sk = _peers.SklearnMLP(w0, b0, lr, batch)
            sk.train_epoch(xs, ys)
            sk_w, sk_b = sk.weights()
            errs["sklearn loss after"] = abs(_peers.ce_loss(sk_w, sk_b, x_eval, y_eval) - eval_hand) / max(
                1.0, abs(eval_hand))
            errs["sklearn update"] = _update_error(w0, sk_w, hand.weights)
        bad = {k: v for k, v in errs.items() if not v < (1e-3 if "update" in k else 1e-4)}
        ok = ok and not bad
        parts.append(f"B={batch}: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    verdict = "check ok" if ok else "CHECK MISMATCH"
    return ok, (f"{verdict} ({steps} steps, lr {lr}, pyfastnn on {backend}; relative differences against hand "
                f"NumPy: {'; '.join(parts)})")


# ------------------------------------------------------------------------------------------------------------
# The measurements


class Cell:
    """The measurements of one (shape, batch): per peer the rates of the repeats, the plan, and notes."""

    def __init__(self):
        self.samples = {}  # peer -> [samples/s of each repeat]
        self.plan = {}     # peer -> (rows, epochs) of one timed run
        self.notes = {}    # peer -> why it has no number

    @property
    def rates(self):
        """peer -> median samples/s."""
        return {p: statistics.median(v) for p, v in self.samples.items()}

    @property
    def spread(self):
        """peer -> (max − min) / median over the repeats (peers with ≥ 2 repeats)."""
        return {p: (max(v) - min(v)) / statistics.median(v) for p, v in self.samples.items() if len(v) > 1}


def measure_shape(sizes, batches, peers, meter, x, y, torch=None, progress=None):
    """{batch: Cell} for one shape; the peers' runs alternate within each batch size.

    ``progress(batch, cell, seconds)`` is called after each batch size.
    """
    results = {}
    for batch in batches:
        t0 = time.perf_counter()
        pool_rows = (x.shape[0] // batch) * batch
        cell = Cell()
        plans = {}
        for peer in peers:
            run = make_peer(peer, sizes, batch, x, y, torch)
            rows, epochs, est = meter.calibrate(run, batch, pool_rows)
            if peer == "numpy-be" and est > meter.s.max_run_s:
                cell.notes[peer] = f"skipped: one run would take ~{est:.1f} s (> {meter.s.max_run_s:.0f} s)"
                continue
            plans[peer] = (run, rows, epochs)
            cell.plan[peer] = (rows, epochs)
        for _ in range(meter.s.repeat):
            for peer, (run, rows, epochs) in plans.items():
                cell.samples.setdefault(peer, []).append(rows * epochs / meter.timed(run, rows, epochs))
        results[batch] = cell
        if progress is not None:
            progress(batch, cell, time.perf_counter() - t0)
    return results


def gemm_rates(meter, n, cpp=True, shape=None):
    """GFLOP/s of float32 n×n·n×n products, or of (m×k)·(k×n') ones for ``shape=(m, k, n')``: NumPy's matmul
    ("numpy sgemm") and, with ``cpp``, pf.gemm on the cpp backend, alternated like the training runs.
    Returns {name: (median, best)}."""
    from . import gemm

    m, k, n = shape or (n, n, n)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    calls = {"numpy sgemm": lambda: np.matmul(a, b, out=out)}
    if cpp:
        def pf_gemm():
            with _backend.use_backend("cpp"):
                gemm(a, b, out=out)

        calls["pf.gemm cpp"] = pf_gemm
        pf_gemm()
        ref = a.astype(np.float64) @ b
        err = float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))
        if not err < 1e-4:
            raise ValueError(f"pf.gemm on ({m}x{k})·({k}x{n}) differs from NumPy by {err:.1e} (relative): "
                             "broken build?")
    plans = {}
    for name, f in calls.items():
        f()  # warm-up
        t = max(_timed(lambda r, e, f=f: f(), 0, 1), 1e-9)
        reps = 1 if meter.s.fixed_steps else max(1, math.ceil(meter.s.target_s / t))
        plans[name] = (lambda rows, epochs, f=f: [f() for _ in range(epochs)], reps)
    flops = 2.0 * m * k * n
    rates = {name: [] for name in plans}
    for _ in range(max(3, meter.s.repeat)):
        for name, (run, reps) in plans.items():
            rates[name].append(flops * reps / meter.timed(run, 0, reps) / 1e9)
    return {name: (statistics.median(v), max(v)) for name, v in rates.items()}


# ------------------------------------------------------------------------------------------------------------
# Formatting


def fmt_rate(v):
    """Samples/s, compact: 1.06M, 467k, 4.2k, 99."""
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def fmt_ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}"


def shape_table(sizes, results, peers, sgemm=None):
    """Markdown table of one shape: a row per batch; samples/s of each peer, cpp fit / each peer, cpp fit's
    GFLOP/s and its fraction of NumPy's sgemm rate (``sgemm``, GFLOP/s)."""
    fps = flops_per_sample(sizes)
    others = [p for p in peers if p != "cpp fit"]
    head = ["batch", *peers, *(f"cpp/{p}" for p in others if "cpp fit" in peers)]
    if "cpp fit" in peers:
        head += ["cpp GFLOP/s", "of NumPy sgemm"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for batch, cell in results.items():
        rates = cell.rates
        fit = rates.get("cpp fit")
        row = [str(batch), *(fmt_rate(rates.get(p)) for p in peers)]
        if "cpp fit" in peers:
            row += [fmt_ratio(fit, rates.get(p)) for p in others]
            row.append("-" if fit is None else f"{fit * fps / 1e9:.1f}")
            row.append("-" if fit is None or not sgemm else f"{fit * fps / 1e9 / sgemm:.0%}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# Plots (matplotlib, Agg canvas; imported only here)


def _matplotlib_missing():
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        return (f"the plots need matplotlib ({exc}): `pip install matplotlib` (or `pip install 'pyfastnn[bench]'`), "
                "or run without plots: `pyfastnn bench --no-plots`")
    return None


_STYLE = {  # peer -> (color, marker); the same in both plots
    "cpp fit": ("#d62728", "o"), "cpp step": ("#ff9896", "o"), "numba-be": ("#ff7f0e", "s"),
    "numpy-be": ("#8c564b", "v"), "hand NumPy": ("#1f77b4", "^"), "torch": ("#2ca02c", "D"),
    "sklearn": ("#9467bd", "P"),
}


def _figure(n_panels):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6 * n_panels + 2.2, 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, n_panels, squeeze=False)[0]


def _label(peer):
    return {"cpp fit": "pyfastnn cpp (fit)", "numba-be": "pyfastnn numba (fit)",
            "numpy-be": "pyfastnn numpy (fit)", "cpp step": "pyfastnn cpp (train_step loop)"}.get(peer, peer)


def plot_throughput(path, shapes, peers, title):
    """samples/s vs batch size, log-log, one line per peer, one panel per shape."""
    fig, axes = _figure(len(shapes))
    for ax, (name, sizes, results) in zip(axes, shapes):
        for peer in peers:
            pts = [(b, c.rates[peer]) for b, c in results.items() if peer in c.rates]
            if pts:
                color, marker = _STYLE.get(peer, (None, "o"))
                ax.plot(*zip(*pts), marker=marker, color=color, label=_label(peer))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(list(results))
        ax.set_xticklabels([str(b) for b in results])
        ax.set_xlabel("batch size")
        ax.set_ylabel("samples / s")
        ax.set_title(f"{name} = {sizes}")
        ax.grid(True, which="both", alpha=0.3)
    _legend(axes)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)


def _legend(axes):
    """One legend for all panels, right of the last one (no line hidden under it)."""
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    axes[-1].legend(list(handles.values()), list(handles), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                    borderaxespad=0.0)


def plot_gflops(path, shapes, peers, gemm, title):
    """GFLOP/s (6·Σ N_l N_{l-1} per sample) vs batch size per peer, with NumPy's sgemm rate as a line."""
    fig, axes = _figure(len(shapes))
    for ax, (name, sizes, results) in zip(axes, shapes):
        fps = flops_per_sample(sizes)
        for peer in peers:
            pts = [(b, c.rates[peer] * fps / 1e9) for b, c in results.items() if peer in c.rates]
            if pts:
                color, marker = _STYLE.get(peer, (None, "o"))
                ax.plot(*zip(*pts), marker=marker, color=color, label=_label(peer))
        for key, style, label in (("numpy sgemm", "--", "NumPy sgemm"), ("pf.gemm cpp", ":", "pf.gemm (cpp)")):
            if key in gemm:
                ax.axhline(gemm[key]["median"], color="black", linestyle=style, linewidth=1,
                           label=f"{label} {gemm['n']}² ({gemm[key]['median']:.0f} GFLOP/s)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(list(results))
        ax.set_xticklabels([str(b) for b in results])
        ax.set_xlabel("batch size")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"{name} = {sizes}")
        ax.grid(True, which="both", alpha=0.3)
    _legend(axes)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)


# ------------------------------------------------------------------------------------------------------------
# The command


def _choices(valid, what, upper=False):
    def parse(text):
        items = [s.strip() for s in text.split(",") if s.strip()]
        items = [s.upper() for s in items] if upper else items
        if not items:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what} from {', '.join(valid)}; got {text!r}")
        for s in items:
            if s not in valid:
                raise argparse.ArgumentTypeError(f"unknown {what[:-1]} {s!r}; valid: {', '.join(valid)}")
        return list(dict.fromkeys(items))

    return parse


def _batch_list(text):
    try:
        batches = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes like 1,32,256; got {text!r}") from None
    if not batches:
        raise argparse.ArgumentTypeError(f"expected comma-separated batch sizes like 1,32,256; got {text!r}")
    if any(b < 1 for b in batches):
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1; got {text!r}")
    return sorted(set(batches))


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def add_parser(sub):
    """Add the ``bench`` subcommand to the ``pyfastnn`` command's subparsers."""
    p = sub.add_parser(
        "bench",
        help="measure training throughput against NumPy, PyTorch and scikit-learn; write a report with plots",
        description="Time one training step (forward, softmax + cross-entropy, backward, SGD) of pyfastnn's "
        "backends and of its peers (hand-written NumPy, PyTorch, scikit-learn: those installed) side by side, "
        "on the shapes S=[64,128,10], M=[784,512,256,10], L=[784,2048,2048,10], with the same thread count for "
        "every library; plus NumPy's sgemm rate. Writes DIR/report.md, DIR/throughput.png, DIR/gflops.png and "
        "prints the report. Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for a fair comparison: "
        "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pyfastnn bench`.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="shapes S,M × batches 1,32,256, one repeat (about 2 minutes on 2 cores)")
    mode.add_argument("--smoke", action="store_true",
                      help=f"tiny networks, a few steps per cell: checks that everything runs, in seconds; the "
                      f"numbers mean nothing (also {SMOKE_ENV}=1)")
    p.add_argument("--out", metavar="DIR", default="pyfastnn-bench",
                   help="where to write report.md and the plots (default pyfastnn-bench)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads for every library: pyfastnn, torch, NumPy's BLAS (default: the usable CPUs)")
    p.add_argument("--shapes", type=_choices(tuple(SHAPES), "shapes", upper=True), default=None,
                   help="comma-separated subset of S,M,L (default all; --quick: S,M)")
    p.add_argument("--batches", type=_batch_list, default=None,
                   help="comma-separated batch sizes (default 1,8,32,256,1024; --quick: 1,32,256)")
    p.add_argument("--repeat", type=_positive_int, default=None,
                   help="timed runs per cell; the median is reported (default 5; --quick, --smoke: 1)")
    p.add_argument("--peers", type=_choices(PEERS, "peers"), default=None,
                   help=f"comma-separated columns to measure (default: {','.join(BENCH_PEERS)}; also 'cpp step')")
    p.add_argument("--targets", action="store_true",
                   help="measure pyfastnn's performance targets instead (a row per target: what, measured, target, "
                   "met?; a few minutes on 2 cores) and write DIR/targets.md and DIR/targets.json; with --quick "
                   "(fewer repeats, 2 Fashion-shaped epochs) or --smoke (seconds)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="--targets only: epochs of the Fashion-MNIST-shaped run (default 10; --quick 2; --smoke 1)")
    p.add_argument("--no-plots", action="store_true", help="write only report.md (no matplotlib needed)")
    p.add_argument("--no-sparse", action="store_true",
                   help="skip the sparse bag-of-words table (V = 50,000 and 1,000,000 words; --quick: 50,000)")
    return p


def _command_line(args, mode):
    parts = ["pyfastnn bench"]
    if mode == "smoke" and not args.smoke:
        parts[0] = f"{SMOKE_ENV}=1 pyfastnn bench"
    for flag in ("targets", "quick", "smoke", "no_plots", "no_sparse"):
        if getattr(args, flag):
            parts.append("--" + flag.replace("_", "-"))
    if args.out != "pyfastnn-bench":
        parts.append(f"--out {args.out}")
    if args.threads:
        parts.append(f"--threads {args.threads}")
    if args.shapes:
        parts.append(f"--shapes {','.join(args.shapes)}")
    if args.batches:
        parts.append(f"--batches {','.join(map(str, args.batches))}")
    if args.repeat:
        parts.append(f"--repeat {args.repeat}")
    if args.epochs:
        parts.append(f"--epochs {args.epochs}")
    if args.peers:
        parts.append(f"--peers '{','.join(args.peers)}'")
    return " ".join(parts)


def _say(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


def run(args):
    """``pyfastnn bench``: measure, write DIR/report.md (+ plots), print the report; returns the exit code."""
    t_start = time.perf_counter()
    mode = "smoke" if args.smoke or smoke_from_env() else ("quick" if args.quick else "full")
    if args.targets:
        from . import _bench_targets

        return _bench_targets.run_command(args, mode, _command_line(args, mode), _say)
    if args.epochs is not None:
        raise ValueError("--epochs applies only with --targets (the Fashion-MNIST-shaped run)")
    default_shapes, default_batches = MODES[mode]
    shapes = args.shapes or list(default_shapes)
    batches = args.batches or list(default_batches)
    threads = args.threads or usable_cpus()
    settings = Settings.for_mode(mode, repeat=args.repeat)
    peers = [p for p in PEERS if p in (args.peers or BENCH_PEERS)]  # the table's order, whatever the order given
    table = SMOKE_SHAPES if mode == "smoke" else SHAPES
    command = _command_line(args, mode)
    if not args.no_plots:
        missing = _matplotlib_missing()
        if missing:
            print(f"pyfastnn bench: error: {missing}", file=sys.stderr)
            return 1
    out_dir = args.out
    os.makedirs(out_dir, exist_ok=True)

    warnings = []
    pinning = pinning_warning(command)  # `env -u A -u B [NAME=1] pyfastnn bench ...` is a valid command
    if pinning:
        warnings.append(pinning)
        print(f"WARNING: {pinning}", file=sys.stderr, flush=True)
    torch, torch_reason = import_torch() if "torch" in peers else (None, "not requested")
    sk_version, sk_reason = sklearn_version() if "sklearn" in peers else (None, "not requested")
    skipped = unavailable_peers(peers, torch_reason, sk_reason)
    for peer, reason in skipped.items():
        _say(f"{peer} skipped: {reason}")
    peers = [p for p in peers if p not in skipped]
    if not peers:
        raise ValueError("none of the requested peers can run here (see the reasons above)")
    _say(f"{mode} run: shapes {','.join(shapes)} × batches {','.join(map(str, batches))}, {settings.repeat} "
         f"repeat(s), {threads} threads; {', '.join(peers)}"
         + {"full": " (several minutes)", "quick": " (about 2 minutes)", "smoke": " (seconds)"}[mode])

    states = _backend.backends()
    core = core_file()
    core_mtime = file_mtime(core)
    shape_results = []
    checks = []
    with EqualThreads(threads, torch) as eq:
        facts = _facts(mode, threads, eq, torch, sk_version, settings, shapes, batches, table)
        meter = Meter(settings)
        n = SMOKE_GEMM_N if mode == "smoke" else GEMM_N
        _say(f"GEMM rate: float32 {n}x{n}x{n}, NumPy matmul" + (" and pf.gemm (cpp)" if states["cpp"]["available"]
                                                                  else ""))
        gemm = {name: {"median": m, "best": b} for name, (m, b) in
                gemm_rates(meter, n, cpp=states["cpp"]["available"]).items()}
        gemm["n"] = n
        _say("GEMM rate: " + "; ".join(f"{k} {v['median']:.1f} GFLOP/s" for k, v in gemm.items() if k != "n"))
        sgemm = gemm["numpy sgemm"]["median"]
        cells_total, cells_done = len(shapes) * len(batches), [0]
        for name in shapes:
            sizes = table[name]
            x, y = make_pool(sizes, max(max(batches), 32), smoke=mode == "smoke")
            ok, text = sanity_check(sizes, x, y, torch if "torch" in peers else None, sklearn="sklearn" in peers)
            checks.append((name, sizes, ok, text))
            _say(f"{name} {sizes}: {text}")

            def progress(batch, cell, seconds, name=name, sizes=sizes):
                cells_done[0] += 1
                rates = cell.rates
                parts = [f"{p} {fmt_rate(rates[p])}/s" for p in peers if p in rates]
                parts += [f"{p} {text}" for p, text in cell.notes.items()]
                fit = rates.get("cpp fit")
                gf = f"; cpp {fit * flops_per_sample(sizes) / 1e9:.1f} GFLOP/s" if fit else ""
                _say(f"[{cells_done[0]}/{cells_total}] {name} B={batch}: {', '.join(parts)}{gf} ({seconds:.1f} s)")

            shape_results.append((name, sizes, measure_shape(sizes, batches, peers, meter, x, y, torch, progress)))
        sparse = None if args.no_sparse else _measure_sparse(mode, peers, meter, torch, checks)

    notes = []
    for name, _sizes, results in shape_results:
        for batch, cell in results.items():
            notes += [f"{name} B={batch} {p}: {t}" for p, t in cell.notes.items()]
    worst = max(((s, f"{name} B={b} {p}") for name, _sz, res in shape_results for b, c in res.items()
                 for p, s in c.spread.items()), default=None)
    if worst:
        notes.append(f"largest spread (max−min)/median over the repeats: {worst[0]:.0%} ({worst[1]})")
    if meter.summary():
        notes.append(meter.summary())
    busy = meter.busy()
    if busy is not None:
        warnings.append(f"the machine was busy: other processes used {busy:.2f} CPUs on average (of {usable_cpus()}) "
                        f"during the timed runs ({meter.kept_noisy} runs kept although busy), so these numbers are "
                        "unreliable, the ratios too; rerun when the machine is quiet (see `uptime`).")
        print(f"WARNING: {warnings[-1]}", file=sys.stderr, flush=True)
    if file_mtime(core) != core_mtime:
        warnings.append(f"{core} changed during the run (the extension was rebuilt): numbers may mix two builds.")
        print(f"WARNING: {warnings[-1]}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t_start
    notes.append(f"total time {elapsed:.0f} s")
    report = _report(command, mode, facts, warnings, skipped, peers, gemm, sgemm, checks, shape_results, notes,
                     plots=not args.no_plots, sparse=sparse)
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(report)
    written = [path]
    if not args.no_plots:
        title = f"pyfastnn bench ({mode}), {threads} threads, {cpu_model()}" + (
            " (machine busy during the run: numbers unreliable)" if busy is not None else "")
        shapes_for_plot = [(n_, s_, r_) for n_, s_, r_ in shape_results]
        for fname, fn in (("throughput.png", lambda p: plot_throughput(p, shapes_for_plot, peers, title)),
                          ("gflops.png", lambda p: plot_gflops(p, shapes_for_plot, peers, gemm, title))):
            fn(os.path.join(out_dir, fname))
            written.append(os.path.join(out_dir, fname))
    print(report, end="")
    _say(f"wrote {', '.join(written)} in {elapsed:.0f} s")
    if not all(ok for *_rest, ok, _text in checks):
        print("pyfastnn bench: error: a sanity check found peers computing different updates (CHECK MISMATCH "
              "above): the table does not compare the same computation", file=sys.stderr)
        return 1
    return 0


def _measure_sparse(mode, peers, meter, torch, checks):
    """The sparse table's rows (one per vocabulary size) and its columns: pyfastnn's backends among ``peers``,
    PyTorch's EmbeddingBag (sparse and dense gradients) when torch is, scikit-learn when it is. Appends the
    sanity checks to ``checks``."""
    from . import _bench_sparse as bs

    sparse_peers = [p for p in peers if p in bs.BACKEND_OF]
    sparse_peers += ["torch bag", "torch bag dense"] if "torch" in peers else []
    sparse_peers += ["sklearn"] if "sklearn" in peers else []
    results = []
    for vocab in bs.VOCABS[mode]:
        x, y = bs.zipf_documents(512, vocab, seed=2)
        ok, text = bs.sanity_check(x, y, sparse_peers, torch if "torch bag" in sparse_peers else None)
        checks.append((f"sparse V={vocab:,}", None, ok, text))
        _say(f"sparse V={vocab:,}: {text}")

        def progress(r):
            _say(f"sparse V={r['vocab']:,}: " + ", ".join(f"{p} {fmt_rate(v)}/s" for p, v in r["rates"].items()))

        results.append(bs.measure(meter, vocab, sparse_peers, mode, torch, progress))
        results[-1]["check"] = text
    return results, sparse_peers


def _facts(mode, threads, eq, torch, sk_version, settings, shapes, batches, table):
    from . import __version__, cpu_info

    info = cpu_info()
    if info.get("available"):
        isa = f"{info.get('isa')} (float32 kernel {info.get('float32', {}).get('kernel')})"
    else:
        isa = f"compiled core unavailable: {info.get('reason')}"
    numba = "unavailable"
    if _backend.backends()["numba"]["available"]:
        import numba

        numba = numba.__version__
    blas = blas_info() + (f" (not limited: {eq.blas_reason})" if eq.blas_reason else "")
    return [
        ("machine", (f"{cpu_model()}; {os.cpu_count()} logical CPUs ({usable_cpus()} usable); "
                    f"{platform.system()} {platform.machine()}")),
        ("pyfastnn ISA", isa),
        ("date", datetime.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("threads", f"{threads} for every library (pyfastnn, torch, NumPy's BLAS)"),
        ("BLAS", blas),
        ("versions", (f"pyfastnn {__version__}, numpy {np.__version__}, numba {numba}, torch "
                     f"{torch.__version__ if torch is not None else 'not used'}, scikit-learn "
                     f"{sk_version or 'not used'}, python {platform.python_version()}")),
        ("run", f"mode {mode}; shapes {', '.join(f'{s}={table[s]}' for s in shapes)}; batches "
                f"{', '.join(map(str, batches))}; {settings.repeat} repeat(s), median; "
                + (f"{settings.fixed_steps} steps per run" if settings.fixed_steps else
                   f"runs of >= {settings.target_s} s and >= {settings.min_steps} steps")
                + f"; SGD lr {LR}; float32"),
    ]


def _report(command, mode, facts, warnings, skipped, peers, gemm, sgemm, checks, shape_results, notes, plots,
            sparse=None):
    lines = ["# pyfastnn benchmark: one training step, samples/s", ""]
    if mode == "smoke":
        lines += ["**Smoke run: tiny networks and a few steps per cell; the numbers mean nothing.**", ""]
    lines += [f"- command: `{command}`"]
    lines += [f"- {k}: {v}" for k, v in facts]
    lines.append("")
    for w in warnings:
        lines += [f"**WARNING**: {w}", ""]
    lines += [("One training step = forward, softmax + cross-entropy, backward, plain SGD update; ReLU hidden "
              "layers, float32, i.i.d. random data in consecutive batches, the same initial weights everywhere. "
              "Columns:"), ""]
    lines += [f"- **{p}**: {PEER_DOC[p]}" for p in peers]
    lines += [f"- **{p}**: skipped: {reason}" for p, reason in skipped.items()]
    if "cpp fit" in peers:
        lines += ["- **cpp/X**: cpp fit samples/s over X's (> 1: pyfastnn's cpp backend is faster)",
                  ("- **cpp GFLOP/s**: cpp fit samples/s × 6·Σ N_l N_{l−1}; **of NumPy sgemm**: that over NumPy's "
                  "float32 matmul rate measured in this run (below)")]
    lines.append("")
    n = gemm["n"]
    g = [(f"NumPy sgemm (`np.matmul`, float32 {n}×{n}×{n}): **{gemm['numpy sgemm']['median']:.1f} GFLOP/s** "
         f"(median; best {gemm['numpy sgemm']['best']:.1f})")]
    if "pf.gemm cpp" in gemm:
        pg = gemm["pf.gemm cpp"]
        g.append(f"pf.gemm (cpp): **{pg['median']:.1f} GFLOP/s** (best {pg['best']:.1f}; "
                 f"{pg['median'] / sgemm:.2f}× NumPy)")
    lines += ["## GEMM rate", "", "; ".join(g), ""]
    for (name, sizes, results), (_n, _s, ok, text) in zip(shape_results, checks):
        lines += [f"## {name} = {sizes}", "",
                  f"{flops_per_sample(sizes):,} FLOPs per sample. Sanity check: {text}", "",
                  shape_table(sizes, results, peers, sgemm), ""]
    if sparse is not None:
        from . import _bench_sparse as bs

        results, sparse_peers = sparse
        lines += ["## Sparse input: bag of words (V words, one embedding-table first layer)", "",
                  (f"Zipf({bs.ZIPF_EXPONENT}) documents of ~{bs.MEAN_TOKENS} tokens (counts as values), hidden "
                   f"{bs.HIDDEN} ReLU, {bs.CLASSES} classes softmax + cross-entropy, plain SGD, batch {bs.BATCH}, "
                   "float32. Columns:"), ""]
        lines += [f"- **{p}**: {bs.PEER_DOC[p]}" for p in sparse_peers]
        lines += [("- **E bytes/sample**: rows of E = W¹ᵀ a pyfastnn step reads per sample (one per non-zero) plus "
                   "those it reads and writes in the update (one per distinct word of the batch); **cpp GB/s**: "
                   "that traffic at cpp fit's rate; **copy GB/s**: NumPy copying a buffer of E's size"), ""]
        lines += [f"- V={r['vocab']:,}: sanity check: {r['check']}" for r in results]
        lines += ["", bs.table(results, sparse_peers), ""]
        lines += [f"- V={r['vocab']:,} {p}: {note}" for r in results for p, note in r["notes"].items()]
        lines.append("")
    if plots:
        lines += ["## Plots", "", "![samples/s vs batch size](throughput.png)", "",
                  "![GFLOP/s vs batch size](gflops.png)", ""]
    lines += ["## Notes", ""]
    lines += [f"- {n_}" for n_ in notes]
    lines += [("- the machine may be shared and noisy: only ratios measured side by side in one run mean "
              "something; see `pyfastnn bench --help`"), ""]
    return "\n".join(lines)
