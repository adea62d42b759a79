"""Training throughput: one epoch of SGD per pyfastnn backend and per peer, on the standard shapes.

Cases: implementation × shape (S, M, L of docs/benchmarks.md) × batch (1, 8, 32, 256, 1024); L only for batches
≥ 32 unless ``--bench-full``. One group per (shape, batch); a benchmarked call is one epoch over a fixed set
of i.i.d. random rows (already in random order), SGD with lr 0.01, ReLU hidden layers, softmax +
cross-entropy, float32:

    cpp, numba, numpy  ``net.fit(X, y, batch_size=B, epochs=1, shuffle=False, progress=False,
                       optimizer=pf.SGD(lr=0.01))`` inside ``pf.use_backend(name)``: how users train (the time
                       includes fit's input checks and its per-epoch weight snapshot)
    hand NumPy         ``pyfastnn._peers.NumpyMLP.train_epoch``: the formulas in NumPy, preallocated buffers
    torch              ``pyfastnn._peers.TorchMLP.train_epoch``: nn.Sequential + CrossEntropyLoss + optim.SGD
    sklearn            ``pyfastnn._peers.SklearnMLP.train_epoch``: ``MLPClassifier(solver="sgd", momentum=0,
                       alpha=0, batch_size=B, shuffle=False).partial_fit`` over the epoch's rows (one SGD step
                       per B rows; skipped unless scikit-learn is installed)

Every implementation starts from the weights of ``pf.MLP(sizes, seed=0)`` (``pyfastnn.benchmark.make_peer``,
which ``pyfastnn bench`` uses too).

Rows per epoch: max(16·B, 256), capped to ~8 GFLOP of work (6·rows·Σ N_l N_{l−1}) so one round stays short,
and at least one batch. Every call after a first, untimed one is timed; the number of rounds is chosen from
that first call (≥ 3, ≤ 20, ~1.5 s in all). extra_info: samples_per_s, gflops (6·B·Σ N_l N_{l−1} per step)
and frac_numpy_sgemm (gflops over NumPy's 1024² sgemm rate of the session).

``test_digits_epoch``: one epoch of fit (batch 32) on the bundled 8×8 digits, S = [64, 128, 10], per backend
and peer.
"""

import time

import numpy as np
import pytest

from pyfastnn import benchmark as bm
from pyfastnn.datasets import load_digits

LR = bm.LR
SHAPES = bm.SHAPES
SMOKE_SHAPES = bm.SMOKE_SHAPES
BATCHES = bm.BATCHES
IMPLS = ("cpp", "numba", "numpy", "hand NumPy", "torch", "sklearn")
BUDGET_FLOPS = 8e9     # per round, roughly: ≤ ~0.1 s for cpp on 2 cores, ≤ ~1 s for the slowest peers
TARGET_S = 1.5         # all rounds of one case
MIN_ROUNDS, MAX_ROUNDS = 3, 20


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ != "test_train_epoch":
        return
    full = metafunc.config.getoption("--bench-full")
    cases = [(s, b) for s in SHAPES for b in BATCHES if full or s != "L" or b >= 32]
    metafunc.parametrize("shape,batch", cases, ids=[f"{s}-B{b}" for s, b in cases])
    metafunc.parametrize("impl", IMPLS)


flops_per_sample = bm.flops_per_sample


def epoch_rows(sizes, batch, smoke):
    if smoke:
        return 2 * batch
    rows = min(max(16 * batch, 256), int(BUDGET_FLOPS // flops_per_sample(sizes)))
    return max(batch, rows - rows % batch)


_pools = {}


def _pool(sizes, rows):
    """i.i.d. standard-normal rows and uniform labels, generated once per (shape, rows)."""
    key = (tuple(sizes), rows)
    if key not in _pools:
        rng = np.random.default_rng(1)
        x = rng.standard_normal((rows, sizes[0]), dtype=np.float32)
        y = rng.integers(0, sizes[-1], rows).astype(np.int64)
        _pools[key] = (x, y)
    return _pools[key]


IMPL_PEER = {"cpp": "cpp fit", "numba": "numba-be", "numpy": "numpy-be", "hand NumPy": "hand NumPy",
             "torch": "torch", "sklearn": "sklearn"}


def make_epoch(impl, sizes, batch, x, y, torch=None):
    """A function that trains one epoch over (x, y) with implementation impl, from pf.MLP(sizes, seed=0)."""
    if impl not in IMPL_PEER:
        raise ValueError(f"unknown implementation {impl!r}")
    run = bm.make_peer(IMPL_PEER[impl], sizes, batch, x, y, torch)
    rows = x.shape[0]
    return lambda: run(rows, 1)


def _need_peer(impl):
    """The torch module for impl == "torch"; skip with the reason when impl's library is not installed."""
    if impl == "torch":
        return pytest.importorskip("torch", reason="torch is not installed (`pip install torch==2.13.0`)")
    if impl == "sklearn":
        pytest.importorskip("sklearn", reason="scikit-learn is not installed (not a pyfastnn dependency)")
    return None


def bench_epoch(benchmark, record, run, rows, sizes, impl):
    """Time run (one epoch over rows) with pedantic rounds sized from a first, untimed call."""
    timed = record.timed(run)
    if benchmark.disabled:
        benchmark(timed)
    else:
        t0 = time.perf_counter()
        run()  # warm-up: numba compiles, torch and BLAS start their threads
        first = time.perf_counter() - t0
        rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, TARGET_S // max(first, 1e-6))))
        benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=1)
    record(timed, flops=flops_per_sample(sizes) * rows, samples=rows, impl=impl, sizes=sizes)


def test_train_epoch(benchmark, record, bench_config, shape, batch, impl):
    torch = _need_peer(impl)
    sizes = (SMOKE_SHAPES if bench_config.smoke else SHAPES)[shape]
    rows = epoch_rows(sizes, batch, bench_config.smoke)
    x, y = _pool(sizes, rows)
    benchmark.group = f"train {shape}={sizes} B={batch} ({rows} rows/epoch)"
    bench_epoch(benchmark, record, make_epoch(impl, sizes, batch, x, y, torch), rows, sizes, impl)
    benchmark.extra_info["batch"] = batch


@pytest.mark.parametrize("impl", IMPLS)
def test_digits_epoch(benchmark, record, bench_config, impl):
    torch = _need_peer(impl)
    x, y = load_digits()
    if bench_config.smoke:
        x, y = x[:128], y[:128]
    x, y = np.ascontiguousarray(x, np.float32), np.asarray(y, np.int64)
    sizes, batch = SHAPES["S"], 32
    benchmark.group = f"train digits epoch S={sizes} B={batch} ({len(y)} rows)"
    bench_epoch(benchmark, record, make_epoch(impl, sizes, batch, x, y, torch), len(y), sizes, impl)
    benchmark.extra_info["batch"] = batch
