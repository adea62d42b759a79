"""Training: every flavour of gradient descent lowers the loss; fit's options do what they say."""

import numpy as np
import pytest

import pyfastnn as pf


def _blobs(n=120, seed=0):
    """Three Gaussian blobs in 2-D with integer labels."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    y = rng.integers(0, 3, n)
    x = centers[y] + 0.5 * rng.standard_normal((n, 2))
    return x, y


@pytest.mark.parametrize(
    "batch_size,optimizer",
    [
        (None, pf.SGD(lr=0.5)),  # full-batch gradient descent
        (1, pf.SGD(lr=0.05)),  # per-sample SGD
        (16, pf.SGD(lr=0.2)),  # mini-batch SGD
        (16, pf.SGD(lr=0.05, momentum=0.9)),
        (16, pf.SGD(lr=0.05, momentum=0.9, nesterov=True)),
        (16, pf.Adam(lr=0.01)),
        (16, pf.SGD(lr=0.2, weight_decay=1e-3)),
    ],
    ids=["full-batch", "per-sample", "mini-batch", "momentum", "nesterov", "adam", "weight-decay"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_method_lowers_the_loss(batch_size, optimizer, dtype):
    x, y = _blobs()
    net = pf.MLP([2, 16, 3], activation="tanh", dtype=dtype, seed=1)
    before = net.loss(x, y)
    hist = net.fit(x, y, optimizer=optimizer, batch_size=batch_size, epochs=15, seed=0, progress=False)
    after = net.loss(x, y)
    assert after < 0.5 * before
    assert len(hist["loss"]) == 15 and hist.stop_reason == "epochs"
    assert net.accuracy(x, y) > 0.9


def test_sgd_update_formulas():
    net = pf.MLP([3, 2], output_activation="linear", dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    opt = pf.SGD(lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.01)
    w0 = net.weights[0].copy()
    _, g1 = net.loss_and_gradients(x, y, "squared_error")
    net.train_step(x, y, "squared_error", opt)
    gw = g1[0][0] + 0.01 * w0
    v = gw
    w1 = w0 - 0.1 * (gw + 0.5 * v)
    np.testing.assert_allclose(net.weights[0], w1, rtol=1e-12)
    _, g2 = net.loss_and_gradients(x, y, "squared_error")
    net.train_step(x, y, "squared_error", opt)
    gw2 = g2[0][0] + 0.01 * w1
    v2 = 0.5 * v + gw2
    np.testing.assert_allclose(net.weights[0], w1 - 0.1 * (gw2 + 0.5 * v2), rtol=1e-12)


def test_adam_first_step_moves_each_weight_by_lr():
    net = pf.MLP([3, 2], output_activation="linear", dtype=np.float64, seed=0)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    w0 = net.weights[0].copy()
    _, g = net.loss_and_gradients(x, y, "squared_error")
    net.train_step(x, y, "squared_error", pf.Adam(lr=0.01, eps=1e-12))
    # With bias correction, Adam's first step is lr·g/|g| = lr·sign(g).
    np.testing.assert_allclose(net.weights[0], w0 - 0.01 * np.sign(g[0][0]), rtol=1e-9)


def test_train_step_returns_loss_before_update():
    x, y = _blobs(30)
    net = pf.MLP([2, 8, 3], seed=0, dtype=np.float64)
    before = net.loss(x, y)
    assert net.train_step(x, y, optimizer=pf.SGD(lr=0.1)) == pytest.approx(before, rel=1e-12)
    assert net.loss(x, y) < before


def test_fit_is_reproducible_with_seed():
    x, y = _blobs()
    runs = []
    for _ in range(2):
        net = pf.MLP([2, 8, 3], seed=3)
        net.fit(x, y, optimizer=pf.SGD(lr=0.1), epochs=3, seed=11, progress=False)
        runs.append(net.weights[0].copy())
    assert np.array_equal(runs[0], runs[1])


def test_fit_without_shuffle_equals_manual_steps():
    x, y = _blobs(20)
    a = pf.MLP([2, 4, 3], seed=0, dtype=np.float64)
    b = a.copy()
    a.fit(x, y, optimizer=pf.SGD(lr=0.1), batch_size=8, epochs=2, shuffle=False, progress=False)
    opt = pf.SGD(lr=0.1)
    for _ in range(2):
        for lo in (0, 8, 16):
            b.train_step(x[lo : lo + 8], y[lo : lo + 8], optimizer=opt)
    np.testing.assert_allclose(a.weights[0], b.weights[0], rtol=1e-13)


def test_validation_callbacks_and_tol():
    x, y = _blobs(150)
    net = pf.MLP([2, 8, 3], seed=0)
    seen = []

    def stop_at_three(epoch, logs):
        seen.append((epoch, sorted(logs)))
        return epoch == 3

    hist = net.fit(x[:100], y[:100], optimizer=pf.SGD(lr=0.1), epochs=10, validation_data=(x[100:], y[100:]),
                   callbacks=[stop_at_three], progress=False)
    assert hist.stop_reason == "callback" and len(hist) == 3
    assert seen[0] == (1, ["loss", "lr", "time", "val_accuracy", "val_loss"])
    assert 0 <= hist["val_accuracy"][-1] <= 1 and hist["val_loss"][-1] > 0
    assert hist["time"] == sorted(hist["time"])

    net2 = pf.MLP([2, 8, 3], seed=0)
    hist2 = net2.fit(x, y, optimizer=pf.SGD(lr=0.1), epochs=500, tol=1e-2, patience=3, progress=False)
    assert hist2.stop_reason == "tol" and len(hist2) < 500
    # Each of the last 3 epochs stayed above (best so far − tol); the best falls by < tol per epoch meanwhile.
    assert min(hist2["loss"][-3:]) > min(hist2["loss"][:-3]) - 3 * 1e-2
    assert hist2.best_epoch is not None


def test_batch_larger_than_data_is_full_batch():
    x, y = _blobs(10)
    a = pf.MLP([2, 4, 3], seed=0, dtype=np.float64)
    b = a.copy()
    a.fit(x, y, batch_size=1000, epochs=2, shuffle=False, progress=False)
    b.fit(x, y, batch_size="full", epochs=2, shuffle=False, progress=False)
    np.testing.assert_array_equal(a.weights[0], b.weights[0])


def test_straight_through_trains_step_units():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    net = pf.MLP([2, 16, 2], activation="step", seed=0, straight_through=True)
    before = net.loss(x, y)
    net.fit(x, y, optimizer=pf.SGD(lr=0.1), epochs=30, seed=0, progress=False)
    assert net.loss(x, y) < 0.7 * before
    assert net.accuracy(x, y) > 0.9


def test_progress_lines_are_printed(capsys):
    x, y = _blobs(20)
    pf.MLP([2, 4, 3], seed=0).fit(x, y, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "loss" in err
