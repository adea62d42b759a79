"""Activation kernels per backend: relu, sigmoid, tanh, softmax forward and relu backward.

Each kernel runs on a 256×512 float32 array (16×32 in smoke mode) through the kernel contract of
``pyfastnn/_ref.py`` (``pyfastnn._backend.kernels(name)``), into a preallocated output:

    forward   activation_forward(name, z, out)                     out = σ(z)
    backward  activation_backward("relu", a, z, delta, False)      delta ⊙= σ'(z), in place

One group per kernel, one row per backend (cpp, numba, numpy). extra_info: samples_per_s (rows/s) and
elements_per_s.
"""

import numpy as np
import pytest

from pyfastnn import _backend

ROWS, COLS = 256, 512
SMOKE_ROWS, SMOKE_COLS = 16, 32
FORWARD = ("relu", "sigmoid", "tanh", "softmax")


def _arrays(bench_config):
    rows, cols = (SMOKE_ROWS, SMOKE_COLS) if bench_config.smoke else (ROWS, COLS)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((rows, cols), dtype=np.float32)
    return z, np.empty_like(z)


@pytest.mark.benchmark(max_time=0.3, min_rounds=5)
@pytest.mark.parametrize("backend", _backend.BACKENDS)
@pytest.mark.parametrize("name", FORWARD)
def test_activation_forward(benchmark, record, bench_config, name, backend):
    k = _backend.kernels(backend)
    z, out = _arrays(bench_config)
    benchmark.group = f"kernel {name} forward {z.shape[0]}x{z.shape[1]}"
    run = record.timed(lambda: k.activation_forward(name, z, out))
    benchmark(run)
    expected = np.empty_like(z)
    _backend.kernels("numpy").activation_forward(name, z, expected)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    record(run, samples=z.shape[0], backend=backend)
    _elements(benchmark, z)


@pytest.mark.benchmark(max_time=0.3, min_rounds=5)
@pytest.mark.parametrize("backend", _backend.BACKENDS)
def test_relu_backward(benchmark, record, bench_config, backend):
    k = _backend.kernels(backend)
    z, a = _arrays(bench_config)
    k.activation_forward("relu", z, a)
    delta = np.ones_like(z)  # stays 0/1 under repeated in-place masking: no denormals, the same work each call
    benchmark.group = f"kernel relu backward {z.shape[0]}x{z.shape[1]}"
    run = record.timed(lambda: k.activation_backward("relu", a, z, delta, False))
    benchmark(run)
    np.testing.assert_array_equal(delta, (z > 0).astype(np.float32))
    record(run, samples=z.shape[0], backend=backend)
    _elements(benchmark, z)


def _elements(benchmark, z):
    rate = benchmark.extra_info.get("samples_per_s")
    if rate is not None:
        benchmark.extra_info["elements_per_s"] = rate * z.shape[1]
