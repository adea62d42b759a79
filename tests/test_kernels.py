"""Every optimized backend against the NumPy reference, kernel by kernel and over whole training epochs.

Tolerances (the issue's): float64 ≤ 1e-12 relative, float32 ≤ 1e-5 relative (to the largest magnitude).
Sizes are odd on purpose: not multiples of any SIMD width or register tile.
"""

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _backend, _ref

from conftest import ACTS, TOL, close

OPTIMIZED = [name for name in ("cpp", "numba") if pf.backends()[name]["available"]]
pytestmark = pytest.mark.skipif(not OPTIMIZED, reason="no optimized backend is built")


@pytest.fixture(params=OPTIMIZED or ["none"])
def backend(request):
    return request.param


@pytest.fixture
def kern(backend):
    return _backend.kernels(backend)


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param


@pytest.mark.parametrize("act", ACTS + ["softmax"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (33, 31), (5, 257)])
def test_activation_forward(kern, dtype, act, shape):
    rng = np.random.default_rng(shape[0] * shape[1])
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    z[0, 0] = 0  # the value where step/sign are ½ / 0
    want, got = np.empty_like(z), np.full_like(z, np.nan)
    _ref.activation_forward(act, z, want)
    kern.activation_forward(act, z, got)
    close(got, want, dtype)
    inplace = z.copy()
    kern.activation_forward(act, inplace, inplace)
    close(inplace, want, dtype)


@pytest.mark.parametrize("act", ACTS + ["softmax"])
@pytest.mark.parametrize("ste", [False, True])
def test_activation_backward(kern, dtype, act, ste):
    rng = np.random.default_rng(7)
    z = (2 * rng.standard_normal((9, 13))).astype(dtype)
    a = np.empty_like(z)
    _ref.activation_forward(act, z, a)
    d0 = rng.standard_normal(z.shape).astype(dtype)
    want, got = d0.copy(), d0.copy()
    _ref.activation_backward(act, a, z, want, ste)
    kern.activation_backward(act, a, z, got, ste)
    close(got, want, dtype)


LOSS_PAIRS = [
    ("squared_error", "linear"), ("squared_error", "sigmoid"), ("squared_error", "softmax"), ("hinge", "tanh"),
    ("hinge", "linear"), ("binary_cross_entropy", "sigmoid"), ("binary_cross_entropy", "piecewise_linear"),
    ("cross_entropy", "softmax"), ("cross_entropy", "sigmoid"),
]


def _targets(loss, rng, shape, dtype):
    if loss == "hinge":
        return rng.choice([-1.0, 1.0], shape).astype(dtype)
    if loss == "cross_entropy":
        return np.eye(shape[1], dtype=dtype)[rng.integers(0, shape[1], shape[0])]
    if loss == "binary_cross_entropy":
        return rng.uniform(0, 1, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("loss,act", LOSS_PAIRS)
def test_loss_and_output_delta(kern, dtype, loss, act):
    rng = np.random.default_rng(11)
    z = (2 * rng.standard_normal((17, 5))).astype(dtype)
    a = np.empty_like(z)
    _ref.activation_forward(act, z, a)
    y = _targets(loss, rng, z.shape, dtype)
    want_d, got_d = np.empty_like(z), np.full_like(z, np.nan)
    want = _ref.loss_and_output_delta(loss, act, a, z, y, want_d, False)
    got = kern.loss_and_output_delta(loss, act, a, z, y, got_d, False)
    assert got == pytest.approx(want, rel=TOL[dtype] * 10)
    close(got_d, want_d, dtype, factor=10)
    assert kern.loss_value(loss, act, a, z, y) == pytest.approx(want, rel=TOL[dtype] * 10)


def _network(sizes, act, out, dtype, seed=0, ste=False):
    net = pf.MLP(sizes, activation=act, output_activation=out, dtype=dtype, seed=seed, straight_through=ste)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[...] = rng.uniform(-0.2, 0.2, b.shape)
    return net


def _buffers(net, rows):
    outs = [np.full((rows, n), np.nan, dtype=net.dtype) for n in net.layer_sizes[1:]]
    zs = [np.full((rows, n), np.nan, dtype=net.dtype) for n in net.layer_sizes[1:]]
    deltas = [np.full((rows, n), np.nan, dtype=net.dtype) for n in net.layer_sizes[1:]]
    dws = [np.full_like(w, np.nan) for w in net.weights]
    dbs = [np.full_like(b, np.nan) for b in net.biases]
    return outs, zs, deltas, dws, dbs


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("sizes", [[7, 3], [31, 33, 5], [13, 127, 2, 9, 4]], ids=["L1", "L2", "L4"])
@pytest.mark.parametrize("rows", [1, 2, 37])
def test_forward_and_backward(kern, dtype, act, sizes, rows):
    ste = act in ("step", "sign")
    net = _network(sizes, act, "softmax" if sizes[-1] > 1 else "sigmoid", dtype, ste=ste)
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, sizes[0])).astype(dtype)
    y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], rows)]
    results = []
    for k in (_ref, kern):
        outs, zs, deltas, dws, dbs = _buffers(net, rows)
        k.forward(net.weights, net.biases, net.activations, x, outs, zs)
        loss = k.backward(net.weights, net.activations, "cross_entropy", x, y, outs, zs, deltas, dws, dbs, ste)
        results.append((loss, outs, dws, dbs))
    (l_ref, o_ref, w_ref, b_ref), (l_got, o_got, w_got, b_got) = results
    assert l_got == pytest.approx(l_ref, rel=TOL[dtype] * 10)
    for got, want in zip(o_got + w_got + b_got, o_ref + w_ref + b_ref):
        close(got, want, dtype, factor=10)


@pytest.mark.parametrize(
    "opt",
    [pf.SGD(lr=0.05), pf.SGD(lr=0.05, weight_decay=0.01), pf.SGD(lr=0.02, momentum=0.9),
     pf.SGD(lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-3), pf.Adam(lr=1e-2), pf.Adam(lr=1e-2, weight_decay=0.1)],
    ids=["sgd", "sgd-wd", "momentum", "nesterov-wd", "adam", "adam-wd"],
)
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_training_follows_the_reference_trajectory(backend, dtype, opt, batch):
    """Three epochs of shuffled training: the optimized backend stays on the reference's trajectory."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((61, 9)).astype(dtype)
    labels = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    nets = []
    for k in ("numpy", backend):
        net = _network([9, 15, 11, 3], "tanh", "softmax", dtype, seed=1)
        o = type(opt)(**{key: v for key, v in opt.get_config().items() if key != "name"})
        with pf.use_backend(k):
            hist = net.fit(x, labels, optimizer=o, batch_size=batch, epochs=3, seed=3, progress=False)
        nets.append((net, hist))
    (ref, h_ref), (got, h_got) = nets
    # Errors compound over the updates; 100× the one-shot tolerance still catches any real difference.
    for a, b in zip(got.weights + got.biases, ref.weights + ref.biases):
        close(a, b, dtype, factor=100 if dtype == np.float64 else 300)
    np.testing.assert_allclose(h_got["loss"], h_ref["loss"], rtol=TOL[dtype] * 300)


def test_train_epoch_stops_before_a_non_finite_batch(kern):
    net = _network([4, 5, 2], "relu", "softmax", np.float64)
    x = np.ones((6, 4))
    y = np.tile([1.0, 0.0], (6, 1))
    y[3] = [np.inf, 0]  # the kernel is called directly, so nothing upstream rejects it
    outs, zs, deltas, dws, dbs = _buffers(net, 2)
    before = [w.copy() for w in net.weights]
    spec = pf.SGD(lr=0.1).native_spec(net.weights + net.biases)
    total, done, bad, bad_loss = kern.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y,
                                                  None, 2, outs, zs, deltas, dws, dbs, None, None, False, spec)
    assert (done, bad) == (2, 2) and not np.isfinite(bad_loss)
    assert not np.array_equal(before[0], net.weights[0])  # the first batch was applied


def test_kernels_reject_bad_buffers(kern):
    net = _network([4, 5, 2], "relu", "softmax", np.float64)
    x = np.ones((3, 4))
    outs, zs, deltas, dws, dbs = _buffers(net, 3)
    with pytest.raises((ValueError, TypeError)):
        kern.forward(net.weights, net.biases, net.activations, x, outs[:1], zs)  # one buffer for two layers
    with pytest.raises((ValueError, TypeError)):
        kern.forward(net.weights, net.biases, net.activations, x.astype(np.float32), outs, zs)
    small = [np.empty((2, n)) for n in (5, 2)]
    with pytest.raises((ValueError, TypeError)):
        kern.forward(net.weights, net.biases, net.activations, x, small, zs)
    with pytest.raises((ValueError, TypeError)):
        kern.forward(net.weights, net.biases, ["relu", "gelu"], x, outs, zs)
    with pytest.raises((ValueError, TypeError)):
        kern.forward([net.weights[0], net.weights[0]], net.biases, net.activations, x, outs, zs)  # sizes don't chain
    spec = pf.SGD(lr=0.1).native_spec(net.weights + net.biases)
    with pytest.raises((ValueError, TypeError)):
        kern.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, np.ones((3, 2)),
                         np.array([0, 1, 3]), 2, outs, zs, deltas, dws, dbs, np.empty((2, 4)), np.empty((2, 2)),
                         False, spec)  # row index 3 of 3 rows
    with pytest.raises((ValueError, TypeError)):
        kern.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, np.ones((3, 2)), None, 0,
                         outs, zs, deltas, dws, dbs, None, None, False, spec)
    with pytest.raises((ValueError, TypeError)):
        kern.activation_backward("step", outs[0], None, deltas[0], True)  # STE needs z


@pytest.mark.parametrize("batch", [1, 3, 5])
@pytest.mark.parametrize("threads", [1, 2])
def test_small_batch_path_on_a_layer_big_enough_to_split(backend, threads, batch):
    """Batches of 1 and 5 with a layer past the small-batch threading threshold (64K weights) follow the
    reference (12 samples: batches of 5 end with a partial batch of 2)."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((12, 300))
    labels = rng.integers(0, 3, 12)
    nets = []
    previous = pf.get_num_threads()
    pf.set_num_threads(threads)
    try:
        for k in ("numpy", backend):
            net = _network([300, 257, 3], "relu", "softmax", np.float64, seed=2)
            with pf.use_backend(k):
                net.fit(x, labels, optimizer=pf.SGD(lr=0.01), batch_size=batch, epochs=2, seed=1, progress=False)
            nets.append(net)
    finally:
        pf.set_num_threads(previous)
    for a, b in zip(nets[1].weights + nets[1].biases, nets[0].weights + nets[0].biases):
        close(a, b, np.float64, factor=100)


# ---------------------------------------------------------------------------------------------------------------
# Sample weights (sw): the loss of a batch is Σ s_k C_k / Σ s_k and its gradients are that loss's (_ref's docstring)

SW_PAIRS = [
    ("squared_error", "linear"), ("squared_error", "sigmoid"), ("hinge", "linear"), ("hinge", "tanh"),
    ("binary_cross_entropy", "sigmoid"), ("cross_entropy", "softmax"),
]
SW_ROWS = [1, 2, 7, 33]
ALL = ["numpy"] + OPTIMIZED


@pytest.fixture(params=ALL)
def any_kern(request):
    """Every backend's kernels, the reference's included (for properties each must have on its own)."""
    return _backend.kernels(request.param)


def _sample_weights(rng, rows, dtype):
    """Weights in [0, 3) with every third one zero (the first is never zero, so the sum is positive)."""
    sw = rng.uniform(0.1, 3.0, rows)
    sw[1::3] = 0
    return sw.astype(dtype)


def _sw_network(loss, act, dtype, seed=0):
    return _network([5, 9, 3], "tanh", act, dtype, seed=seed)


def _sw_backward(k, net, loss, x, y, sw):
    """Forward and backward on kernels k; returns (loss, output delta, dweights, dbiases)."""
    outs, zs, deltas, dws, dbs = _buffers(net, x.shape[0])
    k.forward(net.weights, net.biases, net.activations, x, outs, zs)
    value = k.backward(net.weights, net.activations, loss, x, y, outs, zs, deltas, dws, dbs, False, sw)
    return value, deltas[-1], dws, dbs


def _sw_problem(loss, act, dtype, rows, seed):
    rng = np.random.default_rng(seed)
    net = _sw_network(loss, act, dtype, seed=seed)
    x = rng.standard_normal((rows, 5)).astype(dtype)
    y = _targets(loss, rng, (rows, 3), dtype)
    return rng, net, x, y


@pytest.mark.parametrize("loss,act", SW_PAIRS)
@pytest.mark.parametrize("rows", SW_ROWS)
def test_weighted_loss_kernels(kern, dtype, loss, act, rows):
    rng = np.random.default_rng(rows)
    z = (2 * rng.standard_normal((rows, 5))).astype(dtype)
    a = np.empty_like(z)
    _ref.activation_forward(act, z, a)
    y = _targets(loss, rng, z.shape, dtype)
    sw = _sample_weights(rng, rows, dtype)
    want_d, got_d = np.empty_like(z), np.full_like(z, np.nan)
    want = _ref.loss_and_output_delta(loss, act, a, z, y, want_d, False, sw)
    got = kern.loss_and_output_delta(loss, act, a, z, y, got_d, False, sw)
    assert got == pytest.approx(want, rel=TOL[dtype] * 10)
    close(got_d, want_d, dtype, factor=10)
    assert kern.loss_value(loss, act, a, z, y, sw) == pytest.approx(want, rel=TOL[dtype] * 10)
    assert want == pytest.approx(
        np.dot(sw.astype(np.float64), [_ref.loss_value(loss, act, a[i:i + 1], z[i:i + 1], y[i:i + 1])
                                       for i in range(rows)]) / np.sum(sw, dtype=np.float64), rel=1e-12)
    # Weights all 1 are no weights, bit for bit, on the reference and the backend.
    ones = np.ones(rows, dtype)
    for k in (_ref, kern):
        plain_d, unit_d = np.empty_like(z), np.empty_like(z)
        plain = k.loss_and_output_delta(loss, act, a, z, y, plain_d, False)
        assert k.loss_and_output_delta(loss, act, a, z, y, unit_d, False, ones) == plain
        np.testing.assert_array_equal(unit_d, plain_d)
        assert k.loss_value(loss, act, a, z, y, ones) == k.loss_value(loss, act, a, z, y) == plain
    # No weight at all: the loss is 0 and the delta is zero.
    for k in (_ref, kern):
        zero_d = np.full_like(z, np.nan)
        assert k.loss_and_output_delta(loss, act, a, z, y, zero_d, False, np.zeros(rows, dtype)) == 0.0
        assert not zero_d.any()
        assert k.loss_value(loss, act, a, z, y, np.zeros(rows, dtype)) == 0.0


@pytest.mark.parametrize("loss,act", SW_PAIRS)
@pytest.mark.parametrize("rows", SW_ROWS)
def test_weighted_backward(kern, dtype, loss, act, rows):
    """Weighted backward against the reference; unit weights are no weights; no weight gives zero gradients."""
    rng, net, x, y = _sw_problem(loss, act, dtype, rows, seed=rows)
    sw = _sample_weights(rng, rows, dtype)
    want = _sw_backward(_ref, net, loss, x, y, sw)
    got = _sw_backward(kern, net, loss, x, y, sw)
    assert got[0] == pytest.approx(want[0], rel=TOL[dtype] * 10)
    for g, w in zip([got[1]] + got[2] + got[3], [want[1]] + want[2] + want[3]):
        close(g, w, dtype, factor=10)
    for k in (_ref, kern):
        plain = _sw_backward(k, net, loss, x, y, None)
        unit = _sw_backward(k, net, loss, x, y, np.ones(rows, dtype))
        assert unit[0] == plain[0]
        for g, w in zip([unit[1]] + unit[2] + unit[3], [plain[1]] + plain[2] + plain[3]):
            np.testing.assert_array_equal(g, w)
        value, delta, dws, dbs = _sw_backward(k, net, loss, x, y, np.zeros(rows, dtype))
        assert value == 0.0
        assert not any(a.any() for a in [delta] + dws + dbs)


@pytest.mark.parametrize("loss,act", SW_PAIRS)
@pytest.mark.parametrize("rows", SW_ROWS)
def test_integer_weights_repeat_rows_and_zero_weights_drop_them(any_kern, dtype, loss, act, rows):
    """A whole batch: weight m on a row is that row m times; weight 0 is the row left out."""
    rng, net, x, y = _sw_problem(loss, act, dtype, rows, seed=100 + rows)
    counts = rng.integers(0, 4, rows)
    counts[0] = max(counts[0], 1)
    for sw in (counts, (counts > 0).astype(np.int64)):
        weighted = _sw_backward(any_kern, net, loss, x, y, sw.astype(dtype))
        repeated = _sw_backward(any_kern, net, loss, np.repeat(x, sw, axis=0), np.repeat(y, sw, axis=0), None)
        assert weighted[0] == pytest.approx(repeated[0], rel=TOL[dtype] * 10)
        for g, w in zip(weighted[2] + weighted[3], repeated[2] + repeated[3]):
            close(g, w, dtype, factor=10)


@pytest.mark.parametrize("loss,act", SW_PAIRS)
def test_weighted_gradient_is_the_derivative_of_the_weighted_loss(loss, act):
    """The reference's weighted backward against central differences of its weighted loss (float64)."""
    rows, eps = 7, 1e-6
    rng, net, x, y = _sw_problem(loss, act, np.float64, rows, seed=3)
    if loss == "binary_cross_entropy":
        y = rng.integers(0, 2, y.shape).astype(np.float64)
    sw = _sample_weights(rng, rows, np.float64)
    _, _, dws, dbs = _sw_backward(_ref, net, loss, x, y, sw)
    outs, zs, _, _, _ = _buffers(net, rows)

    def cost():
        _ref.forward(net.weights, net.biases, net.activations, x, outs, zs)
        return _ref.loss_value(loss, act, outs[-1], zs[-1], y, sw)

    for params, grads in ((net.weights, dws), (net.biases, dbs)):
        for p, g in zip(params, grads):
            numeric = np.empty_like(p)
            flat, nflat = p.reshape(-1), numeric.reshape(-1)
            for i in range(flat.size):
                keep = flat[i]
                flat[i] = keep + eps
                up = cost()
                flat[i] = keep - eps
                down = cost()
                flat[i] = keep
                nflat[i] = (up - down) / (2 * eps)
            scale = max(np.max(np.abs(g)), np.max(np.abs(numeric)), 1e-12)
            assert np.max(np.abs(g - numeric)) / scale < 1e-6


SW_OPTS = [pf.SGD(lr=0.05), pf.SGD(lr=0.02, momentum=0.9, weight_decay=1e-3), pf.Adam(lr=1e-2)]


def _fresh(opt):
    return type(opt)(**{key: v for key, v in opt.get_config().items() if key != "name"})


def _train(k, net, opt, x, y, orders, batch, sw):
    """Epochs of train_epoch on kernels k, one per entry of orders; returns the (loss_sum, done, bad) of each."""
    params = net.weights + net.biases
    outs, zs, deltas, dws, dbs = _buffers(net, batch)
    xbuf = np.empty((batch, x.shape[1]), net.dtype)
    ybuf = np.empty((batch, y.shape[1]), net.dtype)
    results = []
    for order in orders:
        spec = opt.native_spec(params)
        total, done, bad, _ = k.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y, order,
                                            batch, outs, zs, deltas, dws, dbs, xbuf, ybuf, False, spec, sw)
        opt.advance(-(-done // batch))
        results.append((total, done, bad))
    return results


def _labelled(rng, n, dtype):
    x = rng.standard_normal((n, 9)).astype(dtype)
    labels = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return x, np.eye(3, dtype=dtype)[labels]


@pytest.mark.parametrize("opt", SW_OPTS, ids=["sgd", "momentum-wd", "adam"])
@pytest.mark.parametrize("batch", [1, 3, 8, 32])
def test_weighted_training_follows_the_reference(kern, dtype, opt, batch):
    """Two shuffled epochs with sample weights (some zero, one batch of weight 0 at batch size 3): the backend
    stays on the reference's trajectory, loss sums included."""
    rng = np.random.default_rng(batch)
    n = 61
    x, y = _labelled(rng, n, dtype)
    orders = [rng.permutation(n), rng.permutation(n)]
    sw = rng.uniform(0.0, 3.0, n)
    sw[::5] = 0
    sw[orders[0][3:6]] = 0
    sw = sw.astype(dtype)
    runs = []
    for k in (_ref, kern):
        net = _network([9, 15, 11, 3], "relu", "softmax", dtype, seed=1)
        o = _fresh(opt)
        results = _train(k, net, o, x, y, orders, batch, sw)
        runs.append((net, o, results))
    (ref, o_ref, r_ref), (got, o_got, r_got) = runs
    for a, b in zip(got.weights + got.biases + o_got.state_arrays(), ref.weights + ref.biases + o_ref.state_arrays()):
        close(a, b, dtype, factor=100 if dtype == np.float64 else 300)
    for (t_got, d_got, b_got), (t_ref, d_ref, b_ref) in zip(r_got, r_ref):
        assert (d_got, b_got) == (d_ref, b_ref)
        assert t_got == pytest.approx(t_ref, rel=TOL[dtype] * 300)
    if batch == 3:
        assert r_ref[0][1] == n - 3  # the batch of weight 0 was not trained on


@pytest.mark.parametrize("opt", SW_OPTS, ids=["sgd", "momentum-wd", "adam"])
@pytest.mark.parametrize("batch", [3, 8])
def test_unit_weights_train_as_no_weights(any_kern, opt, batch):
    rng = np.random.default_rng(4)
    x, y = _labelled(rng, 29, np.float64)
    orders = [rng.permutation(29), None]
    runs = []
    for sw in (None, np.ones(29)):
        net = _network([9, 15, 11, 3], "tanh", "softmax", np.float64, seed=2)
        o = _fresh(opt)
        runs.append((net, o, _train(any_kern, net, o, x, y, orders, batch, sw)))
    (a, oa, ra), (b, ob, rb) = runs
    assert ra == rb
    for p, q in zip(a.weights + a.biases + oa.state_arrays(), b.weights + b.biases + ob.state_arrays()):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("opt", [pf.SGD(lr=0.05, weight_decay=0.1), pf.SGD(lr=0.05, momentum=0.9, weight_decay=0.1),
                                 pf.Adam(lr=1e-2, weight_decay=0.1)], ids=["sgd-wd", "momentum-wd", "adam-wd"])
@pytest.mark.parametrize("shuffled", [False, True])
def test_a_batch_of_weight_zero_makes_no_update(any_kern, opt, shuffled):
    """All weights 0: nothing moves, not even weight decay or momentum (the state is not zero). Weight 0 on one
    batch: the epoch is the one without that batch."""
    rng = np.random.default_rng(6)
    n, batch = 24, 4
    x, y = _labelled(rng, n, np.float64)
    order = rng.permutation(n) if shuffled else None
    visit = order if shuffled else np.arange(n)
    # A first epoch gives the optimizer a state (velocities, moments) that a wrong update would apply.
    net = _network([9, 7, 3], "tanh", "softmax", np.float64, seed=3)
    o = _fresh(opt)
    _train(any_kern, net, o, x, y, [order], batch, None)
    before = [a.copy() for a in net.weights + net.biases + o.state_arrays()]
    assert _train(any_kern, net, o, x, y, [order], batch, np.zeros(n)) == [(0.0, 0, -1)]
    for a, b in zip(net.weights + net.biases + o.state_arrays(), before):
        np.testing.assert_array_equal(a, b)
    # Weight 0 on the second batch only, weights 1 elsewhere: the same as skipping that batch without weights.
    sw = np.ones(n)
    sw[visit[batch:2 * batch]] = 0
    kept = np.concatenate([visit[:batch], visit[2 * batch:]])
    runs = []
    for args in ((x, y, order, sw), (x[kept], y[kept], None, None)):
        net = _network([9, 7, 3], "tanh", "softmax", np.float64, seed=3)
        o = _fresh(opt)
        xx, yy, oo, ss = args
        runs.append((net, o, _train(any_kern, net, o, xx, yy, [oo], batch, ss)))
    (a, oa, ra), (b, ob, rb) = runs
    assert ra == rb and ra[0][1] == n - batch
    for p, q in zip(a.weights + a.biases + oa.state_arrays(), b.weights + b.biases + ob.state_arrays()):
        np.testing.assert_array_equal(p, q)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the reference's NumPy meets the NaN too
def test_weighted_train_epoch_still_stops_before_a_non_finite_batch(any_kern):
    """A sample's non-finite loss ends the epoch whatever its weight (0 included: 0·∞ is NaN)."""
    net = _network([4, 5, 2], "relu", "softmax", np.float64)
    x = np.ones((6, 4))
    y = np.tile([1.0, 0.0], (6, 1))
    y[3] = [np.inf, 0]
    for weight in (2.0, 0.0):
        sw = np.ones(6)
        sw[3] = weight
        outs, zs, deltas, dws, dbs = _buffers(net, 2)
        spec = pf.SGD(lr=0.1).native_spec(net.weights + net.biases)
        total, done, bad, bad_loss = any_kern.train_epoch(net.weights, net.biases, net.activations, "cross_entropy",
                                                          x, y, None, 2, outs, zs, deltas, dws, dbs, None, None,
                                                          False, spec, sw)
        assert (done, bad) == (2, 2) and not np.isfinite(bad_loss) and np.isfinite(total)


BAD_SW = {
    "length": lambda n: np.ones(n + 1),
    "negative": lambda n: np.r_[np.ones(n - 1), -1.0],
    "nan": lambda n: np.r_[np.nan, np.ones(n - 1)],
    "inf": lambda n: np.r_[np.ones(n - 1), np.inf],
    "dtype": lambda n: np.ones(n, np.float32),
    "2-D": lambda n: np.ones((n, 1)),
    "strided": lambda n: np.ones(2 * n)[::2],
    "list": lambda n: [1.0] * n,
}


@pytest.mark.parametrize("bad", list(BAD_SW))
def test_bad_sample_weights_are_rejected(any_kern, bad):
    net = _network([4, 5, 2], "relu", "softmax", np.float64)
    n = 3
    x = np.ones((n, 4))
    y = np.tile([1.0, 0.0], (n, 1))
    sw = BAD_SW[bad](n)
    outs, zs, deltas, dws, dbs = _buffers(net, n)
    any_kern.forward(net.weights, net.biases, net.activations, x, outs, zs)
    with pytest.raises((ValueError, TypeError), match="sw"):
        any_kern.loss_value("cross_entropy", "softmax", outs[-1], zs[-1], y, sw)
    with pytest.raises((ValueError, TypeError), match="sw"):
        any_kern.loss_and_output_delta("cross_entropy", "softmax", outs[-1], zs[-1], y, deltas[-1], False, sw)
    with pytest.raises((ValueError, TypeError), match="sw"):
        any_kern.backward(net.weights, net.activations, "cross_entropy", x, y, outs, zs, deltas, dws, dbs, False, sw)
    before = [a.copy() for a in net.weights + net.biases]
    spec = pf.SGD(lr=0.1).native_spec(net.weights + net.biases)
    for order in (None, np.array([2, 0, 1])):
        with pytest.raises((ValueError, TypeError), match="sw"):
            any_kern.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y, order, 2, outs,
                                 zs, deltas, dws, dbs, np.empty((2, 4)), np.empty((2, 2)), False, spec, sw)
    for a, b in zip(net.weights + net.biases, before):
        np.testing.assert_array_equal(a, b)
