"""GEMM: the matrix products of one MLP training step, per pyfastnn backend, against NumPy's matmul.

The network is M = [784, 512, 256, 10] (docs/benchmarks.md) at batch B = 256; for each layer l (W^l of shape
(N_l, N_{l-1})) the step does

    fwd    Z = A Wᵀ          (B×N_{l-1}) · (N_l×N_{l-1})ᵀ  -> B×N_l       pf.gemm(a, w, out, trans_b=True)
    dW     ∂W = Δᵀ A         (B×N_l)ᵀ · (B×N_{l-1})        -> N_l×N_{l-1}  pf.gemm(d, a, out, trans_a=True)
    dprev  Δ^{l-1} = Δ W     (B×N_l) · (N_l×N_{l-1})       -> B×N_{l-1}    pf.gemm(d, w, out)   (l > 1)

One group per product (``--benchmark-group-by=group``), one row per backend (``cpp``, ``numba``, ``numpy`` via
``pf.use_backend`` + ``pf.gemm``) plus the peer ``numpy matmul`` (``np.matmul`` with ``out=``). extra_info
holds GFLOP/s (2·m·n·k per call) and its fraction of NumPy's 1024² sgemm rate.
"""

import numpy as np
import pytest

import pyfastnn as pf

SIZES = [784, 512, 256, 10]
BATCH = 256
SMOKE_SIZES = [64, 32, 16, 10]
SMOKE_BATCH = 8
IMPLS = ("cpp", "numba", "numpy", "numpy matmul")


def _cases():
    cases = []
    for l in range(1, len(SIZES)):
        cases.append((l, "fwd"))
        cases.append((l, "dW"))
        if l > 1:
            cases.append((l, "dprev"))
    return cases


def _operands(kind, l, sizes, batch, rng):
    """(a, b, out, trans_a, trans_b) of one product, all float32 C-contiguous."""
    n_in, n_out = sizes[l - 1], sizes[l]
    w = rng.standard_normal((n_out, n_in), dtype=np.float32)
    a = rng.standard_normal((batch, n_in), dtype=np.float32)
    d = rng.standard_normal((batch, n_out), dtype=np.float32)
    if kind == "fwd":
        return a, w, np.empty((batch, n_out), np.float32), False, True
    if kind == "dW":
        return d, a, np.empty((n_out, n_in), np.float32), True, False
    return d, w, np.empty((batch, n_in), np.float32), False, False


def _label(kind, l, sizes, batch):
    n_in, n_out = sizes[l - 1], sizes[l]
    text = {"fwd": f"A.W^T ({batch}x{n_in}).({n_out}x{n_in})^T",
            "dW": f"D^T.A ({batch}x{n_out})^T.({batch}x{n_in})",
            "dprev": f"D.W ({batch}x{n_out}).({n_out}x{n_in})"}[kind]
    return f"gemm M/B{batch} L{l} {kind}: {text}"


@pytest.mark.benchmark(max_time=0.3, min_rounds=5)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("l,kind", _cases(), ids=[f"L{l}-{k}" for l, k in _cases()])
def test_gemm(benchmark, record, bench_config, l, kind, impl):
    sizes, batch = (SMOKE_SIZES, SMOKE_BATCH) if bench_config.smoke else (SIZES, BATCH)
    benchmark.group = _label(kind, l, sizes, batch)
    a, b, out, ta, tb = _operands(kind, l, sizes, batch, np.random.default_rng(l))
    m, k = (a.shape[1], a.shape[0]) if ta else a.shape
    n = b.shape[0] if tb else b.shape[1]
    expected = (a.T if ta else a) @ (b.T if tb else b)

    if impl == "numpy matmul":
        opa, opb = (a.T if ta else a), (b.T if tb else b)
        run = record.timed(lambda: np.matmul(opa, opb, out=out))
        benchmark(run)
    else:
        with pf.use_backend(impl):
            run = record.timed(lambda: pf.gemm(a, b, out, trans_a=ta, trans_b=tb))
            benchmark(run)
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3 * np.sqrt(k))
    record(run, flops=2.0 * m * n * k, impl=impl, m=m, n=n, k=k)
