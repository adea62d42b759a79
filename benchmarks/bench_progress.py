"""What progress within an epoch costs: train_epoch with ``progress=None`` ("off") and with a callable that
does nothing ("on", called every 0.2 s), side by side in one process, on every available backend, for
per-sample SGD (batch 1, where a per-batch cost would show most) and mini-batches of 32.

With ``--baseline DIR``, the compiled core built from the commit before progress existed also runs ("before",
cpp only): DIR holds that ``_core*.so`` (e.g. ``git archive <commit> | tar -x -C DIR`` and
``python setup.py build_ext --inplace`` there, then pass DIR/pyfastnn). It takes the same arguments but
``progress``.

The variants alternate (each first in turn), ``--repeat`` rounds of one epoch each; the median per variant and
the ratios to "off" are printed.

    python benchmarks/bench_progress.py [--repeat 7] [--baseline /tmp/pf_base/pyfastnn]
"""

import argparse
import glob
import importlib.util
import os
import statistics
import time

import numpy as np

import pyfastnn as pf
from pyfastnn import _backend

SIZES = [64, 256, 256, 10]
# Rows per backend and batch: an epoch of 1-2 s on an idle 2-core machine (several progress reports each).
ROWS = {("cpp", 1): 64_000, ("cpp", 32): 240_000, ("numba", 1): 24_000, ("numba", 32): 32_000,
        ("numpy", 1): 4_000, ("numpy", 32): 24_000}


def _load_baseline(directory):
    paths = glob.glob(os.path.join(directory, "_core*.so")) + glob.glob(os.path.join(directory, "_core*.pyd"))
    if not paths:
        raise SystemExit(f"--baseline: no _core shared library in {directory}")
    # Under another package name, so that it loads next to this build's core (pybind11 modules of functions).
    spec = importlib.util.spec_from_file_location("_baseline_pkg._core", paths[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _setup(n, batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, SIZES[0])).astype(np.float32)
    y = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], n)]
    net = pf.MLP(SIZES, seed=seed)
    bufs = {
        "outs": [np.empty((batch, k), np.float32) for k in SIZES[1:]],
        "zs": [None] * (len(SIZES) - 2) + [np.empty((batch, SIZES[-1]), np.float32)],
        "deltas": [np.empty((batch, k), np.float32) for k in SIZES[1:]],
        "dweights": [np.empty_like(w) for w in net.weights],
        "dbiases": [np.empty_like(b) for b in net.biases],
        "xbuf": np.empty((batch, SIZES[0]), np.float32),
        "ybuf": np.empty((batch, SIZES[-1]), np.float32),
    }
    return x, y, net, bufs, rng


def _epoch(fn, x, y, net, bufs, order, batch, **progress):
    spec = pf.SGD(0.01).native_spec(net.weights + net.biases)
    t0 = time.perf_counter()
    fn(net.weights, net.biases, net.activations, "cross_entropy", x, y, order, batch, bufs["outs"],
       bufs["zs"], bufs["deltas"], bufs["dweights"], bufs["dbiases"], bufs["xbuf"], bufs["ybuf"], False, spec,
       **progress)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--baseline", metavar="DIR", default=None)
    args = ap.parse_args()
    baseline = _load_baseline(args.baseline) if args.baseline else None
    calls = [0]

    def nothing(rows):
        calls[0] += 1

    print(f"pyfastnn {pf.__version__}, {pf.get_num_threads()} threads, network {SIZES}, SGD, float32, "
          f"one epoch per measurement, medians of {args.repeat}")
    print(f"{'backend':<8}{'batch':>6}{'rows':>8}{'off s':>9}{'on s':>9}{'on/off':>8}{'before s':>10}"
          f"{'off/before':>11}{'mean calls':>12}")
    for backend in ("cpp", "numba", "numpy"):
        if not pf.backends()[backend]["available"]:
            continue
        kern = _backend.kernels(backend)
        if backend == "numba":
            kern.compile_all()
        for batch in (1, 32):
            n = ROWS[(backend, batch)]
            x, y, net, bufs, rng = _setup(n, batch)
            variants = {"off": (kern.train_epoch, {}), "on": (kern.train_epoch, {"progress": nothing})}
            if baseline is not None and backend == "cpp":
                variants["before"] = (baseline.train_epoch, {})
            times = {name: [] for name in variants}
            calls[0] = 0
            _epoch(kern.train_epoch, x, y, net, bufs, rng.permutation(n), batch)  # warm-up
            names = list(variants)
            for r in range(args.repeat):
                order = rng.permutation(n)
                # Each variant first in turn: a fixed order would charge one of them what the previous leaves
                # behind (the other core's spinning pool threads, caches).
                for name in names[r % len(names):] + names[:r % len(names)]:
                    fn, kw = variants[name]
                    times[name].append(_epoch(fn, x, y, net, bufs, order, batch, **kw))
            med = {name: statistics.median(t) for name, t in times.items()}
            before = (f"{med['before']:>10.3f}{med['off'] / med['before']:>11.3f}" if "before" in med
                      else f"{'-':>10}{'-':>11}")
            ratio = med["on"] / med["off"]
            print(f"{backend:<8}{batch:>6}{n:>8}{med['off']:>9.3f}{med['on']:>9.3f}{ratio:>8.3f}"
                  f"{before}{calls[0] / args.repeat:>12.1f}")


if __name__ == "__main__":
    main()
