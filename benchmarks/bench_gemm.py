"""GEMM throughput of pyfastnn._core.gemm against NumPy's matmul, side by side in one process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_gemm.py [--threads 2] [--isa avx512]
    python benchmarks/bench_gemm.py --crossover     # where the unpacked small-problem path stops paying off

Prints median GFLOP/s of both and their ratio (ours / numpy) for square float32 and float64 problems and for the
three GEMMs of one training step of the 784-512-256-10 MLP at batch 256 (first layer shapes).
"""

import argparse
import os
import sys
import time

import numpy as np

try:
    from pyfastnn import _core
except ImportError as exc:  # pragma: no cover - the benchmark is pointless without the extension
    sys.exit(f"pyfastnn._core is not importable ({exc}); build it with `pip install -e .`")


def _blas_info():
    try:
        import threadpoolctl

        infos = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            i = infos[0]
            return (f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
                    f"threads={i.get('num_threads')}")
    except ImportError:
        pass
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name')} {blas.get('version')} (install threadpoolctl to see the kernel)"
    except Exception:  # older numpy without mode="dicts"
        return "unknown (install threadpoolctl)"


def _set_numpy_threads(n):
    try:
        import threadpoolctl

        return threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        return None


def _median_time(fn, min_time=0.25, min_reps=5, max_reps=2000, idle=0.0):
    # An idle gap first, so the other library's thread pool (OpenBLAS's workers spin for a while after a call)
    # has gone to sleep and does not take the second core from this block.
    if idle:
        time.sleep(idle)
    fn()  # warm up: page in buffers, spin up thread pools
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _operands(m, n, k, trans_a, trans_b, dtype, rng):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b, np.empty((m, n), dtype)


def bench_case(m, n, k, trans_a, trans_b, dtype, rng, rounds=3):
    a, b, out = _operands(m, n, k, trans_a, trans_b, dtype, rng)
    out_np = np.empty_like(out)
    at, bt = (a.T if trans_a else a), (b.T if trans_b else b)

    def ours():
        _core.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b)

    def theirs():
        np.matmul(at, bt, out=out_np)

    # Alternate the two a few times so drift on a shared machine hits both alike.
    t_ours, t_np = [], []
    for _ in range(rounds):
        t_ours.append(_median_time(ours, idle=0.2))
        t_np.append(_median_time(theirs, idle=0.2))
    ref = at.astype(np.float64) @ bt.astype(np.float64)
    err = float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-30))
    flops = 2.0 * m * n * k
    return flops / np.median(t_ours) / 1e9, flops / np.median(t_np) / 1e9, err


def main_table(args):
    rng = np.random.default_rng(0)
    cases = []
    for n in (256, 512, 1024, 2048):
        cases.append((f"square {n}", n, n, n, False, False, np.float32))
    # One step of the 784-512-256-10 MLP at batch 256, first layer (W: 512 x 784, A: 256 x 784).
    cases.append(("MLP fwd  Z=A·Wᵀ (256x784)(512x784)ᵀ", 256, 512, 784, False, True, np.float32))
    cases.append(("MLP bwd ΔW=Δᵀ·A (256x512)ᵀ(256x784)", 512, 784, 256, True, False, np.float32))
    cases.append(("MLP bwd Δprev=Δ·W (256x512)(512x784)", 256, 784, 512, False, False, np.float32))
    for n in (256, 512, 1024, 2048):
        cases.append((f"square {n}", n, n, n, False, False, np.float64))

    print(f"{'case':40s} {'dtype':8s} {'ours GF/s':>10s} {'numpy GF/s':>11s} {'ratio':>6s} {'rel.err':>9s}")
    for name, m, n, k, ta, tb, dt in cases:
        g_ours, g_np, err = bench_case(m, n, k, ta, tb, dt, rng)
        print(f"{name:40s} {np.dtype(dt).name:8s} {g_ours:10.1f} {g_np:11.1f} {g_ours / g_np:6.2f} {err:9.1e}",
              flush=True)


def crossover(args):
    """Time the direct (unpacked) path against the packed path on the same problems, one thread."""
    rng = np.random.default_rng(0)
    saved = _core._get_gemm_params()
    print(f"{'m':>5s} {'n':>5s} {'k':>5s} {'tA':>3s} {'tB':>3s} {'direct GF/s':>12s} {'packed GF/s':>12s}")
    shapes = [(s, s, s) for s in (8, 16, 24, 32, 40, 48, 64, 96, 128)]
    shapes += [(m, 512, 784) for m in (1, 2, 4, 8, 16)] + [(m, 784, 512) for m in (1, 2, 4, 8, 16)]
    try:
        for m, n, k in shapes:
            for ta, tb in ((False, False), (False, True), (True, False)):
                a, b, out = _operands(m, n, k, ta, tb, np.float32, rng)
                res = []
                for direct in (True, False):
                    big = 1 << 62
                    _core._set_gemm_params({"direct_max_work": big if direct else 0,
                                            "direct_max_m": big if direct else 0, "parallel_min_work": big})
                    t = _median_time(lambda: _core.gemm(a, b, out, trans_a=ta, trans_b=tb), min_time=0.05)
                    res.append(2.0 * m * n * k / t / 1e9)
                print(f"{m:5d} {n:5d} {k:5d} {int(ta):3d} {int(tb):3d} {res[0]:12.1f} {res[1]:12.1f}")
    finally:
        _core._set_gemm_params(saved)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="threads for both libraries (default 2)")
    p.add_argument("--isa", default=None, help="force a kernel level (reference, avx2, avx512)")
    p.add_argument("--crossover", action="store_true", help="measure the direct/packed crossover instead")
    args = p.parse_args(argv)

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"WARNING: {var}={os.environ[var]} is set: it pins NumPy's OpenBLAS to a slower kernel; run with "
                  f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_gemm.py` for the ratio.")
    if args.isa:
        _core.set_isa(args.isa)
    _core.set_num_threads(args.threads)
    limiter = _set_numpy_threads(args.threads)
    info = _core.cpu_info()
    print(f"pyfastnn: isa={info['isa']} kernel f32={info['float32']['kernel']} f64={info['float64']['kernel']} "
          f"threads={_core.get_num_threads()}")
    print(f"numpy {np.__version__}: BLAS {_blas_info()}")
    try:
        if args.crossover:
            crossover(args)
        else:
            main_table(args)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


if __name__ == "__main__":
    main()
