"""Sparse input (scipy.sparse → CSR): the first layer as an embedding table, on every backend.

Three layers of checks: each backend's kernels against the NumPy reference (forward, backward, whole epochs with
every optimizer, lazy and dense updates, both layouts of W¹); whole networks trained on X and on csr_matrix(X)
reaching the same weights; and bad sparse input answered by a clear error.
"""

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _backend, _ref
from pyfastnn._validation import check_inputs

from conftest import ACTS, TOL, close

sp = pytest.importorskip("scipy.sparse")

AVAILABLE = [name for name, info in pf.backends().items() if info["available"]]


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param


@pytest.fixture(params=AVAILABLE)
def kern(request):
    return _backend.kernels(request.param)


def _messy_csr(rng, rows, cols, dtype, density=0.15):
    """A CSR with what scipy allows and the kernels must handle: duplicate entries (they add up), unsorted
    indices within rows, explicit zeros, and empty rows (the first and a middle one)."""
    dense = rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) < density)
    dense[0] = 0
    dense[rows // 2] = 0
    coo = sp.coo_matrix(dense)
    r, c, v = list(coo.row), list(coo.col), list(coo.data)
    for _ in range(max(1, rows // 3)):  # duplicates: an entry split in two parts
        k = int(rng.integers(len(v))) if v else None
        if k is None:
            break
        part = float(rng.standard_normal())
        v[k] -= part
        r.append(r[k]), c.append(c[k]), v.append(part)
    r.append(1 % rows), c.append(cols - 1), v.append(0.0)  # an explicit zero
    order = rng.permutation(len(v))  # unsorted within rows after the CSR conversion keeps insertion order
    m = sp.csr_matrix((np.array(v)[order], (np.array(r)[order], np.array(c)[order])), shape=(rows, cols))
    m.has_canonical_format = False
    return m.astype(dtype), dense


def _kernel_csr(m, dtype):
    x, _ = check_inputs(m, m.shape[1], dtype)
    assert isinstance(x, _ref.CSR)
    return x


def _network(sizes, act, out, dtype, seed=0, embedding=False, ste=False):
    net = pf.MLP(sizes, activation=act, output_activation=out, dtype=dtype, seed=seed, straight_through=ste)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[...] = rng.uniform(-0.2, 0.2, b.shape)
    if embedding:
        net._use_embedding_layout()
        assert net.embedding_layout
    return net


def _buffers(net, rows):
    outs = [np.full((rows, n), np.nan, dtype=net.dtype) for n in net.layer_sizes[1:]]
    zs = [np.full((rows, n), np.nan, dtype=net.dtype) for n in net.layer_sizes[1:]]
    deltas = [np.full((rows, n), np.nan, dtype=net.dtype) for n in net.layer_sizes[1:]]
    dws = [np.full_like(w, np.nan) for w in net.weights]  # empty_like keeps W¹'s layout
    dbs = [np.full_like(b, np.nan) for b in net.biases]
    return outs, zs, deltas, dws, dbs


# ---- kernels against the reference ----------------------------------------------------------------------------


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("sizes", [[40, 3], [57, 33, 5], [300, 17, 2, 4]], ids=["L1", "L2", "L3"])
@pytest.mark.parametrize("rows", [1, 2, 5, 37])
@pytest.mark.parametrize("embedding", [True, False], ids=["table", "rows"])
def test_sparse_forward_and_backward_match_the_reference(kern, dtype, act, sizes, rows, embedding):
    ste = act in ("step", "sign")
    out = "softmax" if sizes[-1] > 1 else "sigmoid"
    net = _network(sizes, act, out, dtype, embedding=embedding, ste=ste)
    rng = np.random.default_rng(rows)
    m, dense = _messy_csr(rng, rows, sizes[0], dtype)
    x = _kernel_csr(m, dtype)
    y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], rows)]
    results = []
    for k, xin in ((_ref, dense.astype(dtype)), (_ref, x), (kern, x)):
        outs, zs, deltas, dws, dbs = _buffers(net, rows)
        k.forward(net.weights, net.biases, net.activations, xin, outs, zs)
        loss = k.backward(net.weights, net.activations, "cross_entropy", xin, y, outs, zs, deltas, dws, dbs, ste)
        assert dws[0].flags.f_contiguous == net.weights[0].flags.f_contiguous
        results.append((loss, outs, dws, dbs))
    (l_dense, o_dense, w_dense, b_dense) = results[0]
    for l_got, o_got, w_got, b_got in results[1:]:
        assert l_got == pytest.approx(l_dense, rel=TOL[dtype] * 10)
        for got, want in zip(o_got + w_got + b_got, o_dense + w_dense + b_dense):
            close(got, want, dtype, factor=10)


@pytest.mark.parametrize("rows", [1, 3, 37])
def test_dense_input_on_the_embedding_layout(kern, dtype, rows):
    """W¹ stored as a table changes nothing for dense inputs: forward, backward and training agree with the
    row layout."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((rows, 23)).astype(dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, rows)]
    results = []
    for embedding in (False, True):
        net = _network([23, 19, 3], "tanh", "softmax", dtype, seed=2, embedding=embedding)
        outs, zs, deltas, dws, dbs = _buffers(net, rows)
        kern.forward(net.weights, net.biases, net.activations, x, outs, zs)
        kern.backward(net.weights, net.activations, "cross_entropy", x, y, outs, zs, deltas, dws, dbs, False)
        trained = []
        for opt in (pf.SGD(0.1, weight_decay=0.01), pf.SGD(0.05, momentum=0.9), pf.Adam(0.01)):
            n2 = net.copy()
            assert n2.embedding_layout == embedding
            with pf.use_backend(_backend_name(kern)):
                n2.fit(x, y, optimizer=opt, batch_size=2, epochs=2, seed=0, progress=False)
            trained.append(n2.weights + n2.biases + opt.state_arrays())
        results.append((outs, dws, dbs, trained))
    (o0, w0, b0, t0), (o1, w1, b1, t1) = results
    for got, want in zip(o1 + w1 + b1, o0 + w0 + b0):
        close(got, want, dtype, factor=10)
    for got_arrays, want_arrays in zip(t1, t0):
        for got, want in zip(got_arrays, want_arrays):
            close(got, want, dtype, factor=100)


def _backend_name(kern):
    return {_backend.kernels(n): n for n in AVAILABLE}[kern]


OPTS = {
    "sgd": lambda: pf.SGD(lr=0.1),
    "sgd-wd": lambda: pf.SGD(lr=0.1, weight_decay=0.05),
    "momentum-lazy": lambda: pf.SGD(lr=0.05, momentum=0.9, weight_decay=0.01),
    "momentum-dense": lambda: pf.SGD(lr=0.05, momentum=0.9, weight_decay=0.01, sparse_update="dense"),
    "nesterov-lazy": lambda: pf.SGD(lr=0.05, momentum=0.8, nesterov=True),
    "adam-lazy": lambda: pf.Adam(lr=0.01, weight_decay=0.01),
    "adam-dense": lambda: pf.Adam(lr=0.01, weight_decay=0.01, sparse_update="dense"),
}


def _epochs(k, net, opt, x, y, orders, batch, sw, loss="cross_entropy"):
    params = net.weights + net.biases
    outs, zs, deltas, dws, dbs = _buffers(net, batch)
    ybuf = np.empty((batch, y.shape[1]), net.dtype)
    results = []
    for order in orders:
        spec = opt.native_spec(params)
        total, done, bad, _ = k.train_epoch(net.weights, net.biases, net.activations, loss, x, y, order, batch,
                                            outs, zs, deltas, dws, dbs, None, ybuf, False, spec, sw)
        opt.advance(-(-done // batch))
        results.append((total, done, bad))
    return results


@pytest.mark.parametrize("opt", list(OPTS))
@pytest.mark.parametrize("batch", [1, 3, 8, 32])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "sw"])
def test_sparse_epochs_follow_the_reference(kern, dtype, opt, batch, weighted):
    """Two epochs (shuffled, then in storage order) of sparse training on the backend's kernels stay on the
    reference's trajectory: parameters, optimizer state and loss sums."""
    rng = np.random.default_rng(batch)
    n, n_in = 45, 200
    m, _ = _messy_csr(rng, n, n_in, dtype, density=0.03)
    x = _kernel_csr(m, dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, n)]
    orders = [rng.permutation(n), None]
    sw = None
    if weighted:
        sw = rng.uniform(0.0, 2.0, n).astype(dtype)
        sw[::4] = 0
    runs = []
    for k in (_ref, kern):
        net = _network([n_in, 21, 3], "relu", "softmax", dtype, seed=3, embedding=True)
        o = OPTS[opt]()
        results = _epochs(k, net, o, x, y, orders, batch, sw)
        runs.append((net, o, results))
    (ref, o_ref, r_ref), (got, o_got, r_got) = runs
    assert got.embedding_layout
    for a, b in zip(got.weights + got.biases + o_got.state_arrays(), ref.weights + ref.biases + o_ref.state_arrays()):
        close(a, b, dtype, factor=100 if dtype == np.float64 else 300)
    for (t_got, d_got, b_got), (t_ref, d_ref, b_ref) in zip(r_got, r_ref):
        assert (d_got, b_got) == (d_ref, b_ref)
        assert t_got == pytest.approx(t_ref, rel=TOL[dtype] * 300)


@pytest.mark.parametrize("opt", ["momentum-lazy", "adam-lazy"])
def test_lazy_updates_leave_unused_columns_alone(kern, opt):
    """A lazy stateful update moves only the columns of W¹ that the batch uses (weights and state); the dense
    one moves every column (through momentum and weight decay)."""
    rng = np.random.default_rng(0)
    m = sp.csr_matrix(rng.random((6, 50)) * (rng.random((6, 50)) < 0.1))
    used = np.unique(m.indices)
    x = _kernel_csr(m, np.float64)
    y = np.eye(2)[rng.integers(0, 2, 6)]
    for lazy in (True, False):
        net = _network([50, 8, 2], "tanh", "softmax", np.float64, embedding=True)
        o = OPTS[opt]() if lazy else OPTS[opt.replace("lazy", "dense")]()
        before = net.weights[0].copy()
        _epochs(kern, net, o, x, y, [None, None], 3, None)
        moved = np.flatnonzero(np.any(net.weights[0] != before, axis=0))
        if lazy:
            np.testing.assert_array_equal(moved, used)
        else:
            assert len(moved) == 50


def test_sparse_kernels_reject_bad_csr(kern):
    net = _network([10, 4, 2], "relu", "softmax", np.float64, embedding=True)
    outs, zs, deltas, dws, dbs = _buffers(net, 3)
    good = _ref.CSR(np.array([0, 1, 2, 2], np.int64), np.array([3, 9], np.int32), np.array([1.0, 2.0]), 10)
    kern.forward(net.weights, net.biases, net.activations, good, outs, zs)  # the good one passes
    bad = [
        good._replace(indices=np.array([3, 10], np.int32)),  # column 10 of 10
        good._replace(indices=np.array([-1, 2], np.int32)),
        good._replace(indptr=np.array([0, 2, 1, 2], np.int64)),  # decreasing
        good._replace(indptr=np.array([0, 1, 2, 3], np.int64)),  # ends past nnz
        good._replace(indptr=np.array([1, 1, 2, 2], np.int64)),  # does not start at 0
        good._replace(n_cols=11),  # not N_0
        good._replace(data=np.array([1.0, 2.0], np.float32)),  # the network is float64
        good._replace(indices=np.array([3, 9], np.int64)),  # the contract's indices are int32
        good._replace(data=np.array([1.0])),  # data shorter than indices
    ]
    for x in bad:
        with pytest.raises((ValueError, TypeError)):
            kern.forward(net.weights, net.biases, net.activations, x, outs, zs)
    spec = pf.SGD(0.1).native_spec(net.weights + net.biases)
    y = np.eye(2)[[0, 1, 0]]
    for x in bad[:5]:
        with pytest.raises((ValueError, TypeError)):
            kern.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y, None, 2, outs, zs,
                             deltas, dws, dbs, None, None, False, spec)


# ---- whole networks: sparse ⇄ dense --------------------------------------------------------------------------

EQUIV_LOSSES = [("cross_entropy", "softmax", 3), ("binary_cross_entropy", "sigmoid", 1),
                ("squared_error", "linear", 2), ("hinge", "tanh", 1)]


def _targets(loss, labels, n_out, dtype):
    if loss == "cross_entropy":
        return labels
    if n_out == 1:
        t = (labels % 2).astype(dtype)[:, None]
        return 2 * t - 1 if loss == "hinge" else t
    return np.eye(n_out, dtype=dtype)[labels % n_out]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss,out,n_out", EQUIV_LOSSES, ids=[l[0] for l in EQUIV_LOSSES])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2], ids=["", "wd"])
def test_training_on_sparse_equals_training_on_dense(backend_name, dtype, act, loss, out, n_out, weight_decay):
    """The issue's oracle: the same network trained on X and on csr_matrix(X) reaches the same weights after 3
    epochs of SGD (float64 ≤ 1e-10 relative, float32 ≤ 1e-5), on every backend."""
    rng = np.random.default_rng(11)
    n, n_in = 60, 120
    m, dense = _messy_csr(rng, n, n_in, np.float64, density=0.05)
    labels = rng.integers(0, 3, n)
    y = _targets(loss, labels, n_out, dtype)
    ste = act in ("step", "sign")
    nets = []
    for x in (dense.astype(dtype), m):
        net = pf.MLP([n_in, 16, n_out], activation=act, output_activation=out, dtype=dtype, seed=5,
                     straight_through=ste)
        net.fit(x, y, loss=loss, optimizer=pf.SGD(lr=0.05, weight_decay=weight_decay), batch_size=7, epochs=3,
                seed=2, progress=False)
        nets.append(net)
    dense_net, sparse_net = nets
    assert sparse_net.embedding_layout and not dense_net.embedding_layout
    tol = 1e-10 if dtype == np.float64 else 1e-5
    for a, b in zip(sparse_net.weights + sparse_net.biases, dense_net.weights + dense_net.biases):
        err = np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b))
        assert err <= tol, f"relative difference {err:.3g}"
    np.testing.assert_allclose(sparse_net.predict(m), dense_net.predict(dense.astype(dtype)), rtol=tol * 10,
                               atol=tol)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "csr_array", "coo_array"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_any_scipy_sparse_format_is_accepted(backend_name, fmt, index_dtype):
    rng = np.random.default_rng(0)
    dense = rng.random((9, 30)) * (rng.random((9, 30)) < 0.2)
    csr = sp.csr_matrix(dense)
    csr.indices = csr.indices.astype(index_dtype)
    csr.indptr = csr.indptr.astype(index_dtype)
    x = sp.csr_array(csr) if fmt == "csr_array" else sp.coo_array(csr) if fmt == "coo_array" else csr.asformat(fmt)
    net = pf.MLP([30, 6, 3], seed=0, dtype=np.float64)
    np.testing.assert_allclose(net.predict(x), net.predict(dense), rtol=1e-12)
    labels = rng.integers(0, 3, 9)
    assert net.accuracy(x, labels) == net.accuracy(dense, labels)
    loss_sparse, grads_sparse = net.loss_and_gradients(x, np.arange(9) % 3)
    loss_dense, grads_dense = net.loss_and_gradients(dense, np.arange(9) % 3)
    assert loss_sparse == pytest.approx(loss_dense, rel=1e-12)
    for (a, b), (c, d) in zip(grads_sparse, grads_dense):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(b, d, rtol=1e-10, atol=1e-14)


def test_every_entry_point_takes_sparse_input(backend_name):
    rng = np.random.default_rng(3)
    dense = (rng.random((40, 25)) < 0.2) * rng.integers(1, 4, (40, 25)).astype(np.float32)
    x = sp.csr_matrix(dense)
    y = rng.integers(0, 2, 40)
    net = pf.MLP([25, 8, 2], seed=1)
    twin = net.copy()
    assert net.predict(x).shape == (40, 2) and net.predict_labels(x).shape == (40,)
    assert net.predict(x[3]).shape == (1, 2)  # a scipy row is a 1-row matrix, not a 1-D sample
    assert net.loss(x, y) == pytest.approx(net.loss(dense, y), rel=1e-6)
    assert net.accuracy(x, y) == net.accuracy(dense, y)
    before = net.train_step(x[:8], y[:8])
    assert before == pytest.approx(twin.train_step(dense[:8], y[:8]), rel=1e-6)
    hist = net.fit(x, y, epochs=2, validation_data=(x[:10], y[:10]), progress=False, seed=0)
    assert len(hist["val_loss"]) == 2
    hist = net.fit(x, y, epochs=3, early_stopping=True, validation_fraction=0.25, progress=False, seed=0)
    assert hist.best_epoch is not None
    w = rng.uniform(0.5, 2.0, 40)
    net.fit(x, y, epochs=1, sample_weight=w, progress=False, seed=0)
    for a in net.weights + net.biases:
        assert np.all(np.isfinite(a))


def test_the_embedding_layout_keeps_the_public_contract():
    net = pf.MLP([30, 7, 2], seed=0)
    w0 = net.weights[0].copy()
    x = sp.csr_matrix(np.eye(30, dtype=np.float32)[:5])
    net.fit(x, [0, 1, 0, 1, 0], epochs=1, progress=False, optimizer=pf.SGD(1e-9))
    assert net.embedding_layout
    assert net.weights[0].shape == (7, 30) and net.weights[0].flags.writeable
    assert net.weights[0].T.flags.c_contiguous  # the table E = W¹ᵀ, one row per input column
    np.testing.assert_allclose(net.weights[0], w0, atol=1e-6)
    net.weights[0][:, 3] = 0  # writing into weights[0] changes the network
    np.testing.assert_allclose(net.predict(x[3]), net.predict(np.zeros((1, 30), np.float32)), atol=1e-7)
    assert net.copy().embedding_layout and net.astype(np.float64).embedding_layout


def test_save_and_load_keep_the_embedding_layout(tmp_path):
    net = pf.MLP([30, 7, 2], seed=0)
    x = sp.csr_matrix(np.eye(30, dtype=np.float32)[:6])
    net.fit(x, [0, 1] * 3, epochs=2, progress=False)
    net.save(tmp_path / "m.npz")
    back = pf.load(tmp_path / "m.npz")
    assert back.embedding_layout
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


@pytest.mark.parametrize("backend", [n for n in ("cpp", "numpy") if n in AVAILABLE])
def test_dense_work_does_not_need_scipy(run_python, backend):
    """scipy is imported only when sparse input arrives (numba's own import needs it, so not on numba)."""
    res = run_python(
        """
        import sys
        sys.modules["scipy"] = None  # any import of scipy now fails
        import pyfastnn as pf
        X, y = pf.datasets.load_digits()
        net = pf.MLP([64, 8, 10], seed=0)
        net.fit(X[:64], y[:64], epochs=1, progress=False)
        print(net.predict(X[:2]).shape)
        """,
        PYFASTNN_BACKEND=backend,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "(2, 10)"


# ---- bad sparse input --------------------------------------------------------------------------------------


def _bad(**fields):
    m = sp.csr_matrix(np.array([[0, 1.0, 0, 2.0], [0, 0, 0, 0], [3.0, 0, 0, 0]]))
    for key, value in fields.items():
        setattr(m, key, value)
    return m


BAD = {
    "negative index": (_bad(indices=np.array([1, -3, 0], np.int32)), "outside 0..3"),
    "index out of range": (_bad(indices=np.array([1, 4, 0], np.int32)), "outside 0..3"),
    "int64 index beyond int32": (_bad(indices=np.array([1, 2**33, 0], np.int64), indptr=np.array([0, 2, 2, 3], np.int64)),
                                 "outside 0..3"),
    "indptr not monotone": (_bad(indptr=np.array([0, 2, 1, 3], np.int32)), "must not decrease"),
    "indptr not ending at nnz": (_bad(indptr=np.array([0, 2, 2, 2], np.int32)), "end at the number"),
    "NaN": (_bad(data=np.array([1.0, np.nan, 3.0])), "NaN"),
    "Inf": (_bad(data=np.array([1.0, np.inf, 3.0])), "infinity"),
    "wrong column count": (sp.csr_matrix(np.ones((2, 5))), "5 features"),
    "no rows": (sp.csr_matrix((0, 4)), "no samples"),
    "complex": (sp.csr_matrix(np.array([[1j, 0, 0, 0]])), "numbers"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_sparse_input_is_a_clear_error(backend_name, case):
    x, message = BAD[case]
    net = pf.MLP([4, 3, 2], seed=0)
    for call in (lambda: net.predict(x), lambda: net.fit(x, np.zeros(x.shape[0], int), epochs=1, progress=False),
                 lambda: net.train_step(x, np.zeros(x.shape[0], int))):
        with pytest.raises((ValueError, TypeError), match=message):
            call()


def test_empty_rows_give_the_bias_path(backend_name):
    net = pf.MLP([4, 3, 2], seed=0)
    for b in net.biases:
        b[...] = 0.3
    empty = sp.csr_matrix((3, 4), dtype=np.float32)  # every row empty: allowed
    np.testing.assert_allclose(net.predict(empty), net.predict(np.zeros((3, 4), np.float32)), rtol=1e-6)
    net.fit(empty, [0, 1, 0], epochs=2, progress=False)  # trains the biases and the layers above


# ---- the estimators and the command line -----------------------------------------------------------------------


def _corpus(n, seed):
    """Short "reviews": a positive or negative word among neutral ones; the label says which."""
    rng = np.random.default_rng(seed)
    pos, neg = ["great", "lovely", "excellent", "superb"], ["awful", "poor", "boring", "terrible"]
    neutral = [f"word{i}" for i in range(300)]
    docs, labels = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(neutral, int(rng.integers(3, 12)))) + [rng.choice(pos if label else neg)]
        rng.shuffle(words)
        docs.append(" ".join(words))
        labels.append(["negative", "positive"][label])
    return docs, np.array(labels)


def test_countvectorizer_pipeline_fits_and_scores(backend_name):
    """The issue's done-when: make_pipeline(CountVectorizer(), pf.MLPClassifier()) fits and scores, as scikit-
    learn's own MLPClassifier does, and predicts what the same classifier predicts on the dense matrix."""
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    docs, labels = _corpus(400, 0)
    pipe = make_pipeline(CountVectorizer(), pf.MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01,
                                                          max_iter=30, random_state=0))
    pipe.fit(docs[:300], labels[:300])
    assert pipe[-1].net_.embedding_layout
    assert pipe.score(docs[300:], labels[300:]) > 0.9
    proba = pipe.predict_proba(docs[300:])
    x_test = pipe[0].transform(docs[300:])
    np.testing.assert_allclose(proba, pipe[-1].predict_proba(x_test.toarray()), rtol=1e-6, atol=1e-9)
    # With the defaults, as in the issue (scikit-learn's MLPClassifier scores 0.89-0.92 on these folds).
    scores = cross_val_score(make_pipeline(CountVectorizer(), pf.MLPClassifier(random_state=0)), docs, labels, cv=3)
    assert scores.min() > 0.85


def test_estimator_partial_fit_and_regressor_on_sparse(backend_name):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    x = sp.random(80, 40, density=0.1, format="csr", random_state=2, dtype=np.float64)
    y = np.asarray(x @ rng.standard_normal(40)).ravel()
    reg = pf.MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=200, random_state=0).fit(x, y)
    assert reg.score(x, y) > 0.5 and reg.predict(x[:3]).shape == (3,)
    clf = pf.MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for _ in range(3):
        clf.partial_fit(x, (y > 0).astype(int), classes=[0, 1])
    assert clf.predict_proba(x).shape == (80, 2)


def test_cli_trains_on_a_saved_sparse_matrix(tmp_path, run_python, backend_name):
    from pyfastnn.cli import main

    rng = np.random.default_rng(0)
    x = sp.random(300, 500, density=0.02, format="csr", random_state=3, dtype=np.float64)
    y = (np.asarray(x @ rng.standard_normal(500)).ravel() > 0).astype(int)
    sp.save_npz(tmp_path / "x.npz", x)
    np.savetxt(tmp_path / "y.txt", y, fmt="%d")
    model = tmp_path / "m.npz"
    assert main(["train", "--data", str(tmp_path / "x.npz"), "--labels", str(tmp_path / "y.txt"), "--epochs", "3",
                 "--quiet", "--save", str(model), "--backend", backend_name]) == 0
    net = pf.load(model)
    assert net.layer_sizes[0] == 500 and net.embedding_layout
    assert main(["train", "--data", str(tmp_path / "x.npz"), "--quiet", "--no-save"]) == 1  # no labels: an error


def test_gradcheck_on_sparse_input_and_the_embedding_layout(backend_name):
    rng = np.random.default_rng(0)
    x = sp.csr_matrix(rng.random((6, 12)) * (rng.random((6, 12)) < 0.3))
    net = pf.MLP([12, 5, 3], activation="tanh", dtype=np.float64, seed=0)
    net.fit(x, [0, 1, 2, 0, 1, 2], epochs=1, progress=False)  # switches W¹ to the embedding layout
    assert net.embedding_layout
    assert pf.gradcheck(net, x, [0, 1, 2, 0, 1, 2]) < 1e-6
