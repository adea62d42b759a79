"""Time each GEMM of one training step alone, on the packed path, the unpacked (direct) path and the default choice.

Usage::

    python benchmarks/bench_step_gemms.py [BATCH] [SIZES]      # e.g. 32 64,128,10  or  8 784,512,256,10

Single-threaded, float32, microseconds per call (the Python call costs ~0.7 µs of each). It shows where the
driver's choice between packing and the direct loop is right or wrong for the shapes a network really runs:
forward Z = A·Wᵀ, the weight update Δᵀ·A (beta = 1, as the fused SGD update uses it) and Δ·W.
"""

import sys
import time

import numpy as np

import pyfastnn._core as core


def _per_call(a, b, out, ta, tb):
    for _ in range(200):
        core.gemm(a, b, out, ta, tb, 1.0, 1.0)
    calls = int(min(20000, max(200, 2e8 / (out.size * max(a.shape) + 1))))
    start = time.perf_counter()
    for _ in range(calls):
        core.gemm(a, b, out, ta, tb, 1.0, 1.0)
    return (time.perf_counter() - start) / calls


def main(argv):
    batch = int(argv[1]) if len(argv) > 1 else 32
    sizes = [int(s) for s in (argv[2] if len(argv) > 2 else "64,128,10").split(",")]
    core.set_num_threads(1)
    shapes = {}
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        shapes[f"fwd{l}"] = ((batch, n_in), (n_out, n_in), False, True)
        shapes[f"upd{l}"] = ((batch, n_out), (batch, n_in), True, False)
        if l > 1:
            shapes[f"dprev{l}"] = ((batch, n_out), (n_out, n_in), False, False)
    base = core._get_gemm_params()
    rng = np.random.default_rng(0)
    print(f"batch {batch}, layers {sizes}, 1 thread, float32, µs per call")
    try:
        for name, (sa, sb, ta, tb) in shapes.items():
            a = rng.random(sa, dtype=np.float32)
            b = rng.random(sb, dtype=np.float32)
            m = sa[1] if ta else sa[0]
            n = sb[0] if tb else sb[1]
            k = sa[0] if ta else sa[1]
            out = np.zeros((m, n), np.float32)
            core._set_gemm_params({**base, "direct_max_work": 0, "direct_max_m": 0})
            packed = _per_call(a, b, out, ta, tb)
            core._set_gemm_params({**base, "direct_max_work": 10**15})
            direct = _per_call(a, b, out, ta, tb)
            core._set_gemm_params(base)
            chosen = _per_call(a, b, out, ta, tb)
            print(f"{name:7s} m={m:5d} n={n:5d} k={k:5d}  packed {packed * 1e6:8.2f}  direct {direct * 1e6:8.2f}  "
                  f"default {chosen * 1e6:8.2f}")
    finally:
        core._set_gemm_params(base)


if __name__ == "__main__":
    main(sys.argv)
