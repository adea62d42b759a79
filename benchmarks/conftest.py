"""Shared setup of the pytest-benchmark suites (``pytest benchmarks --benchmark-only``; see benchmarks/README.md).

* The peers (hand NumPy, torch, scikit-learn) and the machinery shared with ``pyfastnn bench`` come from the
  package: ``pyfastnn._peers`` and ``pyfastnn.benchmark``.
* The same thread count for every library (``--bench-threads N``, default 2): pyfastnn's compiled kernels, torch,
  and NumPy's BLAS through threadpoolctl.
* Smoke mode (``--bench-smoke`` or ``PYFASTNN_BENCH_SMOKE=1``): every case shrinks to tiny sizes, so the whole
  suite runs in seconds (CI: ``PYFASTNN_BENCH_SMOKE=1 pytest benchmarks --benchmark-disable -q``).
* ``--bench-full``: also the L shape at batches below 32 in test_bench_train.py.
* The ``record`` fixture fills ``benchmark.extra_info`` with the rates (samples/s, GFLOP/s, fraction of NumPy's
  sgemm rate measured once per session); ``timed`` wraps a function so the rate is known with
  ``--benchmark-disable`` too (then from the one call).
"""

import time

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import benchmark as bm


def pytest_addoption(parser):
    group = parser.getgroup("pyfastnn benchmarks")
    group.addoption("--bench-threads", type=int, default=2,
                    help="threads for every library (pyfastnn, torch, NumPy's BLAS); default 2")
    group.addoption("--bench-smoke", action="store_true", default=False,
                    help="tiny sizes, so the suite runs in seconds (also PYFASTNN_BENCH_SMOKE=1)")
    group.addoption("--bench-full", action="store_true", default=False,
                    help="also the slow cases (the L shape at batches < 32)")


def _smoke(config):
    return bool(config.getoption("--bench-smoke")) or bm.smoke_from_env()


def pytest_report_header(config):
    threads = config.getoption("--bench-threads")
    info = pf.cpu_info()
    lines = [(f"pyfastnn {pf.__version__}: cpp isa={info.get('isa')}; threads={threads} for every library; "
              f"smoke={_smoke(config)} full={config.getoption('--bench-full')}"),
             f"NumPy {np.__version__} BLAS: {bm.blas_info()}"]
    warning = bm.pinning_warning("pytest benchmarks ...")
    if warning:
        lines.append(f"WARNING: {warning}")
    return lines


class BenchConfig:
    def __init__(self, smoke, threads, full):
        self.smoke = smoke
        self.threads = threads
        self.full = full


@pytest.fixture(scope="session")
def bench_config(request):
    threads = request.config.getoption("--bench-threads")
    if threads < 1:
        raise pytest.UsageError(f"--bench-threads must be >= 1; got {threads}")
    return BenchConfig(_smoke(request.config), threads, request.config.getoption("--bench-full"))


@pytest.fixture(scope="session", autouse=True)
def _equal_threads(bench_config):
    """The same thread count for pyfastnn, torch and NumPy's BLAS, for the whole session (restored after)."""
    torch, _ = bm.import_torch()
    with bm.EqualThreads(bench_config.threads, torch):
        yield bench_config.threads


@pytest.fixture(scope="session")
def torch_peer():
    """The torch module, or skip with the reason."""
    torch, reason = bm.import_torch()
    if torch is None:
        pytest.skip(reason)
    return torch


@pytest.fixture(scope="session")
def numpy_sgemm_gflops(bench_config, _equal_threads):
    """NumPy's float32 matmul rate on 1024² (64² in smoke mode), GFLOP/s, measured as ``pyfastnn bench`` does
    (``pyfastnn.benchmark.gemm_rates``: the median of three quiet runs of ≥ 0.2 s)."""
    meter = bm.Meter(bm.Settings.for_mode("smoke" if bench_config.smoke else "quick"))
    n = bm.SMOKE_GEMM_N if bench_config.smoke else bm.GEMM_N
    return bm.gemm_rates(meter, n, cpp=False)["numpy sgemm"][0]


def timed(fn):
    """Wrap fn so the wrapper remembers the duration of its last call (the rate with --benchmark-disable)."""

    def run(*args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        run.last = time.perf_counter() - t0
        return result

    run.last = None
    return run


def seconds_per_call(benchmark, wrapper=None):
    """Median seconds of one call: from pytest-benchmark's stats, else the wrapper's single timed call."""
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        return stats.stats.median
    return getattr(wrapper, "last", None)


def _record(benchmark, wrapper=None, *, flops=None, samples=None, sgemm_gflops=None, **info):
    """Put the rates of one call into ``benchmark.extra_info``.

    flops / samples: per call. sgemm_gflops: NumPy's sgemm rate of the session, for ``frac_numpy_sgemm``.
    """
    benchmark.extra_info.update(info)
    t = seconds_per_call(benchmark, wrapper)
    benchmark.extra_info["timed_by"] = "pytest-benchmark median" if benchmark.stats is not None else "one call"
    if not t or t <= 0:
        return
    benchmark.extra_info["seconds_per_call"] = t
    if samples is not None:
        benchmark.extra_info["samples"] = samples
        benchmark.extra_info["samples_per_s"] = samples / t
    if flops is not None:
        gflops = flops / t / 1e9
        benchmark.extra_info["gflops"] = gflops
        if sgemm_gflops:
            benchmark.extra_info["numpy_sgemm_gflops"] = sgemm_gflops
            benchmark.extra_info["frac_numpy_sgemm"] = gflops / sgemm_gflops


@pytest.fixture
def record(benchmark, numpy_sgemm_gflops):
    """``record(wrapper, flops=..., samples=..., **info)``: the rates of the benchmark into its extra_info."""

    def rec(wrapper=None, *, flops=None, samples=None, **info):
        _record(benchmark, wrapper, flops=flops, samples=samples, sgemm_gflops=numpy_sgemm_gflops, **info)

    rec.timed = timed
    return rec
