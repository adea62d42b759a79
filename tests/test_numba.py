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
                          "_k_adam_layer", "_k_sgd_layer_small", "_k_adam_layer_small", "_k_epoch_rows"}
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
    # Exact rounding (no fastmath), no threads of its own (no parallel), cached on disk. The one exception: the
    # dot product of the per-sample forward pass may reassociate its sum (it stands in for BLAS, whose order of
    # summation is its own), and nothing else.
    for name, disp in _dispatchers().items():
        allowed = {"reassoc"} if name == "_k_dot" else set()
        assert set(disp.targetoptions.get("fastmath") or ()) == allowed, name
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


# ---- sparse input: what test_sparse.py does not reach ------------------------------------------------------------


def _sparse_problem(n=30, n_in=60, n_out=3, dtype=np.float64, seed=0, density=0.08):
    sp = pytest.importorskip("scipy.sparse")
    from pyfastnn._validation import check_inputs

    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((n, n_in)) * (rng.random((n, n_in)) < density)
    dense[n // 3] = 0  # an empty row
    x, _ = check_inputs(sp.csr_matrix(dense), n_in, dtype)
    y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, n)]
    return x, y


def _sparse_net(n_in, n_out, dtype, embedding, seed=3):
    net = pf.MLP([n_in, 9, n_out], activation="tanh", dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[...] = rng.uniform(-0.2, 0.2, b.shape)
    if embedding:
        net._use_embedding_layout()
    assert net.embedding_layout == embedding
    return net


def _sparse_epochs(k, net, opt, x, y, orders, batch, loss="cross_entropy"):
    """train_epoch on kernels k, one call per entry of orders; returns each call's (loss_sum, done, bad)."""
    params = net.weights + net.biases
    outs = [np.full((batch, m), np.nan, net.dtype) for m in net.layer_sizes[1:]]
    zs = [None, np.full((batch, net.layer_sizes[-1]), np.nan, net.dtype)]
    deltas = [np.full((batch, m), np.nan, net.dtype) for m in net.layer_sizes[1:]]
    dws = [np.empty_like(w) for w in net.weights]  # W¹'s layout
    dbs = [np.empty_like(b) for b in net.biases]
    ybuf = np.empty((batch, y.shape[1]), net.dtype)
    results = []
    for order in orders:
        spec = opt.native_spec(params)
        total, done, bad, _ = k.train_epoch(net.weights, net.biases, net.activations, loss, x, y, order, batch,
                                            outs, zs, deltas, dws, dbs, None, ybuf, False, spec)
        opt.advance(-(-done // batch))
        results.append((total, done, bad))
    return results


def _same_training(make_opt, x, y, orders, batch, embedding, dtype=np.float64, rtol=1e-10):
    runs = []
    for k in (_ref, _numba):
        net = _sparse_net(x.n_cols, y.shape[1], dtype, embedding)
        opt = make_opt()
        runs.append((net, opt, _sparse_epochs(k, net, opt, x, y, orders, batch)))
    (ref, o_ref, r_ref), (got, o_got, r_got) = runs
    assert got.embedding_layout == embedding
    for a, b in zip(got.weights + got.biases + o_got.state_arrays(), ref.weights + ref.biases + o_ref.state_arrays()):
        scale = max(np.max(np.abs(b)), 1e-30)
        assert np.max(np.abs(a - b)) / scale <= rtol
    for (t_got, d_got, b_got), (t_ref, d_ref, b_ref) in zip(r_got, r_ref):
        assert (d_got, b_got) == (d_ref, b_ref)
        assert t_got == pytest.approx(t_ref, rel=rtol)
    return got


@pytest.mark.parametrize("opt", [
    lambda: pf.SGD(lr=0.1, weight_decay=0.05),
    lambda: pf.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda: pf.SGD(lr=0.05, momentum=0.9, sparse_update="dense"),
    lambda: pf.Adam(lr=0.01, weight_decay=0.01),
    lambda: pf.Adam(lr=0.01, sparse_update="dense"),
], ids=["sgd-wd", "nesterov-lazy", "momentum-dense", "adam-lazy", "adam-dense"])
@pytest.mark.parametrize("batch", [1, 4])
def test_sparse_training_with_w1_in_rows_follows_the_reference(opt, batch):
    """Sparse rows with W¹ stored C-contiguous (N_1, N_0), not as a table: the kernels then read E = W¹ᵀ through
    strides (fit never does this, the kernel contract allows it)."""
    x, y = _sparse_problem()
    orders = [np.random.default_rng(batch).permutation(x.shape[0]), None]
    _same_training(opt, x, y, orders, batch, embedding=False)


@pytest.mark.parametrize("lr,weight_decay", [(0.5, 1.0), (0.5, 2.0), (1.0, 1.5)],
                         ids=["halving", "factor-0", "factor-negative"])
def test_lazy_weight_decay_folds_its_scale(lr, weight_decay):
    """Plain SGD on sparse rows keeps W¹ = s·E with s multiplied by 1 − lr·weight_decay per step. A factor of
    1/2 drives s below the folding threshold within the epoch; a factor ≤ 0 folds every step. The dense formulas'
    trajectory is followed either way."""
    x, y = _sparse_problem(n=60)
    _same_training(lambda: pf.SGD(lr=lr, weight_decay=weight_decay), x, y, [None, None], 2, embedding=True)


def test_a_non_finite_loss_stops_with_the_lazy_decay_folded_in():
    x, y = _sparse_problem(n=12)
    y[7] = [np.inf, 0, 0]  # the kernels are called directly: nothing upstream rejects it
    with np.errstate(invalid="ignore"):
        got = _same_training(lambda: pf.SGD(lr=0.1, weight_decay=0.1), x, y, [None], 3, embedding=True)
    assert got.embedding_layout


def test_sparse_training_in_two_threads_at_once_matches_sequential_runs():
    """The kernels release the GIL; each thread keeps its own column → slot map."""
    import threading

    x, y = _sparse_problem(n=400, n_in=300, density=0.05)

    def train(seed):
        net = _sparse_net(300, 3, np.float64, True, seed=seed)
        _sparse_epochs(_numba, net, pf.SGD(lr=0.1, momentum=0.5), x, y,
                       [np.random.default_rng(seed).permutation(400) for _ in range(3)], 5)
        return net

    expected = [train(seed) for seed in (1, 2)]
    results, errors = [None, None], []

    def work(i):
        try:
            results[i] = train(i + 1)
        except Exception as exc:  # noqa: BLE001 (surfaced below, in the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, want in zip(results, expected):
        for a, b in zip(got.weights + got.biases, want.weights + want.biases):
            np.testing.assert_array_equal(a, b)


def test_arrays_that_go_with_w1_must_share_its_layout():
    x, y = _sparse_problem(n=6)
    net = _sparse_net(x.n_cols, 3, np.float64, True)
    outs = [np.empty((6, m)) for m in net.layer_sizes[1:]]
    zs = [None, np.empty((6, 3))]
    deltas = [np.empty((6, m)) for m in net.layer_sizes[1:]]
    rows_layout = [np.empty(w.shape) for w in net.weights]  # C-contiguous: not W¹'s layout
    dbs = [np.empty_like(b) for b in net.biases]
    with pytest.raises(ValueError, match=r"dweights\[0\] must be the transpose of a C-contiguous array"):
        _numba.backward(net.weights, net.activations, "cross_entropy", x, y, outs, zs, deltas, rows_layout, dbs, False)
    with pytest.raises(ValueError, match=r"grads\[0\] must be the transpose"):
        _numba.sgd_update(net.weights, rows_layout, None, 0.1, 0.0, False, 0.0)
    dws = [np.empty_like(w) for w in net.weights]
    spec = list(pf.SGD(lr=0.1, momentum=0.9).native_spec(net.weights + net.biases))
    spec[9] = [np.zeros(p.shape) for p in net.weights + net.biases]  # velocities in the row layout
    with pytest.raises(ValueError, match=r"optimizer state\[0\] must be the transpose"):
        _numba.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y, None, 3, outs, zs,
                           deltas, dws, dbs, None, None, False, tuple(spec))
    table_w2 = [net.weights[0], np.asfortranarray(net.weights[1])]  # only W¹ may be a table
    with pytest.raises(ValueError, match=r"weights\[1\] must be C-contiguous"):
        _numba.forward(table_w2, net.biases, net.activations, x, outs, zs)
    with pytest.raises(ValueError, match="opt must be"):
        _numba.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y, None, 3, outs, zs,
                           deltas, dws, dbs, None, None, False, tuple(spec[:10]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compile_all_covers_sparse_training(dtype):
    """After compile_all, sparse input of any kind compiles nothing more: training in the embedding layout with
    every optimizer, evaluation in either layout."""
    sp = pytest.importorskip("scipy.sparse")
    _numba.compile_all()
    before = {name: len(d.signatures) for name, d in _dispatchers().items()}
    rng = np.random.default_rng(0)
    x = sp.csr_matrix(rng.random((23, 40)) * (rng.random((23, 40)) < 0.1), dtype=dtype)
    labels = rng.integers(0, 3, 23)
    opts = (pf.SGD(lr=0.05), pf.SGD(lr=0.05, weight_decay=1e-3),
            pf.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
            pf.SGD(lr=0.05, momentum=0.9, sparse_update="dense"), pf.Adam(lr=1e-3, weight_decay=1e-2),
            pf.Adam(lr=1e-3, sparse_update="dense"))
    with pf.use_backend("numba"):
        for opt in opts:
            for batch, shuffle in ((1, True), (5, False), (8, True)):
                net = pf.MLP([40, 7, 5, 3], activation="tanh", dtype=dtype, seed=1)
                net.fit(x, labels, optimizer=opt, batch_size=batch, epochs=1, shuffle=shuffle, seed=0,
                        progress=False, sample_weight=rng.uniform(0.5, 1, 23) if batch == 5 else None)
        net.train_step(x, labels, optimizer="adam")
        for embedding in (False, True):
            net = pf.MLP([40, 7, 3], dtype=dtype, seed=1)
            if embedding:
                net._use_embedding_layout()
            net.predict(x)
            net.loss(x, labels)
            net.loss_and_gradients(x, labels)
    after = {name: len(d.signatures) for name, d in _dispatchers().items()}
    assert after == before
