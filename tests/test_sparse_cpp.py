"""The compiled core's sparse-input paths beyond the shared contract tests of tests/test_sparse.py: every ISA level
and many threads (the split of a batch's rows in the forward pass and of the touched rows of the table in the
update), both layouts of W¹ in training, degenerate batches, a million inputs, the plain-SGD weight-decay scale
(renormalised, and folded back before an early return), and the checks of layouts and CSR fields.
"""

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _ref

_core = pytest.importorskip("pyfastnn._core")
sp = pytest.importorskip("scipy.sparse")

ISAS = _core.cpu_info()["isa_supported"]
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def close(got, want, dtype, factor):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
    assert err <= TOL[dtype] * factor, f"relative error {err:.3g} > {TOL[dtype] * factor:.3g}"


@pytest.fixture
def settings():
    """Restores the ISA level and the thread count a test changes."""
    isa, threads = _core.get_isa(), _core.get_num_threads()
    yield
    _core.set_isa(isa)
    _core.set_num_threads(threads)


def _csr(rng, rows, cols, per_row, dtype, always=None):
    """A CSR with ~per_row entries per row at random columns, in no order, with duplicates within rows (they add
    up), an explicit zero and an empty row; ``always``: a column every row also uses, twice."""
    indptr, indices = [0], []
    for i in range(rows):
        k = 0 if i == rows // 3 else int(rng.integers(1, 2 * per_row))
        row = list(rng.integers(0, cols, k))
        row += row[:1] + ([always, always] if always is not None else [])
        indices += [row[j] for j in rng.permutation(len(row))]
        indptr.append(len(indices))
    data = rng.integers(1, 4, len(indices)).astype(dtype)
    data[0] = 0
    return _ref.CSR(np.array(indptr, np.int64), np.array(indices, np.int32), data, cols)


def _net(sizes, dtype, table, seed=0):
    net = pf.MLP(sizes, activation="relu", output_activation="softmax", dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[...] = rng.uniform(-0.2, 0.2, b.shape)
    if table:
        net._use_embedding_layout()
    return net


def _buffers(net, rows):
    outs = [np.full((rows, n), np.nan, net.dtype) for n in net.layer_sizes[1:]]
    zs = [None] * (len(outs) - 1) + [np.full((rows, net.layer_sizes[-1]), np.nan, net.dtype)]
    deltas = [np.full((rows, n), np.nan, net.dtype) for n in net.layer_sizes[1:]]
    return outs, zs, deltas, [np.full_like(w, np.nan) for w in net.weights], [np.full_like(b, np.nan) for b in net.biases]


def _train(k, net, opt, x, y, orders, batch, sw=None):
    outs, zs, deltas, dws, dbs = _buffers(net, batch)
    ybuf = np.empty((batch, y.shape[1]), net.dtype)
    results = []
    for order in orders:
        spec = opt.native_spec(net.weights + net.biases)
        res = k.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y, order, batch, outs, zs,
                            deltas, dws, dbs, None, ybuf, False, spec, sw)
        opt.advance(-(-res[1] // batch))
        results.append(res)
    return results


def _compare(nets, opts, results, dtype, factor):
    (got, want), (o_got, o_want), (r_got, r_want) = nets, opts, results
    for a, b in zip(got.weights + got.biases + o_got.state_arrays(),
                    want.weights + want.biases + o_want.state_arrays()):
        close(a, b, dtype, factor)
    for (t_got, d_got, b_got, _), (t_want, d_want, b_want, _) in zip(r_got, r_want):
        assert (d_got, b_got) == (d_want, b_want)
        assert t_got == pytest.approx(t_want, rel=TOL[dtype] * factor)


OPTS = {
    "sgd": lambda: pf.SGD(lr=0.1),
    "sgd-wd": lambda: pf.SGD(lr=0.1, weight_decay=0.05),
    "momentum-lazy": lambda: pf.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "momentum-lazy-plain": lambda: pf.SGD(lr=0.05, momentum=0.8),
    "momentum-dense": lambda: pf.SGD(lr=0.05, momentum=0.9, weight_decay=0.01, sparse_update="dense"),
    "adam-lazy": lambda: pf.Adam(lr=0.01, weight_decay=0.01),
    "adam-lazy-no-wd": lambda: pf.Adam(lr=0.01),
    "adam-dense": lambda: pf.Adam(lr=0.01, weight_decay=0.01, sparse_update="dense"),
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 3, 8])
@pytest.mark.parametrize("opt", list(OPTS))
@pytest.mark.parametrize("table", [True, False], ids=["table", "rows"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_threads_isas_and_layouts_follow_the_reference(settings, isa, threads, opt, table, dtype):
    """Batches big enough to be split between threads (forward rows, touched rows of the table), a width of W¹
    (75) that is no multiple of a vector or of the gather's chunk, and both layouts of W¹."""
    _core.set_isa(isa)
    _core.set_num_threads(threads)
    rng = np.random.default_rng(threads)
    n, n_in = 260, 700
    x = _csr(rng, n, n_in, 25, dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, n)]
    sw = rng.uniform(0.5, 2.0, n).astype(dtype)
    orders = [rng.permutation(n), None]
    runs = []
    for k in (_core, _ref):
        net, o = _net([n_in, 75, 3], dtype, table), OPTS[opt]()
        runs.append((net, o, _train(k, net, o, x, y, orders, 100, sw)))
    assert runs[0][0].embedding_layout == table
    _compare(*zip(*runs), dtype, factor=100 if dtype == np.float64 else 300)


@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("table", [True, False], ids=["table", "rows"])
def test_forward_and_backward_split_between_threads(settings, threads, table):
    _core.set_num_threads(threads)
    rng = np.random.default_rng(5)
    n, n_in = 300, 2000
    x = _csr(rng, n, n_in, 30, np.float64)
    y = np.eye(4)[rng.integers(0, 4, n)]
    net = _net([n_in, 70, 9, 4], np.float64, table)
    results = []
    for k in (_core, _ref):
        outs, zs, deltas, dws, dbs = _buffers(net, n)
        k.forward(net.weights, net.biases, net.activations, x, outs, zs)
        loss = k.backward(net.weights, net.activations, "cross_entropy", x, y, outs, zs, deltas, dws, dbs, False)
        results.append([loss] + outs + dws + dbs)
    for got, want in zip(*results):
        close(got, want, np.float64, 10)


@pytest.mark.parametrize("opt", ["sgd-wd", "momentum-lazy", "adam-lazy", "adam-dense"])
def test_a_column_every_row_uses(settings, opt):
    """One row of the table gets the whole batch's entries (twice per row) while the others get a few."""
    _core.set_num_threads(4)
    rng = np.random.default_rng(2)
    n, n_in = 200, 300
    x = _csr(rng, n, n_in, 20, np.float64, always=7)
    y = np.eye(2)[rng.integers(0, 2, n)]
    orders, runs = [None, rng.permutation(n)], []
    for k in (_core, _ref):
        net, o = _net([n_in, 66, 2], np.float64, True), OPTS[opt]()
        runs.append((net, o, _train(k, net, o, x, y, orders, n)))
    _compare(*zip(*runs), np.float64, factor=100)


def test_a_million_inputs():
    """A very wide input with a few rows: the update touches only the rows used; the others keep their bits."""
    rng = np.random.default_rng(3)
    n_in, n = 1_000_000, 12
    cols = np.concatenate([[0, n_in - 1], rng.integers(0, n_in, 40)])
    m = sp.csr_matrix((np.ones(42, np.float32), (rng.integers(0, n, 42), cols)), shape=(n, n_in))
    x = _ref.CSR(m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data, n_in)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]
    orders, runs = [rng.permutation(n), None], []
    for k in (_core, _ref):
        net, o = _net([n_in, 8, 2], np.float32, True), pf.SGD(lr=0.2)
        before = net.weights[0].copy()
        runs.append((net, o, _train(k, net, o, x, y, orders, 5)))
    _compare(*zip(*runs), np.float32, factor=300)
    untouched = np.setdiff1d(np.arange(n_in), m.indices)
    np.testing.assert_array_equal(runs[0][0].weights[0][:, untouched], before[:, untouched])


@pytest.mark.parametrize("lr,wd", [(0.5, 1.9), (0.25, 4.0), (0.5, 3.0), (0.1, 0.05)],
                         ids=["decay 0.05", "decay 0", "decay -0.5", "decay 0.995"])
def test_weight_decay_scale_is_exact_through_renormalisation(lr, wd):
    """Plain SGD keeps W¹ = s·E; s shrinks by 1 − ηλ a step and is folded into E when small (or zero)."""
    rng = np.random.default_rng(4)
    n, n_in = 45, 80
    x = _csr(rng, n, n_in, 4, np.float64)
    y = np.eye(3)[rng.integers(0, 3, n)]
    orders, runs = [None, rng.permutation(n), None, None], []
    for k in (_core, _ref):
        net, o = _net([n_in, 13, 3], np.float64, True), pf.SGD(lr=lr, weight_decay=wd)
        runs.append((net, o, _train(k, net, o, x, y, orders, 3)))
    _compare(*zip(*runs), np.float64, factor=100)


def test_a_diverging_batch_leaves_the_decayed_weights():
    """A non-finite loss ends the epoch; the scale of the batches applied before it is folded into E."""
    rng = np.random.default_rng(6)
    n, n_in = 40, 50
    x = _csr(rng, n, n_in, 5, np.float64)
    y = np.eye(2)[rng.integers(0, 2, n)]
    y[25] = np.nan
    runs = []
    for k in (_core, _ref):
        net, o = _net([n_in, 6, 2], np.float64, True), pf.SGD(lr=0.1, weight_decay=0.3)
        runs.append((net, o, _train(k, net, o, x, y, [None], 4)))
    assert runs[0][2][0][2] == 24  # the batch starting at row 24 holds row 25
    _compare(*zip(*runs), np.float64, factor=100)


# ---- layouts and CSR fields the bindings check --------------------------------------------------------------


def _call_epoch(net, dws=None, state=None, x=None):
    outs, zs, deltas, dws_default, dbs = _buffers(net, 3)
    dws = dws_default if dws is None else dws
    x = x if x is not None else np.zeros((3, net.layer_sizes[0]), net.dtype)
    y = np.eye(2)[[0, 1, 0]].astype(net.dtype)
    if state is None:
        spec = pf.SGD(0.1).native_spec(net.weights + net.biases)
    else:
        spec = ("sgd", 0.1, 0.9, False, 0.0, 0.0, 0.0, 0.0, 0, state, True)
    return _core.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y, None, 3, outs, zs,
                             deltas, dws, dbs, None, None, False, spec)


def test_the_gradient_and_state_of_w1_must_have_its_layout():
    table = _net([10, 4, 2], np.float64, True)
    rows = _net([10, 4, 2], np.float64, False)
    with pytest.raises(ValueError, match=r"dweights\[0\] must be F-contiguous"):
        _call_epoch(table, dws=[np.zeros((4, 10)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"dweights\[0\] must be C-contiguous"):
        _call_epoch(rows, dws=[np.zeros((10, 4)).T, np.zeros((2, 4))])
    state = [np.zeros((4, 10)), np.zeros((2, 4)), np.zeros(4), np.zeros(2)]
    with pytest.raises(ValueError, match=r"optimizer state\[0\] must be F-contiguous"):
        _call_epoch(table, state=state)
    with pytest.raises(ValueError, match=r"grads\[0\] must be F-contiguous"):
        _core.sgd_update([table.weights[0]], [np.zeros((4, 10))], None, 0.1, 0.0, False, 0.0)
    with pytest.raises(ValueError, match=r"ms\[0\] must be C-contiguous"):
        _core.adam_update([rows.weights[0]], [np.zeros((4, 10))], [np.zeros((10, 4)).T], [np.zeros((4, 10))], 1,
                          0.1, 0.9, 0.999, 1e-8, 0.0)
    strided = _net([10, 4, 2], np.float64, False)
    strided.weights[0] = np.zeros((4, 20))[:, ::2]
    with pytest.raises(ValueError, match=r"weights\[0\] must be C-contiguous, or the transpose"):
        _call_epoch(strided)
    later = _net([10, 4, 2], np.float64, False)
    later.weights[1] = np.asfortranarray(later.weights[1])
    with pytest.raises(ValueError, match=r"weights\[1\] must be C-contiguous"):
        _call_epoch(later)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_small_dense_batches_on_the_table_layout(settings, isa, threads, dtype):
    """Batches of 1..9 dense rows on a table-layout W¹ (its own small-batch kernels: forward, and the one-pass
    plain-SGD update, threads splitting E) against the same network in the row layout."""
    _core.set_isa(isa)
    _core.set_num_threads(threads)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((30, 301)).astype(dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 30)]
    for rows in range(1, 10):
        nets = []
        for table in (False, True):
            net = _net([301, 250, 3], dtype, table)
            outs, zs, deltas, dws, dbs = _buffers(net, rows)
            _core.forward(net.weights, net.biases, net.activations, x[:rows], outs, zs)
            spec = pf.SGD(0.05, weight_decay=0.1).native_spec(net.weights + net.biases)
            _core.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y, None, rows, outs, zs,
                              deltas, dws, dbs, None, None, False, spec)
            nets.append(net)
        for a, b in zip(nets[1].weights + nets[1].biases, nets[0].weights + nets[0].biases):
            close(a, b, dtype, 100)


def test_dense_training_on_the_table_layout_uses_e_in_place():
    """A dense x on a network whose W¹ is a table: the update lands in the table (no copy behind the view)."""
    net = _net([10, 4, 2], np.float64, True)
    table = net.weights[0].T
    before = table.copy()
    _call_epoch(net, x=np.random.default_rng(0).standard_normal((3, 10)))
    assert np.shares_memory(net.weights[0], table) and not np.array_equal(table, before)


def test_csr_fields_are_checked():
    net = _net([10, 4, 2], np.float64, True)
    outs, zs, _, _, _ = _buffers(net, 3)
    good = _ref.CSR(np.array([0, 1, 2, 2], np.int64), np.array([3, 9], np.int32), np.array([1.0, 2.0]), 10)
    cases = [
        (good._replace(n_cols=10.0), TypeError, "x.n_cols must be an integer"),
        (tuple(good)[:3], TypeError, "a CSR"),
        (good._replace(indptr=np.array([0, 1, 2, 2], np.int32)), TypeError, "x.indptr must have dtype int64"),
        (good._replace(indptr=np.zeros(0, np.int64)), ValueError, "x.indptr must hold rows"),
        (good._replace(indices=np.array([[3, 9]], np.int32)), ValueError, "x.indices must have shape"),
        (good._replace(data=np.array([1.0, 2.0, 3.0])[::2]), ValueError, "x.data must be C-contiguous"),
        (good._replace(indptr=np.array([0, 2, 1, 2], np.int64)), ValueError, r"indptr\[2\] = 1 < indptr\[1\] = 2"),
        (good._replace(indices=np.array([3, 10], np.int32)), ValueError, r"x.indices\[1\] = 10 is outside 0..9"),
        ("not an array", TypeError, "x must be a NumPy array or a CSR"),
    ]
    for x, err, message in cases:
        with pytest.raises(err, match=message):
            _core.forward(net.weights, net.biases, net.activations, x, outs, zs)
    with pytest.raises(ValueError, match="outs"):  # the CSR's rows must match the buffers'
        _core.forward(net.weights, net.biases, net.activations, good._replace(indptr=np.array([0, 2], np.int64)),
                      outs, zs)
