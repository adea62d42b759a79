"""What is particular to the Numba backend: warm-up, the on-disk cache, the import without numba, read-only inputs.

Its agreement with the reference, kernel by kernel and over training, is in test_kernels.py.
"""

import os

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _ref

pytest.importorskip("numba")
if not pf.backends()["numba"]["available"]:
    pytest.skip(f"numba backend unavailable: {pf.backends()['numba']['reason']}", allow_module_level=True)

from pyfastnn import _numba

_CLEAR = ("PYFASTNN_", "NUMBA_")  # the children choose their own backend and Numba cache


def _dispatchers():
    return {name: obj for name, obj in vars(_numba).items() if hasattr(obj, "signatures") and hasattr(obj, "stats")}




# ---- compile_all ----------------------------------------------------------------------------------------------


def test_compile_all_returns_seconds():
    seconds = _numba.compile_all()
    assert isinstance(seconds, float) and seconds >= 0
    assert isinstance(_numba.compile_all(dtypes=(np.float64,)), float)
    with pytest.raises(ValueError, match="float32 or float64"):
        _numba.compile_all(dtypes=(np.int32,))


def test_every_kernel_is_compiled_for_both_dtypes():
    _numba.compile_all()
    called_from_python = {"_k_bias_act", "_k_act_backward", "_k_loss", "_k_sgd", "_k_adam", "_k_sgd_layer",
                          "_k_adam_layer", "_k_sgd_layer_small", "_k_adam_layer_small"}
    dispatchers = _dispatchers()
    assert called_from_python <= set(dispatchers)
    for name in called_from_python:  # the others are only called from compiled code, inside these
        dtypes = {str(t.dtype) for sig in dispatchers[name].signatures for t in sig if hasattr(t, "dtype")}
        assert {"float32", "float64"} <= dtypes, f"{name} compiled only for {dtypes}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compile_all_covers_what_training_uses(dtype):
    """After compile_all, training of any kind compiles nothing more (its first call costs no JIT)."""
    _numba.compile_all()
    before = {name: len(d.signatures) for name, d in _dispatchers().items()}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((23, 6)).astype(dtype)
    labels = rng.integers(0, 3, 23)
    with pf.use_backend("numba"):
        for opt in (pf.SGD(lr=0.05), pf.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
                    pf.Adam(lr=1e-3, weight_decay=1e-2)):
            for batch, shuffle in ((1, True), (5, False), (8, True), (None, False)):
                net = pf.MLP([6, 7, 5, 3], activation="tanh", dtype=dtype, seed=1)
                net.fit(x, labels, optimizer=opt, batch_size=batch, epochs=1, shuffle=shuffle, seed=0,
                        progress=False)
        net.predict(x)
        net.loss(x, labels)
        net.loss_and_gradients(x, labels)
        net.train_step(x, labels, optimizer="adam")
        pf.gemm(x, x, trans_b=True)
    after = {name: len(d.signatures) for name, d in _dispatchers().items()}
    assert after == before


def test_njit_options():
    # Exact rounding (no fastmath), no threads of its own (no parallel), cached on disk.
    for name, disp in _dispatchers().items():
        assert not disp.targetoptions.get("fastmath"), name
        assert not disp.targetoptions.get("parallel"), name
        assert type(disp._cache).__name__ != "NullCache", f"{name} is not cached"


# ---- the on-disk cache ----------------------------------------------------------------------------------------

_ONE_KERNEL = """
    import json
    import numpy as np
    from pyfastnn import _numba
    z = np.linspace(-1, 1, 12).reshape(3, 4)
    out = np.empty_like(z)
    _numba.activation_forward("relu", z, out)
    assert np.array_equal(out, np.maximum(z, 0))
    stats = _numba._k_bias_act.stats
    print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
                      "path": stats.cache_path}))
"""


def test_the_cache_is_written_then_used(tmp_path, run_python):
    """The first process compiles and writes index and code files; a second one loads them instead of compiling."""
    import json

    cache = tmp_path / "numba-cache"
    first = run_python(_ONE_KERNEL, clear=_CLEAR, timeout=300, NUMBA_CACHE_DIR=str(cache))
    assert first.returncode == 0, first.stderr
    stats = json.loads(first.stdout.strip().splitlines()[-1])
    assert stats["hits"] == 0 and stats["misses"] >= 1
    files = [f for _, _, names in os.walk(cache) for f in names]
    assert any(f.startswith("_numba._k_bias_act") and f.endswith(".nbi") for f in files), files
    assert any(f.startswith("_numba._k_bias_act") and f.endswith(".nbc") for f in files), files

    second = run_python(_ONE_KERNEL, clear=_CLEAR, timeout=300, NUMBA_CACHE_DIR=str(cache))
    assert second.returncode == 0, second.stderr
    stats = json.loads(second.stdout.strip().splitlines()[-1])
    assert stats["hits"] >= 1 and stats["misses"] == 0, stats


# ---- without numba --------------------------------------------------------------------------------------------


def test_import_without_numba_says_why(run_python):
    r = run_python("""
        import sys
        sys.modules["numba"] = None  # makes `import numba` raise ImportError, as when it is not installed
        import pyfastnn as pf
        info = pf.backends()["numba"]
        print(info["available"], "|", info["reason"], "|", pf.get_backend())
        try:
            import pyfastnn._numba
        except ImportError as exc:
            print("ImportError:", exc)
    """, clear=_CLEAR, timeout=300)
    assert r.returncode == 0, r.stderr
    status, reason, backend = r.stdout.splitlines()[0].split(" | ")
    assert status == "False"
    assert "numba" in reason and "pip install numba" in reason
    assert backend in ("cpp", "numpy")
    assert "ImportError: the numba backend needs the 'numba' package" in r.stdout


def test_env_naming_numba_without_numba_fails_and_says_why(run_python):
    r = run_python('import sys; sys.modules["numba"] = None; import pyfastnn', clear=_CLEAR, timeout=300,
                   PYFASTNN_BACKEND="numba")
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "PYFASTNN_BACKEND" in last and "not available" in last and "pip install numba" in last


# ---- inputs ---------------------------------------------------------------------------------------------------


def test_read_only_inputs(backend_name):
    """Read-only data (e.g. memory-mapped) trains as writable data does: Numba types it apart, so check it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 5))
    y = np.eye(3)[rng.integers(0, 3, 40)]
    x.setflags(write=False)
    y.setflags(write=False)
    nets = {}
    for name in (backend_name, "numpy"):
        net = pf.MLP([5, 8, 3], dtype=np.float64, seed=2)
        with pf.use_backend(name):
            net.fit(x, y, optimizer=pf.SGD(lr=0.1, momentum=0.5), batch_size=7, epochs=2, seed=0, progress=False)
            nets[name] = (net, net.loss(x, y), net.predict(x))
    (got, loss, pred), (ref, ref_loss, ref_pred) = nets[backend_name], nets["numpy"]
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    np.testing.assert_allclose(pred, ref_pred, rtol=1e-10, atol=1e-12)
    for a, b in zip(got.weights + got.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_kernels_do_not_write_their_inputs():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 5))
    z.setflags(write=False)
    for act in ("relu", "softmax", "sigmoid", "step"):
        out = np.empty_like(z)
        want = np.empty_like(z)
        _numba.activation_forward(act, z, out)
        _ref.activation_forward(act, z, want)
        np.testing.assert_allclose(out, want, rtol=1e-12)


def test_gemm_never_reads_out_when_beta_is_zero():
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(12.0).reshape(3, 4)
    for alpha in (1.0, 0.5, 0.0):
        out = np.full((2, 4), np.nan)
        _numba.gemm(a, b, out, False, False, alpha, 0.0)
        np.testing.assert_array_equal(out, alpha * (a @ b))


def test_single_sample_batches_match_the_reference():
    """Batch 1 takes the fused outer-product update; it follows the reference to rounding."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((9, 4))
    labels = rng.integers(0, 2, 9)
    nets = []
    for name in ("numba", "numpy"):
        net = pf.MLP([4, 6, 2], activation="sigmoid", dtype=np.float64, seed=0)
        with pf.use_backend(name):
            net.fit(x, labels, optimizer=pf.Adam(lr=1e-2, weight_decay=1e-3), batch_size=1, epochs=2, seed=1,
                    progress=False)
        nets.append(net)
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("act", ["step", "sign", "linear", "piecewise_linear", "sigmoid", "tanh", "relu", "softmax"])
def test_nan_passes_through_as_in_the_reference(act):
    """Clips and maxima keep NaN (as NumPy's do), so a diverging batch shows a non-finite loss."""
    z = np.array([[np.nan, 1.0, -2.0], [0.5, np.inf, -np.inf], [0.0, -0.5, 3.0]])
    got, want = np.empty_like(z), np.empty_like(z)
    with np.errstate(invalid="ignore"):
        _numba.activation_forward(act, z, got)
        _ref.activation_forward(act, z, want)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("loss,act", [
    ("squared_error", "linear"), ("hinge", "tanh"), ("binary_cross_entropy", "sigmoid"),
    ("binary_cross_entropy", "piecewise_linear"), ("cross_entropy", "softmax"), ("cross_entropy", "sigmoid"),
])
def test_a_nan_output_gives_a_nan_loss(loss, act):
    a = np.full((2, 3), 0.25)
    a[1, 2] = np.nan
    z = a.copy()
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    if loss == "hinge":
        y = 2 * y - 1
    assert np.isnan(_numba.loss_value(loss, act, a, z, y))
    with np.errstate(invalid="ignore"):
        assert np.isnan(_ref.loss_value(loss, act, a, z, y))
