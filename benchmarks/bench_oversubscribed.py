"""Training on a machine whose CPUs other processes keep busy: 1 vs 2 threads, pyfastnn against NumPy.

The compiled kernels split each GEMM between a team of threads that meet at barriers; when the OS does not run
one of them, the others wait for it. pyfastnn's pool notices workers that start late and runs regions on the
calling thread for a while (csrc/threads.cpp, "oversubscription guard"). This script measures what that buys:
ms per epoch of ``fit`` on the digits (64-64-10, batch 200, float32) with 0, 1 and 2 busy-looping processes
beside it, on 1 and 2 threads, and the same epoch written in NumPy (whose OpenBLAS has its own thread pool).

    python benchmarks/bench_oversubscribed.py [--epochs 20] [--busy 0,1,2]

It prints medians of 5 runs and the ratio 2 threads / 1 thread (> 1: the second thread hurts).
"""

import argparse
import multiprocessing as mp
import statistics
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--busy", default="0,1,2", help="numbers of busy-looping processes to run beside")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
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


if __name__ == "__main__":
    main()
