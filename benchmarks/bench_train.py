"""Training-step throughput of pyfastnn against its peers, side by side in one process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train.py [--quick] [--shapes S,M,L]
        [--batches 1,8,32,256,1024] [--threads 2] [--repeat 5] [--markdown]
    python benchmarks/bench_train.py --profile M:256 --seconds 20     # only the cpp fit loop, for a profiler

One training step = forward, softmax + cross-entropy, backward, plain SGD update (lr 0.01), float32, ReLU
hidden layers, on the standard shapes of DESIGN.md §4. Columns (samples/s, median over --repeat runs):

  cpp fit     pyfastnn "cpp" backend through ``net.fit(X, y, batch_size=B, epochs=E, shuffle=False)``: the
              native epoch loop, how users train (the time includes fit's input checks and per-epoch snapshot)
  cpp step    ``net.train_step(x, y)`` once per batch from a Python loop: shows the per-call overhead
  numba-be    pyfastnn's "numba" backend through fit (when numba is installed)
  numpy-be    pyfastnn's "numpy" (reference) backend through fit
  hand NumPy  hand-written NumPy of the same formulas (benchmarks/_peers.py)
  torch       PyTorch CPU, nn.Sequential + CrossEntropyLoss + optim.SGD, the usual loop (benchmarks/_peers.py)

Every peer trains on the same i.i.d. random data (already in random order), looping over consecutive
batches. Each (shape, batch, peer) is warmed up and its data set sized so one timed run lasts >= ~0.2 s (at
least 3 steps); runs of the peers alternate, so drift on a shared machine hits all of them alike. Each timed
run follows a short idle gap (so the previous library's spinning worker threads are asleep) and is redone if
other processes used the CPUs meanwhile (/proc/stat). All libraries use the same thread count (pyfastnn,
torch, and NumPy's BLAS through threadpoolctl). GFLOP/s counts 6·B·Σ N_l N_{l-1} FLOPs per step. Before
timing a shape, a few identical steps from the same initial weights are run in pyfastnn, hand NumPy and torch
and compared ("check ok"), so the table is known to compare the same computation. See benchmarks/README.md.
"""

import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

try:
    import resource
except ImportError:  # not on Windows: no load monitoring there
    resource = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _peers

import pyfastnn as pf

SHAPES = {"S": [64, 128, 10], "M": [784, 512, 256, 10], "L": [784, 2048, 2048, 10]}
BATCHES = "1,8,32,256,1024"
LR = 0.01
TARGET_S = 0.2       # a timed run lasts at least this long
MIN_STEPS = 3        # ... and has at least this many steps
MAX_RUN_S = 3.0      # slower peers (the reference backend) are skipped beyond this per run
POOL_BYTES = 64 << 20

PEERS = ("cpp fit", "cpp step", "numba-be", "numpy-be", "hand NumPy", "torch")


# ------------------------------------------------------------------------------------------------------------
# Machine facts


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


_blas_info = _peers.blas_info


def _git_state():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=5, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _core_file():
    try:
        from pyfastnn import _core

        return _core.__file__
    except ImportError:
        return None


def _mtime(path):
    try:
        return os.path.getmtime(path)
    except (OSError, TypeError):
        return None


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        return None, f"torch is not importable ({exc}); install it with `pip install torch==2.13.0`"
    return torch, None


def print_header(args, torch, torch_reason, limiter_reason):
    info = pf.cpu_info()
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    print("# pyfastnn training-step benchmark (bench_train.py)")
    print(f"date     : {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"cpu      : {_cpu_model()}; {os.cpu_count()} logical CPUs ({affinity} usable)")
    print(f"pyfastnn : {pf.__version__} git {_git_state()}; backend cpp isa={info.get('isa')} "
          f"f32 kernel={info.get('float32', {}).get('kernel')}; _core={_core_file()}")
    print(f"numpy    : {np.__version__}; BLAS {_blas_info()}")
    if torch is not None:
        print(f"torch    : {torch.__version__}; mkldnn={torch.backends.mkldnn.is_available()} "
              f"mkl={torch.backends.mkl.is_available()} threads={torch.get_num_threads()}")
    else:
        print(f"torch    : skipped: {torch_reason}")
    print(f"python   : {platform.python_version()}; threads={args.threads} for every library"
          + (f" (NumPy BLAS not limited: {limiter_reason})" if limiter_reason else ""))
    print(f"run      : shapes={','.join(args.shapes)} batches={','.join(map(str, args.batches))} "
          f"repeat={args.repeat} (median); lr={LR}; float32")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"WARNING: {var}={os.environ[var]} is set: it pins NumPy's OpenBLAS (numpy-be, hand NumPy) "
                  "to a slower kernel. The fair comparison is `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                  "python benchmarks/bench_train.py`.")
    print(flush=True)


# ------------------------------------------------------------------------------------------------------------
# Peers. Each factory returns run(rows, epochs): train `epochs` passes over the first `rows` rows of the pool.


def _fresh_net(sizes):
    return pf.MLP(sizes, seed=0)  # the same initial weights for every peer


def make_cpp_fit(sizes, batch, x, y, backend="cpp"):
    net = _fresh_net(sizes)
    opt = pf.SGD(lr=LR)

    def run(rows, epochs):
        with pf.use_backend(backend):
            net.fit(x[:rows], y[:rows], batch_size=batch, epochs=epochs, shuffle=False, progress=False,
                    optimizer=opt)

    return run


def make_cpp_step(sizes, batch, x, y):
    net = _fresh_net(sizes)
    opt = pf.SGD(lr=LR)

    def run(rows, epochs):
        with pf.use_backend("cpp"):
            for _ in range(epochs):
                for lo in range(0, rows, batch):
                    net.train_step(x[lo : lo + batch], y[lo : lo + batch], optimizer=opt)

    return run


def make_hand_numpy(sizes, batch, x, y):
    net = _fresh_net(sizes)
    peer = _peers.NumpyMLP(net.weights, net.biases, batch)

    def run(rows, epochs):
        for _ in range(epochs):
            peer.train_epoch(x[:rows], y[:rows], batch, LR)

    return run


def make_torch(sizes, batch, x, y):
    net = _fresh_net(sizes)
    peer = _peers.TorchMLP(net.weights, net.biases, LR)
    xt, yt = peer.tensors(x, y)

    def run(rows, epochs):
        for _ in range(epochs):
            peer.train_epoch(xt[:rows], yt[:rows], batch)

    return run


def _timed(run, rows, epochs):
    t0 = time.perf_counter()
    run(rows, epochs)
    return time.perf_counter() - t0


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


MONITOR = LoadMonitor()
QUIET_GAP_S = 0.15    # idle time before each timed run: the previous library's worker threads stop spinning
MAX_FOREIGN = 0.25    # a timed run during which other processes used more CPUs than this on average is redone
MAX_RETRIES = 4
MAX_WAIT_S = 120.0    # longest wait for the machine to become quiet before one run
WAIT_BUDGET_S = None  # total waiting allowed in the whole run (None: no limit; --quick sets one)
STATS = {"runs": 0, "redone": 0, "kept_noisy": 0, "foreign": [], "waited": 0.0}


def _may_wait():
    return WAIT_BUDGET_S is None or STATS["waited"] < WAIT_BUDGET_S


def wait_quiet():
    """Sleep QUIET_GAP_S, and longer (up to MAX_WAIT_S) while other processes keep the CPUs busy."""
    waited = 0.0
    while True:
        mark = MONITOR.start()
        time.sleep(QUIET_GAP_S)
        if MONITOR.foreign(mark) <= MAX_FOREIGN or waited >= MAX_WAIT_S or not _may_wait():
            break
        time.sleep(1.0)
        waited += 1.0 + QUIET_GAP_S
        STATS["waited"] += 1.0 + QUIET_GAP_S


def timed_quiet(run, rows, epochs):
    """A timed run on a quiet machine, redone (a few times at most) if other processes used the CPUs."""
    for attempt in range(MAX_RETRIES + 1):
        wait_quiet()
        mark = MONITOR.start()
        t = _timed(run, rows, epochs)
        load = MONITOR.foreign(mark)
        STATS["runs"] += 1
        if load <= MAX_FOREIGN:
            break
        if attempt == MAX_RETRIES or not _may_wait():
            STATS["kept_noisy"] += 1
            break
        STATS["redone"] += 1
    STATS["foreign"].append(load)
    return t


def calibrate(run, batch, pool_rows):
    """Warm up and size a run: (rows, epochs, estimated seconds). Starts with one batch and grows ×4, then
    checks the size with quiet runs (a rate measured on a busy machine would make the run too short)."""
    rows = batch
    while True:
        t = _timed(run, rows, 1)
        if t >= 0.03 or rows >= pool_rows or t * 4 > MAX_RUN_S:
            break
        rows = min(pool_rows, rows * 4)
    rate = rows / t
    for _ in range(3):
        steps = max(MIN_STEPS, math.ceil(TARGET_S * rate / batch))
        rows = min(steps * batch, pool_rows)
        epochs = math.ceil(steps * batch / rows)
        if rows * epochs / rate > MAX_RUN_S:
            break
        t = timed_quiet(run, rows, epochs)
        rate = max(rate, rows * epochs / t)
        if t >= 0.7 * TARGET_S or steps == MIN_STEPS:
            break
    steps = max(MIN_STEPS, math.ceil(TARGET_S * rate / batch))
    rows = min(steps * batch, pool_rows)
    epochs = math.ceil(steps * batch / rows)
    return rows, epochs, rows * epochs / rate


# ------------------------------------------------------------------------------------------------------------
# Sanity check: the same few steps from the same weights in pyfastnn (cpp), hand NumPy and torch


def _update_error(w0, wa, wb):
    """max over layers of ||wa − wb|| / ||wb − w0||: the mismatch relative to the size of the update."""
    err = 0.0
    for a, b, o in zip(wa, wb, w0):
        step = np.linalg.norm(b.astype(np.float64) - o)
        err = max(err, float(np.linalg.norm(a.astype(np.float64) - b) / max(step, 1e-30)))
    return err


def sanity_check(name, sizes, x, y, torch, steps=4, lr=0.1):
    ok = True
    parts = []
    x_eval, y_eval = x[-256:], y[-256:]
    for batch in (1, 32):
        xs, ys = x[: steps * batch], y[: steps * batch]
        net = _fresh_net(sizes)
        w0 = [w.astype(np.float64) for w in net.weights]
        hand = _peers.NumpyMLP(net.weights, net.biases, batch)
        with pf.use_backend("cpp"):
            hist = net.fit(xs, ys, batch_size=batch, epochs=1, shuffle=False, progress=False,
                           optimizer=pf.SGD(lr=lr))
        train_cpp = hist["loss"][0]
        train_hand = hand.train_epoch(xs, ys, batch, lr) / xs.shape[0]
        eval_cpp = _peers.ce_loss(net.weights, net.biases, x_eval, y_eval)
        eval_hand = _peers.ce_loss(hand.weights, hand.biases, x_eval, y_eval)
        errs = {"train loss": abs(train_cpp - train_hand) / max(1.0, abs(train_hand)),
                "loss after": abs(eval_cpp - eval_hand) / max(1.0, abs(eval_hand)),
                "update": _update_error(w0, net.weights, hand.weights)}
        if torch is not None:
            tp = _peers.TorchMLP(w0, [np.zeros(n, np.float32) for n in sizes[1:]], lr)
            xt, yt = tp.tensors(xs, ys)
            train_torch = tp.train_epoch(xt, yt, batch) / xs.shape[0]
            tw, _tb = tp.weights()
            errs["torch train loss"] = abs(train_torch - train_hand) / max(1.0, abs(train_hand))
            errs["torch update"] = _update_error(w0, tw, hand.weights)
        bad = {k: v for k, v in errs.items() if not v < (1e-3 if "update" in k else 1e-4)}
        ok = ok and not bad
        parts.append(f"B={batch}: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    verdict = "check ok" if ok else "CHECK MISMATCH"
    print(f"{name} {sizes}: {verdict} ({steps} steps, lr {lr}, vs hand NumPy; relative differences: "
          f"{'; '.join(parts)})", flush=True)
    return ok


# ------------------------------------------------------------------------------------------------------------
# The benchmark


def _pool(sizes, max_batch, seed=1):
    n_in = sizes[0]
    rows = max(MIN_STEPS * max_batch, min(1 << 16, POOL_BYTES // (4 * n_in)))
    rows -= rows % max_batch
    rows = max(rows, MIN_STEPS * max_batch)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n_in), dtype=np.float32)
    y = rng.integers(0, sizes[-1], rows).astype(np.int64)
    return x, y


def bench_shape(name, sizes, args, torch):
    x, y = _pool(sizes, max(args.batches))
    results = {}
    for batch in args.batches:
        pool_rows = (x.shape[0] // batch) * batch
        factories = {"cpp fit": (make_cpp_fit, {}), "cpp step": (make_cpp_step, {}),
                     "numpy-be": (make_cpp_fit, {"backend": "numpy"}), "hand NumPy": (make_hand_numpy, {})}
        if pf.backends()["numba"]["available"]:
            factories["numba-be"] = (make_cpp_fit, {"backend": "numba"})
        if torch is not None:
            factories["torch"] = (make_torch, {})
        factories = {k: v for k, v in factories.items() if k in args.peers}
        plans, notes = {}, {}
        for peer, (make, kwargs) in factories.items():
            run = make(sizes, batch, x, y, **kwargs)
            rows, epochs, est = calibrate(run, batch, pool_rows)
            if peer == "numpy-be" and est > MAX_RUN_S:
                notes[peer] = f"skipped: one run would take ~{est:.1f} s (> {MAX_RUN_S:.0f} s)"
                continue
            plans[peer] = (run, rows, epochs)
        samples = {peer: [] for peer in plans}
        for _ in range(args.repeat):
            for peer, (run, rows, epochs) in plans.items():
                samples[peer].append(rows * epochs / timed_quiet(run, rows, epochs))
        cell = {peer: statistics.median(v) for peer, v in samples.items()}
        spread = {peer: (max(v) - min(v)) / statistics.median(v) for peer, v in samples.items() if len(v) > 1}
        detail = {peer: (rows, epochs) for peer, (run, rows, epochs) in plans.items()}
        results[batch] = (cell, spread, notes, detail)
        if args.verbose:
            print(f"  {name} B={batch}: " + "; ".join(
                f"{p} {cell[p]:.0f}/s ({detail[p][0]} rows x {detail[p][1]})" for p in cell), flush=True)
        else:
            print(".", end="", flush=True, file=sys.stderr)
    return results


def _fmt_rate(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def _fmt_ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}"


def print_table(all_results, markdown):
    head = ["shape", "batch", *PEERS, "cpp GFLOP/s", "cpp/torch", "cpp/hand"]
    rows = []
    for name, sizes, results in all_results:
        flops_per_sample = 6 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        for batch, (cell, _spread, _notes, _detail) in results.items():
            fit = cell.get("cpp fit")
            rows.append([name, str(batch), *(_fmt_rate(cell.get(p)) for p in PEERS),
                         "-" if fit is None else f"{fit * flops_per_sample / 1e9:.1f}",
                         _fmt_ratio(fit, cell.get("torch")), _fmt_ratio(fit, cell.get("hand NumPy"))])
    print("\nsamples/s (median), one training step = forward + softmax-CE + backward + SGD update, float32")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" if i < 1 else "---:" for i in range(len(head))) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        for r in rows:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    notes = []
    worst = (0.0, None)
    for name, _sizes, results in all_results:
        for batch, (_cell, spread, cell_notes, _detail) in results.items():
            for peer, text in cell_notes.items():
                notes.append(f"{name} B={batch} {peer}: {text}")
            for peer, s in spread.items():
                if s > worst[0]:
                    worst = (s, f"{name} B={batch} {peer}")
    for n in notes:
        print(f"note: {n}")
    if worst[1] is not None:
        print(f"note: largest spread (max−min)/median over the repeats: {worst[0]:.0%} ({worst[1]})")


def profile_loop(spec, args):
    """Run only the cpp fit loop of one configuration for --seconds (attach py-spy / perf to this)."""
    name, _, batch = spec.partition(":")
    sizes, batch = SHAPES[name], int(batch)
    x, y = _pool(sizes, batch)
    run = make_cpp_fit(sizes, batch, x, y)
    rows, epochs, _ = calibrate(run, batch, (x.shape[0] // batch) * batch)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        run(rows, epochs)
        done += rows * epochs
    el = time.perf_counter() - t0
    print(f"profile {name} {sizes} B={batch}: {done / el:.0f} samples/s over {el:.1f} s")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="S and M, batches 1,32,256, one repeat (< 2 minutes)")
    p.add_argument("--shapes", default=None, help="comma-separated subset of S,M,L (default all)")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8,32,256,1024)")
    p.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed runs per cell; the median is shown (default 5)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--verbose", action="store_true", help="print each cell as it is measured, with run sizes")
    p.add_argument("--peers", default=None,
                   help="comma-separated subset of the columns to measure (default all): " + ",".join(PEERS))
    p.add_argument("--profile", metavar="SHAPE:BATCH", help="only run the cpp fit loop of one configuration")
    p.add_argument("--seconds", type=float, default=20.0, help="duration of --profile (default 20)")
    args = p.parse_args(argv)

    if args.threads < 1:
        p.error("--threads must be >= 1")
    args.shapes = (args.shapes or ("S,M" if args.quick else "S,M,L")).upper().split(",")
    for s in args.shapes:
        if s not in SHAPES:
            p.error(f"unknown shape {s!r}; valid: {', '.join(SHAPES)}")
    try:
        args.batches = [int(b) for b in (args.batches or ("1,32,256" if args.quick else BATCHES)).split(",")]
    except ValueError:
        p.error("--batches takes comma-separated integers")
    if any(b < 1 for b in args.batches):
        p.error("batch sizes must be >= 1")
    args.repeat = args.repeat or (1 if args.quick else 5)
    if args.quick:  # stay under two minutes even on a busy machine: wait and retry less
        global MAX_RETRIES, MAX_WAIT_S, WAIT_BUDGET_S
        MAX_RETRIES, MAX_WAIT_S, WAIT_BUDGET_S = 1, 5.0, 30.0
    args.peers = [q.strip() for q in args.peers.split(",")] if args.peers else list(PEERS)
    for q in args.peers:
        if q not in PEERS:
            p.error(f"unknown peer {q!r}; valid: {', '.join(PEERS)}")

    pf.set_num_threads(args.threads)
    limiter, limiter_reason = None, None
    try:
        import threadpoolctl

        limiter = threadpoolctl.threadpool_limits(limits=args.threads, user_api="blas")
    except ImportError:
        limiter_reason = "threadpoolctl is not installed (`pip install threadpoolctl`)"
    if args.profile:
        profile_loop(args.profile, args)
        return
    torch, torch_reason = _import_torch()
    if torch is not None:
        torch.set_num_threads(args.threads)
        if limiter is not None:  # torch may have loaded another BLAS; limit NumPy's again to be sure
            limiter = threadpoolctl.threadpool_limits(limits=args.threads, user_api="blas")
    print_header(args, torch, torch_reason, limiter_reason)

    core = _core_file()
    core_mtime = _mtime(core)
    t_start = time.perf_counter()
    all_results = []
    for name in args.shapes:
        sizes = SHAPES[name]
        x, y = _pool(sizes, 256)
        sanity_check(name, sizes, x, y, torch)
        all_results.append((name, sizes, bench_shape(name, sizes, args, torch)))
    if not args.verbose:
        print(file=sys.stderr)
    print_table(all_results, args.markdown)
    if torch is None:
        print(f"note: torch column skipped: {torch_reason}")
    print(f"note: total benchmark time {time.perf_counter() - t_start:.0f} s")
    if MONITOR.available and STATS["foreign"]:
        f = STATS["foreign"]
        kept = f"; {STATS['kept_noisy']} kept anyway (retries exhausted)" if STATS["kept_noisy"] else ""
        print(f"note: other processes used {statistics.mean(f):.2f} CPUs on average during the kept timed "
              f"runs (max {max(f):.2f}); {STATS['redone']} of {STATS['runs']} runs were redone because they "
              f"used more than {MAX_FOREIGN}; waited {STATS['waited']:.0f} s for quiet{kept}")
    if _mtime(core) != core_mtime:
        print(f"WARNING: {core} changed during the run (the extension was rebuilt): numbers may mix two "
              "builds; rerun.")


if __name__ == "__main__":
    main()
