"""Training on a machine whose CPUs other processes keep busy: 1 vs 2 threads, pyfastnn against NumPy.

The compiled kernels split each GEMM between a team of threads that meet at barriers; when the OS does not run
one of them, the others wait for it. pyfastnn's pool notices workers that start late and runs regions on the
calling thread for a while (csrc/threads.cpp, "oversubscription guard"). This script measures what that buys:
ms per epoch of ``fit`` on the digits (64-64-10, batch 200, float32) with 0, 1 and 2 busy-looping processes
beside it, on 1 and 2 threads, and the same epoch written in NumPy (whose OpenBLAS has its own thread pool).

    python benchmarks/bench_oversubscribed.py [--epochs 20] [--busy 0,1,2]

It prints medians of 5 runs and the ratio 2 threads / 1 thread (> 1: the second thread hurts).

A second table (``--alternate``, on by default) measures the other kind of load, one inside the process: a loop
that calls NumPy and pyfastnn in turn (a hand-written training loop, data preparation between calls), where
OpenBLAS's worker threads keep spinning for tens of ms after each NumPy call. It times pf.gemm and NumPy's
matmul of the same n x n float32 matrices, each after an idle gap and each inside the alternating loop, and
runs the loop again in a child process with ``OPENBLAS_THREAD_TIMEOUT=4`` (OpenBLAS's workers then sleep almost
at once after a call; it must be set before NumPy is imported).
"""

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import pyfastnn as pf
from pyfastnn import _peers

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # NumPy's BLAS threads then stay as they are; the header says so
    threadpool_limits = None


def _spin(stop):
    x = 0
    while not stop.is_set():
        x += 1


def _epoch_pyfastnn(x, y, epochs):
    net = pf.MLP([64, 64, 10], seed=0)
    t0 = time.perf_counter()
    net.fit(x, y, optimizer=pf.SGD(lr=0.01), batch_size=200, epochs=epochs, shuffle=False, progress=False)
    return (time.perf_counter() - t0) / epochs


def _epoch_numpy(x, y, epochs):
    start = pf.MLP([64, 64, 10], seed=0)
    net = _peers.NumpyMLP([w.copy() for w in start.weights], [b.copy() for b in start.biases], 200)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for lo in range(0, len(x), 200):
            _peers.train_step(net, x[lo : lo + 200], y[lo : lo + 200], 0.01)
    return (time.perf_counter() - t0) / epochs


def _alternating(n, reps, repeat):
    """Seconds per call (medians over ``repeat`` runs of ``reps`` calls) of pf.gemm and a @ b, each after an
    idle gap ("idle") and inside a loop that calls them in turn ("alternating")."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    for _ in range(3):
        pf.gemm(a, b)
        a @ b

    def timed(fn):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps

    runs = {"pf idle": [], "np idle": [], "pf alternating": [], "np alternating": []}
    for _ in range(repeat):
        time.sleep(0.25)  # every pool asleep
        runs["pf idle"].append(timed(lambda: pf.gemm(a, b)))
        time.sleep(0.25)
        runs["np idle"].append(timed(lambda: a @ b))
        time.sleep(0.25)
        t_pf = t_np = 0.0
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            t1 = time.perf_counter()
            pf.gemm(a, b)
            t2 = time.perf_counter()
            t_np += t1 - t0
            t_pf += t2 - t1
        runs["pf alternating"].append(t_pf / reps)
        runs["np alternating"].append(t_np / reps)
    return {k: statistics.median(v) for k, v in runs.items()}


def _alternate_table(sizes, repeat, label):
    from pyfastnn import _core

    before = _core._thread_stats()
    for n in sizes:
        t = _alternating(n, max(5, int(2e9 / (2 * n**3))), repeat)
        gf = {k: 2 * n**3 / v / 1e9 for k, v in t.items()}
        print(f"{label:>22} {n:>5} {gf['pf idle']:8.0f} {gf['np idle']:8.0f} {gf['pf idle'] / gf['np idle']:6.2f} "
              f"{gf['pf alternating']:8.0f} {gf['np alternating']:8.0f} "
              f"{gf['pf alternating'] / gf['np alternating']:6.2f}")
    after = _core._thread_stats()
    return {k: after[k] - before[k] for k in ("stalled_regions", "serial_regions", "recoveries") if k in after}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--busy", default="0,1,2", help="numbers of busy-looping processes to run beside")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--no-alternate", dest="alternate", action="store_false",
                   help="skip the table of NumPy and pyfastnn called in turn")
    p.add_argument("--alternate-sizes", default="512,1024", help="GEMM sizes n of that table")
    p.add_argument("--alternate-only", metavar="LABEL", help=argparse.SUPPRESS)  # the child of that table
    args = p.parse_args(argv)
    sizes = [int(n) for n in args.alternate_sizes.split(",")]
    if args.alternate_only:
        print(json.dumps(_alternate_table(sizes, args.repeat, args.alternate_only)))
        return
    x, y = pf.datasets.load_digits()
    x = np.ascontiguousarray(x[:1600], dtype=np.float32)
    y = y[:1600]
    from pyfastnn import _core

    print(f"pyfastnn {pf.__version__} ({pf.get_backend()}), {mp.cpu_count()} CPUs; ms per epoch, median of "
          f"{args.repeat}; NumPy BLAS threads {'limited' if threadpool_limits else 'NOT limited (no threadpoolctl)'}")
    print(f"{'busy':>4} {'pf 1T':>8} {'pf 2T':>8} {'2T/1T':>6} {'np 1T':>8} {'np 2T':>8} {'2T/1T':>6}")
    for busy in [int(b) for b in args.busy.split(",")]:
        stop = mp.Event()
        procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
        for proc in procs:
            proc.start()
        time.sleep(0.3)
        row = {}
        try:
            for name, fn in (("pf", _epoch_pyfastnn), ("np", _epoch_numpy)):
                for threads in (1, 2):
                    pf.set_num_threads(threads)
                    ctx = threadpool_limits(threads) if threadpool_limits else None
                    try:
                        fn(x, y, 2)  # warm-up
                        row[name, threads] = statistics.median(fn(x, y, args.epochs) for _ in range(args.repeat))
                    finally:
                        if ctx is not None:
                            ctx.unregister()
        finally:
            stop.set()
            for proc in procs:
                proc.join()
        print(f"{busy:>4} {1e3 * row['pf', 1]:8.2f} {1e3 * row['pf', 2]:8.2f} {row['pf', 2] / row['pf', 1]:6.2f} "
              f"{1e3 * row['np', 1]:8.2f} {1e3 * row['np', 2]:8.2f} {row['np', 2] / row['np', 1]:6.2f}")
    print(f"guard: {_core._thread_stats()}")
    if not args.alternate:
        return
    print(f"\nNumPy and pyfastnn called in turn: GFLOP/s of n x n float32 GEMMs, medians of {args.repeat}; "
          f"{pf.get_num_threads()} pyfastnn threads, NumPy's BLAS threads as they are")
    print(f"{'OPENBLAS_THREAD_TIMEOUT':>22} {'n':>5} {'pf idle':>8} {'np idle':>8} {'pf/np':>6} {'pf alt':>8} "
          f"{'np alt':>8} {'pf/np':>6}")
    sys.stdout.flush()
    guard = _alternate_table(sizes, args.repeat, os.environ.get("OPENBLAS_THREAD_TIMEOUT", "unset"))
    sys.stdout.flush()
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--repeat", str(args.repeat), "--alternate-sizes",
         args.alternate_sizes, "--alternate-only", "4"],
        env={**os.environ, "OPENBLAS_THREAD_TIMEOUT": "4"}, capture_output=True, text=True, check=True)
    lines = child.stdout.rstrip().splitlines()
    print("\n".join(lines[:-1]))
    print(f"guard in the loops (this process / the child): {guard} / {json.loads(lines[-1])}")


if __name__ == "__main__":
    main()
