"""The kernel contract refuses overlapping arrays (issue #13, item 6): an array a kernel writes must not share
memory with another of the call's arrays, else the results are silently wrong (activation_forward on cpp gave
zeros, forward with outs[0] = x wrong outputs, train_epoch with the gather buffer = the data overwrote rows of
the data, gradient buffers aliasing the weights were accepted). Every backend raises the same ValueError before
touching anything; the exact in-place call the contract allows (activation_forward with out = z) still works."""

import re

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _backend

ALL = [name for name, info in pf.backends().items() if info["available"]]


@pytest.fixture(params=ALL)
def kern(request):
    return _backend.kernels(request.param)


def overlap(a, b):
    """The message for two overlapping arrays, in either order (the written one is named first)."""
    a, b = re.escape(a), re.escape(b)
    return rf"^({a} overlaps {b}|{b} overlaps {a}) in memory: the arrays a kernel writes must not share memory"


def _problem(sizes=(6, 6, 3), rows=8, seed=0):
    net = pf.MLP(list(sizes), activation="tanh", seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], rows)]
    outs = [np.zeros((rows, n)) for n in sizes[1:]]
    zs = [None] * (len(sizes) - 2) + [np.zeros((rows, sizes[-1]))]
    deltas = [np.zeros((rows, n)) for n in sizes[1:]]
    dws = [np.zeros_like(w) for w in net.weights]
    dbs = [np.zeros_like(b) for b in net.biases]
    return net, x, y, outs, zs, deltas, dws, dbs


def _epoch(kern, net, x, y, outs, zs, deltas, dws, dbs, xbuf, ybuf, spec, order=None, batch=2):
    return kern.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y, order, batch, outs, zs,
                            deltas, dws, dbs, xbuf, ybuf, False, spec)


def test_activation_forward_refuses_an_out_overlapping_z(kern):
    buf = np.linspace(-2, 2, 5 * 4).reshape(5, 4)
    before = buf.copy()
    with pytest.raises(ValueError, match=overlap("out", "z")):
        kern.activation_forward("relu", buf[:4], buf[1:])
    assert np.array_equal(buf, before)


@pytest.mark.parametrize("same", ["object", "view"])
def test_activation_forward_in_place_is_still_allowed(kern, same):
    z = np.linspace(-2, 2, 12).reshape(3, 4)
    out = z if same == "object" else z[:]
    kern.activation_forward("relu", z, out)
    assert np.array_equal(z, np.maximum(np.linspace(-2, 2, 12).reshape(3, 4), 0))


def test_activation_backward_and_the_loss_refuse_a_delta_overlapping_an_input(kern):
    a = np.full((3, 4), 0.5)
    with pytest.raises(ValueError, match=overlap("delta", "a")):
        kern.activation_backward("sigmoid", a, None, a, False)
    y = np.eye(4)[[0, 1, 2]]
    with pytest.raises(ValueError, match=overlap("delta", "y")):
        kern.loss_and_output_delta("squared_error", "linear", a, None, y, y, False)


def test_forward_refuses_an_output_that_is_the_input(kern):
    net, x, _, outs, zs, *_ = _problem()
    with pytest.raises(ValueError, match=overlap("outs[0]", "x")):
        kern.forward(net.weights, net.biases, net.activations, x, [x, outs[1]], zs)
    with pytest.raises(ValueError, match=overlap("zs[1]", "outs[1]")):
        kern.forward(net.weights, net.biases, net.activations, x, outs, [None, outs[1]])


def test_backward_refuses_gradients_aliasing_the_weights(kern):
    net, x, y, outs, zs, deltas, dws, dbs = _problem()
    kern.forward(net.weights, net.biases, net.activations, x, outs, zs)
    with pytest.raises(ValueError, match=overlap("dweights[1]", "weights[1]")):
        kern.backward(net.weights, net.activations, "cross_entropy", x, y, outs, zs, deltas, [dws[0], net.weights[1]],
                      dbs, False)


def test_train_epoch_refuses_the_data_as_gather_buffer(kern):
    net, x, y, outs, zs, deltas, dws, dbs = _problem(rows=8)
    data = x.copy()
    spec = pf.SGD(0.1).native_spec(net.weights + net.biases)
    order = np.arange(8, dtype=np.int64)[::-1].copy()
    with pytest.raises(ValueError, match=overlap("xbuf", "x")):
        _epoch(kern, net, x, y, outs, zs, deltas, dws, dbs, x, np.zeros((2, 3)), spec, order)
    assert np.array_equal(x, data)  # refused before any row was gathered over the data
    with pytest.raises(ValueError, match=overlap("ybuf", "y")):
        _epoch(kern, net, x, y, outs, zs, deltas, dws, dbs, np.zeros((2, 6)), y[2:4], spec, order)


@pytest.mark.parametrize("opt", [pf.SGD(0.1, momentum=0.9), pf.Adam(0.01)], ids=["momentum", "adam"])
def test_train_epoch_refuses_gradients_or_state_aliasing_the_weights(kern, opt):
    net, x, y, outs, zs, deltas, dws, dbs = _problem()
    before = [w.copy() for w in net.weights]
    spec = opt.native_spec(net.weights + net.biases)
    with pytest.raises(ValueError, match=overlap("weights[0]", "dweights[0]")):
        _epoch(kern, net, x, y, outs, zs, deltas, [net.weights[0], dws[1]], dbs, None, None, spec)
    state = list(spec[9])
    state[1] = net.weights[1]
    with pytest.raises(ValueError, match=overlap("weights[1]", "optimizer state[1]")):
        _epoch(kern, net, x, y, outs, zs, deltas, dws, dbs, None, None, spec[:9] + (state,) + spec[10:])
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, before))


def test_optimizer_updates_refuse_gradients_aliasing_parameters(kern):
    p = [np.ones((3, 2)), np.ones(3)]
    with pytest.raises(ValueError, match=overlap("params[1]", "grads[1]")):
        kern.sgd_update(p, [np.ones((3, 2)), p[1]], None, 0.1, 0.0, False, 0.0)
    m, v = [np.zeros((3, 2)), np.zeros(3)], [np.zeros((3, 2)), np.zeros(3)]
    with pytest.raises(ValueError, match=overlap("ms[0]", "vs[0]")):
        kern.adam_update(p, [np.ones((3, 2)), np.ones(3)], m, [m[0], v[1]], 1, 0.01, 0.9, 0.999, 1e-8, 0.0)


def test_disjoint_views_of_one_buffer_are_accepted(kern):
    """Overlap is judged on the memory used, not on sharing a base: neighbouring slices of one block are fine,
    and give the same results as separate arrays."""
    net, x, y, outs, zs, deltas, dws, dbs = _problem()
    block = np.zeros(x.size + sum(o.size for o in outs))
    x_in = block[: x.size].reshape(x.shape)
    x_in[...] = x
    views, at = [], x.size
    for o in outs:
        views.append(block[at : at + o.size].reshape(o.shape))
        at += o.size
    kern.forward(net.weights, net.biases, net.activations, x_in, views, zs)
    kern.forward(net.weights, net.biases, net.activations, x, outs, zs)
    assert all(np.array_equal(a, b) for a, b in zip(views, outs))


def test_fit_and_train_step_still_train(kern):
    """The checks accept everything the library itself passes (x = y for an autoencoder included)."""
    with pf.use_backend(next(n for n in ALL if _backend.kernels(n) is kern)):
        x = np.random.default_rng(0).standard_normal((40, 5))
        net = pf.MLP([5, 3, 5], output_activation="linear", seed=0)
        net.fit(x, x, epochs=2, progress=False, optimizer=pf.Adam(0.01))
        assert np.isfinite(net.train_step(x[:8], x[:8]))
