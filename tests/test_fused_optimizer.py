"""Momentum, Nesterov and Adam fused into the weight-gradient GEMM (the cpp backend's dense layers).

The fused step applies each block of ∂C/∂W to W and its state as the GEMM produces it; the earlier path stores the
whole gradient and makes a second pass. Both are kept in the core (``_core._fused_optimizer_steps`` switches), so
here they train the same networks side by side: on x86 they must agree bit for bit (the same formulas, vectorised
without FMA contraction), elsewhere to rounding. The NumPy reference stays the oracle for both.

Shapes are chosen to reach every way the GEMM hands blocks over: layers that are not multiples of any register
tile (edge tiles), an output layer of 3 rows (the unpacked direct loop, which hands over C whole), batches of 1 and
odd sizes, and batches deeper than the K block (300 > kc = 256: the last of two passes over K).
"""

import platform

import numpy as np
import pytest

import pyfastnn as pf

from conftest import TOL, close

_core = pytest.importorskip("pyfastnn._core")
pytestmark = pytest.mark.skipif(not pf.backends()["cpp"]["available"], reason="the cpp backend is not built")

X86 = platform.machine().lower() in ("x86_64", "amd64")
OPTIMIZERS = {
    "momentum": lambda: pf.SGD(lr=0.005, momentum=0.9),
    "nesterov-wd": lambda: pf.SGD(lr=0.005, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: pf.Adam(lr=1e-3),
    "adam-wd": lambda: pf.Adam(lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=1e-2),
}


@pytest.fixture
def fused_default():
    """Restores the switch a test flips."""
    before = _core._fused_optimizer_steps()
    yield
    _core._fused_optimizer_steps(before)


def _train(sizes, dtype, make_opt, batch, fused, embedding=False, rows=301, epochs=2, backend="cpp"):
    _core._fused_optimizer_steps(fused)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((rows, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], rows)
    net = pf.MLP(sizes, activation="tanh", dtype=dtype, seed=3)
    if embedding:
        net._use_embedding_layout()  # the first layer stored as a table E = W¹ᵀ: the GEMM's C is E's layout
        assert net.embedding_layout
    start = [w.copy() for w in net.weights]
    opt = make_opt()
    with pf.use_backend(backend):
        hist = net.fit(x, y, optimizer=opt, batch_size=batch, epochs=epochs, seed=11, progress=False)
    for w, w0 in zip(net.weights, start):
        assert not np.array_equal(w, w0), "training did not move a layer"
    return net.weights + net.biases + opt.state_arrays(), hist["loss"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("batch", [1, 3, 17, 64, 300])
@pytest.mark.parametrize("sizes", [[37, 23, 3], [50, 70, 33, 4]], ids=["37-23-3", "50-70-33-4"])
def test_fused_matches_the_two_pass_step(isa, fused_default, dtype, opt, batch, sizes):
    """Weights, biases, optimizer state and losses after two shuffled epochs are those of the two-pass path."""
    fused, loss_fused = _train(sizes, dtype, OPTIMIZERS[opt], batch, fused=True)
    two_pass, loss_two_pass = _train(sizes, dtype, OPTIMIZERS[opt], batch, fused=False)
    assert len(fused) == len(two_pass)
    for got, want in zip(fused, two_pass):
        if X86:
            np.testing.assert_array_equal(got, want)
        else:  # aarch64 compilers may contract a·b + c differently in the two loops
            close(got, want, dtype, factor=10)
    np.testing.assert_allclose(loss_fused, loss_two_pass, rtol=0 if X86 else TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("opt", ["nesterov-wd", "adam-wd"])
@pytest.mark.parametrize("batch", [1, 17, 300])
def test_fused_on_the_embedding_layout(isa, fused_default, dtype, opt, batch):
    """A first layer stored as a table (dense input): the epilogue writes E = W¹ᵀ and its state in E's layout."""
    sizes = [41, 29, 5]
    fused, _ = _train(sizes, dtype, OPTIMIZERS[opt], batch, fused=True, embedding=True)
    two_pass, _ = _train(sizes, dtype, OPTIMIZERS[opt], batch, fused=False, embedding=True)
    rows, _ = _train(sizes, dtype, OPTIMIZERS[opt], batch, fused=True)
    for got, want, row_layout in zip(fused, two_pass, rows):
        if X86:
            np.testing.assert_array_equal(got, want)
        else:
            close(got, want, dtype, factor=10)
        close(got, row_layout, dtype, factor=100)  # the layouts sum the GEMM in different orders


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("batch", [1, 19, 128])
def test_fused_follows_the_reference(fused_default, dtype, opt, batch):
    """Against the NumPy reference (the oracle), on layers big enough for the packed, threaded GEMM."""
    sizes = [67, 130, 45, 10]
    got, loss_got = _train(sizes, dtype, OPTIMIZERS[opt], batch, fused=True, rows=257)
    want, loss_want = _train(sizes, dtype, OPTIMIZERS[opt], batch, fused=True, rows=257, backend="numpy")
    for a, b in zip(got, want):
        close(a, b, dtype, factor=100 if dtype == np.float64 else 300)
    np.testing.assert_allclose(loss_got, loss_want, rtol=TOL[dtype] * 300)


def test_switch_reports_and_restores(fused_default):
    assert _core._fused_optimizer_steps() is True  # the default
    assert _core._fused_optimizer_steps(False) is True
    assert _core._fused_optimizer_steps() is False
    assert _core._fused_optimizer_steps(True) is False
