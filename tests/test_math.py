"""The mathematics: activations, losses, backpropagation against central differences, the lecture's example."""

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _ref

HIDDEN = ["step", "sign", "linear", "piecewise_linear", "sigmoid", "tanh", "relu"]

# (loss, output activation, target maker) pairs where the loss is smooth in the output.
LOSS_CASES = [
    ("squared_error", "linear", lambda rng, b, m: rng.standard_normal((b, m))),
    ("squared_error", "softmax", lambda rng, b, m: rng.uniform(0, 1, (b, m))),
    ("hinge", "tanh", lambda rng, b, m: rng.choice([-1.0, 1.0], (b, m))),
    ("binary_cross_entropy", "sigmoid", lambda rng, b, m: rng.uniform(0, 1, (b, m))),
    ("cross_entropy", "softmax", lambda rng, b, m: rng.integers(0, m, b)),
    ("cross_entropy", "sigmoid", lambda rng, b, m: np.eye(m)[rng.integers(0, m, b)]),
]


def _net(sizes, act, out, seed=0, dtype=np.float64):
    net = pf.MLP(sizes, activation=act, output_activation=out, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for b in net.biases:
        # Non-zero biases keep step/sign inputs away from exactly 0, where their jump would fool the differences.
        b[...] = rng.uniform(-0.3, 0.3, b.shape)
    return net


@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("act", HIDDEN)
@pytest.mark.parametrize("loss,out,targets", LOSS_CASES, ids=[f"{c[0]}-{c[1]}" for c in LOSS_CASES])
def test_gradients_match_central_differences(depth, act, loss, out, targets):
    rng = np.random.default_rng(depth * 7 + len(act))
    sizes = [4] + [5] * depth + [3]
    net = _net(sizes, act, out)
    x = rng.standard_normal((6, 4))
    y = targets(rng, 6, 3)
    assert pf.gradcheck(net, x, y, loss=loss) <= 1e-6


@pytest.mark.parametrize("act", ["step", "sign"])
def test_step_and_sign_pass_no_gradient_below_them(act):
    rng = np.random.default_rng(1)
    net = _net([3, 4, 4, 2], act, "softmax")
    _, grads = net.loss_and_gradients(rng.standard_normal((5, 3)), rng.integers(0, 2, 5), loss="cross_entropy")
    for dw, db in grads[:-1]:
        assert not np.any(dw) and not np.any(db)
    assert np.any(grads[-1][0])  # the output layer itself still learns


def test_activation_values():
    z = np.array([[-2.0, -0.25, 0.0, 0.25, 2.0]])
    expect = {
        "step": [0, 0, 0.5, 1, 1],
        "sign": [-1, -1, 0, 1, 1],
        "linear": z[0],
        "piecewise_linear": [0, 0.25, 0.5, 0.75, 1],
        "sigmoid": 1 / (1 + np.exp(-z[0])),
        "tanh": np.tanh(z[0]),
        "relu": [0, 0, 0, 0.25, 2],
    }
    for name, want in expect.items():
        np.testing.assert_allclose(pf.activations.apply(name, z)[0], want, rtol=1e-12, err_msg=name)
    p = pf.activations.apply("softmax", z)
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(), rtol=1e-12)


def test_stable_forms_do_not_overflow():
    z = np.array([[-1000.0, 0.0, 1000.0]])
    assert np.all(np.isfinite(pf.activations.apply("sigmoid", z)))
    assert np.all(np.isfinite(pf.activations.apply("softmax", z)))
    # BCE on a sigmoid output at huge |z| through the log-sigmoid form: exact, finite.
    a = pf.activations.apply("sigmoid", z)
    y = np.array([[1.0, 1.0, 0.0]])
    value = _ref.loss_value("binary_cross_entropy", "sigmoid", a, z, y)
    assert value == pytest.approx(1000.0 + np.log(2) + 1000.0)
    value = _ref.loss_value("cross_entropy", "softmax", pf.activations.apply("softmax", z), z, np.array([[1.0, 0, 0]]))
    assert value == pytest.approx(2000.0)


def test_loss_definitions():
    f = np.array([[0.2, 0.7], [0.9, 0.4]])
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert _ref.loss_value("squared_error", "linear", f, None, y) == pytest.approx(
        np.mean([(0.2**2 + 0.3**2), (0.1**2 + 0.4**2)])
    )
    ypm = 2 * y - 1
    assert _ref.loss_value("hinge", "linear", f, None, ypm) == pytest.approx(
        np.mean([max(0, 1 + 0.2) + max(0, 1 - 0.7), max(0, 1 - 0.9) + max(0, 1 + 0.4)])
    )
    bce = -np.mean(np.sum(y * np.log(f) + (1 - y) * np.log(1 - f), axis=1))
    assert _ref.loss_value("binary_cross_entropy", "piecewise_linear", f, None, y) == pytest.approx(bce)


def test_lecture_worked_example_single_sigmoid_neuron():
    """One sigmoid neuron with two inputs and squared error, the derivative worked by hand."""
    net = pf.MLP([2, 1], output_activation="sigmoid", dtype=np.float64)
    w1, w2, b = 0.3, -0.8, 0.1
    net.weights[0][...] = [[w1, w2]]
    net.biases[0][...] = [b]
    x1, x2, target = 1.5, 0.5, 1.0
    s = 1 / (1 + np.exp(-(w1 * x1 + w2 * x2 + b)))
    common = 2 * (s - target) * s * (1 - s)  # ∂C/∂z for C = (ŷ − σ)²
    loss, grads = net.loss_and_gradients([[x1, x2]], [target], loss="squared_error")
    assert loss == pytest.approx((target - s) ** 2, rel=1e-14)
    np.testing.assert_allclose(grads[0][0], [[common * x1, common * x2]], rtol=1e-14)
    np.testing.assert_allclose(grads[0][1], [common], rtol=1e-14)
    eta = 0.5
    before = net.train_step([[x1, x2]], [target], loss="squared_error", optimizer=pf.SGD(lr=eta))
    assert before == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(net.weights[0], [[w1 - eta * common * x1, w2 - eta * common * x2]], rtol=1e-14)
    np.testing.assert_allclose(net.biases[0], [b - eta * common], rtol=1e-14)


def test_batch_gradient_is_mean_of_per_sample_gradients():
    rng = np.random.default_rng(3)
    net = _net([5, 6, 3], "tanh", "softmax")
    x, y = rng.standard_normal((4, 5)), rng.integers(0, 3, 4)
    loss, grads = net.loss_and_gradients(x, y)
    singles = [net.loss_and_gradients(x[i : i + 1], y[i : i + 1]) for i in range(4)]
    assert loss == pytest.approx(np.mean([s[0] for s in singles]), rel=1e-12)
    for l in range(2):
        np.testing.assert_allclose(grads[l][0], np.mean([s[1][l][0] for s in singles], axis=0), rtol=1e-10)


def test_float32_matches_float64():
    rng = np.random.default_rng(4)
    net64 = _net([8, 16, 16, 4], "relu", "softmax")
    net32 = net64.astype(np.float32)
    x, y = rng.standard_normal((10, 8)), rng.integers(0, 4, 10)
    l64, g64 = net64.loss_and_gradients(x, y)
    l32, g32 = net32.loss_and_gradients(x, y)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for (a, b), (c, d) in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)


def test_forward_shapes_and_one_sample():
    net = pf.MLP([3, 4, 2], seed=0)
    assert net.forward(np.zeros((5, 3))).shape == (5, 2)
    one = net.forward(np.array([0.1, 0.2, 0.3]))
    assert one.shape == (2,)
    np.testing.assert_allclose(one, net.forward(np.array([[0.1, 0.2, 0.3]]))[0])
    np.testing.assert_allclose(net.predict(np.ones((2, 3))), net.forward(np.ones((2, 3))))
    np.testing.assert_allclose(net.forward(np.ones((2, 3))).sum(axis=1), 1.0, rtol=1e-6)  # softmax by default


def test_weights_are_live_views():
    net = pf.MLP([2, 1], output_activation="linear", dtype=np.float64)
    net.weights[0][...] = [[2.0, -1.0]]
    net.biases[0][...] = [0.5]
    assert net.forward(np.array([3.0, 4.0]))[0] == pytest.approx(2 * 3 - 4 + 0.5)


def test_init_is_seeded_and_scaled():
    a = pf.MLP([100, 400, 10], seed=5)
    b = pf.MLP([100, 400, 10], seed=5)
    c = pf.MLP([100, 400, 10], seed=6)
    assert np.array_equal(a.weights[0], b.weights[0]) and not np.array_equal(a.weights[0], c.weights[0])
    assert np.std(a.weights[0]) == pytest.approx(np.sqrt(2 / 100), rel=0.05)  # He for relu
    g = pf.MLP([100, 400, 10], activation="tanh", seed=5)
    assert np.max(np.abs(g.weights[0])) <= np.sqrt(6 / 500)  # Glorot uniform
    assert all(not np.any(bias) for bias in a.biases)


def test_linear_network_collapses_to_one_linear_map():
    net = pf.MLP([4, 6, 5, 3], activation="linear", output_activation="linear", dtype=np.float64, seed=2)
    for b in net.biases:
        b[...] = np.random.default_rng(9).standard_normal(b.shape)
    w = net.weights[2] @ net.weights[1] @ net.weights[0]
    bias = net.weights[2] @ (net.weights[1] @ net.biases[0] + net.biases[1]) + net.biases[2]
    x = np.random.default_rng(8).standard_normal((7, 4))
    np.testing.assert_allclose(net.forward(x), x @ w.T + bias, rtol=1e-12)
