"""Every optimized backend against the NumPy reference, kernel by kernel and over whole training epochs.

Tolerances (the issue's): float64 ≤ 1e-12 relative, float32 ≤ 1e-5 relative (to the largest magnitude).
Sizes are odd on purpose: not multiples of any SIMD width or register tile.
"""

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _backend, _ref

OPTIMIZED = [name for name in ("cpp", "numba") if pf.backends()[name]["available"]]
pytestmark = pytest.mark.skipif(not OPTIMIZED, reason="no optimized backend is built")

ACTS = ["step", "sign", "linear", "piecewise_linear", "sigmoid", "tanh", "relu"]
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def close(got, want, dtype, factor=1.0):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(np.max(np.abs(want)) if want.size else 0.0, 1e-30)
    err = np.max(np.abs(got - want)) / scale if want.size else 0.0
    assert err <= TOL[dtype] * factor, f"relative error {err:.3g} > {TOL[dtype] * factor:.3g}"


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
