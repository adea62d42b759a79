"""The Numba backend's per-sample path: train_epoch at batch 1 on a dense x runs whole runs of samples in one
compiled call (_numba._k_epoch_rows), with the backward product δ^{l-1} = δ^l W^l fused into the rank-1 update of
W^l. Every case is compared with the NumPy reference over several samples: parameters, optimizer state and the
returned loss sum. Sizes are odd on purpose (not multiples of any SIMD width)."""

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _ref

from conftest import ACTS, TOL, close

pytest.importorskip("numba")
if not pf.backends()["numba"]["available"]:
    pytest.skip(f"numba backend unavailable: {pf.backends()['numba']['reason']}", allow_module_level=True)

from pyfastnn import _numba

SIZES = [13, 19, 7, 5]
OPTS = {
    "sgd": lambda: pf.SGD(lr=0.05),
    "sgd-wd": lambda: pf.SGD(lr=0.05, weight_decay=0.01),
    "nesterov-wd": lambda: pf.SGD(lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam-wd": lambda: pf.Adam(lr=1e-2, weight_decay=1e-2),
}
# (loss, output activation) pairs as training uses them, with targets suited to each
OUT_PAIRS = [
    ("cross_entropy", "softmax"), ("binary_cross_entropy", "sigmoid"), ("squared_error", "linear"),
    ("squared_error", "tanh"), ("hinge", "tanh"), ("binary_cross_entropy", "piecewise_linear"),
    ("cross_entropy", "sigmoid"),
]


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param


def _targets(loss, rng, rows, cols, dtype):
    if loss == "hinge":
        return rng.choice([-1.0, 1.0], (rows, cols)).astype(dtype)
    if loss == "cross_entropy":
        return np.eye(cols, dtype=dtype)[rng.integers(0, cols, rows)]
    if loss == "binary_cross_entropy":
        return rng.uniform(0, 1, (rows, cols)).astype(dtype)
    return rng.standard_normal((rows, cols)).astype(dtype)


def _problem(act, out, loss, dtype, rows=11, seed=0):
    ste = act in ("step", "sign")
    net = pf.MLP(SIZES, activation=act, output_activation=out, dtype=dtype, seed=seed, straight_through=ste)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[...] = rng.uniform(-0.2, 0.2, b.shape)
    x = rng.standard_normal((rows, SIZES[0])).astype(dtype)
    return net, x, _targets(loss, rng, rows, SIZES[-1], dtype)


def _epochs(k, net, opt, loss, x, y, orders, sw=None, progress=None):
    """Epochs of k.train_epoch at batch 1 (one per entry of orders) from net's current parameters, on copies;
    returns (parameters, optimizer state, [(loss sum, done, bad)])."""
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]
    dt = net.dtype
    sizes = net.layer_sizes[1:]
    outs = [np.full((1, n), np.nan, dt) for n in sizes]
    zs = [np.full((1, n), np.nan, dt) for n in sizes]
    deltas = [np.full((1, n), np.nan, dt) for n in sizes]
    dws = [np.full_like(w, np.nan) for w in weights]
    dbs = [np.full_like(b, np.nan) for b in biases]
    xbuf, ybuf = np.empty((1, x.shape[1]), dt), np.empty((1, y.shape[1]), dt)
    results = []
    for order in orders:
        spec = opt.native_spec(weights + biases)
        total, done, bad, _ = k.train_epoch(weights, biases, net.activations, loss, x, y, order, 1, outs, zs,
                                            deltas, dws, dbs, xbuf, ybuf, net.straight_through, spec, sw, progress)
        opt.advance(done)
        results.append((total, done, bad))
    return weights + biases, [s.copy() for s in opt.state_arrays()], results


def _compare(net, opt_name, loss, x, y, orders, sw=None, conditioning=1):
    got = _epochs(_numba, net, OPTS[opt_name](), loss, x, y, orders, sw)
    want = _epochs(_ref, net, OPTS[opt_name](), loss, x, y, orders, sw)
    dtype = net.dtype.type
    # errors compound over the updates; conditioning: how much more the problem amplifies rounding
    factor = (100 if dtype == np.float64 else 300) * conditioning
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        close(a, b, dtype, factor=factor)
    assert len(got[1]) == len(want[1])
    for (t_got, d_got, bad_got), (t_want, d_want, bad_want) in zip(got[2], want[2]):
        assert (d_got, bad_got) == (d_want, bad_want)
        assert t_got == pytest.approx(t_want, rel=TOL[dtype] * factor)
    return got


@pytest.mark.parametrize("opt", list(OPTS))
@pytest.mark.parametrize("act", ACTS)
def test_hidden_activations_follow_the_reference(dtype, act, opt):
    net, x, y = _problem(act, "softmax", "cross_entropy", dtype)
    order = np.random.default_rng(1).permutation(x.shape[0])
    _compare(net, opt, "cross_entropy", x, y, [order, None])


@pytest.mark.parametrize("opt", list(OPTS))
@pytest.mark.parametrize("loss,out", OUT_PAIRS)
def test_output_pairs_follow_the_reference(dtype, loss, out, opt):
    net, x, y = _problem("relu", out, loss, dtype, seed=2)
    order = np.random.default_rng(3).permutation(x.shape[0])
    # BCE's gradient on clipped piecewise-linear outputs, (g − y)/(g(1 − g)), is huge near 0 and 1: a rounding
    # difference of the summation order (the matrix-vector products here vs BLAS there) grows to ~1e-10 in
    # float64 over 22 steps (the C++ backend's to ~2e-11)
    conditioning = 100 if (loss, out) == ("binary_cross_entropy", "piecewise_linear") else 1
    _compare(net, opt, loss, x, y, [None, order], conditioning=conditioning)


@pytest.mark.parametrize("opt", ["sgd", "adam-wd"])
def test_sample_weights_and_zero_weights(dtype, opt):
    """Weighted samples at batch 1, some of weight 0 (skipped: no update, no Adam step)."""
    net, x, y = _problem("tanh", "softmax", "cross_entropy", dtype, rows=12)
    sw = np.random.default_rng(4).uniform(0.2, 3, 12).astype(dtype)
    sw[[0, 5, 6]] = 0
    got = _compare(net, opt, "cross_entropy", x, y, [np.random.default_rng(5).permutation(12), None], sw)
    assert [r[1] for r in got[2]] == [9, 9]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference's NumPy meets the inf too
def test_a_non_finite_loss_stops_before_that_sample(dtype):
    net, x, y = _problem("relu", "softmax", "cross_entropy", dtype, rows=8)
    y[5] = [np.inf, 0, 0, 0, 0]
    got = _compare(net, "adam-wd", "cross_entropy", x, y, [None])
    assert got[2][0][1:] == (5, 5)  # five samples applied, the sixth not


def test_many_calls_per_epoch_with_progress(dtype, monkeypatch):
    """An epoch split into several compiled calls (a few samples each) is the same epoch; progress is called
    between them, and Adam's step count carries over."""
    monkeypatch.setattr(_numba, "_ROW_CHUNK_WORK", 3 * sum(w.size for w in pf.MLP(SIZES).weights) * 3)
    monkeypatch.setattr(_ref, "PROGRESS_INTERVAL", 0.0)
    net, x, y = _problem("sigmoid", "softmax", "cross_entropy", dtype, rows=14)
    calls = []
    got = _epochs(_numba, net, OPTS["adam-wd"](), "cross_entropy", x, y, [None], progress=calls.append)
    want = _epochs(_ref, net, OPTS["adam-wd"](), "cross_entropy", x, y, [None])
    assert calls == [3, 6, 9, 12]
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        close(a, b, dtype, factor=100)


def test_read_only_input_and_a_one_row_network(dtype):
    """x read-only (its own compiled variant); layers of one unit (arrays both C- and F-contiguous)."""
    net = pf.MLP([3, 1, 1], activation="tanh", output_activation="sigmoid", dtype=dtype, seed=0)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((7, 3)).astype(dtype)
    x.flags.writeable = False
    y = rng.uniform(0, 1, (7, 1)).astype(dtype)
    got = _epochs(_numba, net, OPTS["nesterov-wd"](), "binary_cross_entropy", x, y, [None])
    want = _epochs(_ref, net, OPTS["nesterov-wd"](), "binary_cross_entropy", x, y, [None])
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        close(a, b, dtype, factor=100)
