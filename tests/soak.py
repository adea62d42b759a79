"""A soak run, on demand (not part of the test suite): long repetition of pyfastnn's everyday calls, checking that
the process does not grow.

    python tests/soak.py [--backend cpp|numba|numpy] [--quick]

Three phases on the bundled digits, each after a warm-up so that caches, pools and compiled kernels exist:
10,000 ``train_step``s on one network (Adam, batches of 32); 1,000 cycles of create / ``fit`` one epoch /
``predict`` / save / load / drop; 1,000 cycles of the same on sparse (CSR) input with its embedding-table
first layer. After each phase the resident memory must have grown by less than 5 % of what it was after the
warm-up, and the process must have as many threads and open file descriptors as then. Prints one line per
phase and exits 1 if any phase fails. ``--quick`` runs a tenth of each phase.
"""

import argparse
import gc
import os
import sys
import tempfile
import threading
import time

import numpy as np

import pyfastnn as pf

RSS_GROWTH_LIMIT = 0.05


def _rss_bytes():
    """Resident memory of this process (Linux /proc; elsewhere the peak from getrusage, an upper bound)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _os_threads():
    """Threads of the process as the OS counts them (pools started by compiled code included)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()


def _open_fds():
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path))
        except OSError:
            continue
    return -1


def _state():
    gc.collect()
    return _rss_bytes(), _os_threads(), _open_fds()


def _phase(name, step, warmup, count):
    """Run ``step(i)`` warmup times, take the state, run it count times more, compare; True if it held."""
    for i in range(warmup):
        step(i)
    rss0, threads0, fds0 = _state()
    start = time.perf_counter()
    for i in range(count):
        step(warmup + i)
    seconds = time.perf_counter() - start
    rss, threads, fds = _state()
    growth = (rss - rss0) / rss0
    ok = growth < RSS_GROWTH_LIMIT and threads == threads0 and fds == fds0
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {count:,} in {seconds:.1f} s; resident memory "
          f"{rss0 / 2**20:.1f} -> {rss / 2**20:.1f} MiB ({growth:+.2%}, limit {RSS_GROWTH_LIMIT:.0%}); "
          f"threads {threads0} -> {threads}; open files {fds0} -> {fds}", flush=True)
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default=None, help="cpp, numba or numpy (default: pyfastnn's default)")
    parser.add_argument("--quick", action="store_true", help="a tenth of each phase")
    args = parser.parse_args(argv)
    if args.backend:
        pf.set_backend(args.backend)
    scale = 10 if args.quick else 1
    x, y = pf.datasets.load_digits()
    print(f"# pyfastnn soak run: backend {pf.get_backend()}, pyfastnn {pf.__version__}, {pf.get_num_threads()} "
          f"threads{' (quick)' if args.quick else ''}", flush=True)
    results = []

    net = pf.MLP([64, 128, 10], seed=0)
    adam = pf.Adam(lr=1e-3)
    starts = np.arange(0, x.shape[0] - 32, 32)

    def train_step(i):
        s = starts[i % len(starts)]
        net.train_step(x[s:s + 32], y[s:s + 32], optimizer=adam)

    results.append(_phase("train_step", train_step, 500 // scale, 10_000 // scale))

    small_x, small_y = x[:256], y[:256]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "soak.npz")

        def cycle(i, data_x=small_x, n_in=64):
            fresh = pf.MLP([n_in, 32, 10], seed=i)
            fresh.fit(data_x, small_y, epochs=1, batch_size=32, seed=i, progress=False)
            fresh.predict(data_x[:16])
            fresh.save(path)
            pf.load(path).predict(data_x[:16])

        results.append(_phase("create / fit / predict / save / load", cycle, 50 // scale, 1_000 // scale))

        import scipy.sparse

        words = scipy.sparse.random(256, 20_000, density=0.002, format="csr", dtype=np.float32, random_state=0)
        results.append(_phase("the same on sparse input (20,000 columns)",
                              lambda i: cycle(i, words, 20_000), 20 // scale, 1_000 // scale))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
