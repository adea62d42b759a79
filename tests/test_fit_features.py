"""fit's training features: learning-rate schedules, early stopping, sample and class weights, reproducibility,
and what a diverging run leaves behind."""

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import schedules


def _blobs(n=120, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0], [2.0, 2.0]])[:classes]
    y = rng.integers(0, classes, n)
    x = centers[y] + 0.5 * rng.standard_normal((n, 2))
    return x, y


def _params(net):
    return [p.copy() for p in net.weights + net.biases]


def _assert_same(a, b):
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)


# ---- learning-rate schedules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule,expected",
    [
        ("constant", lambda e, seen: 0.1),
        (schedules.StepDecay(step_size=2, gamma=0.5), lambda e, seen: 0.1 * 0.5 ** ((e - 1) // 2)),
        (schedules.ExponentialDecay(gamma=0.9), lambda e, seen: 0.1 * 0.9 ** (e - 1)),
        (schedules.InverseScaling(power_t=0.5), lambda e, seen: 0.1 / (seen + 1) ** 0.5),
    ],
)
def test_schedules_set_each_epochs_rate(schedule, expected):
    x, y = _blobs(60)
    net = pf.MLP([2, 8, 3], seed=0)
    opt = pf.SGD(lr=0.1)
    hist = net.fit(x, y, optimizer=opt, epochs=6, batch_size=16, lr_schedule=schedule, progress=False)
    want = [expected(e, 60 * (e - 1)) for e in range(1, 7)]
    np.testing.assert_allclose(hist["lr"], want, rtol=1e-12)
    assert opt.lr == 0.1, "the schedule must change the rate for this fit only"


def test_a_decayed_rate_really_trains_slower():
    # The logged rate is the one the kernels used: with an exponential decay to almost zero the weights stop moving.
    x, y = _blobs(60)
    net = pf.MLP([2, 8, 3], seed=0, dtype=np.float64)
    net.fit(x, y, optimizer=pf.SGD(lr=0.1), epochs=3, batch_size=16, seed=0,
            lr_schedule=schedules.ExponentialDecay(gamma=1e-12), progress=False)
    after3 = _params(net)
    net2 = pf.MLP([2, 8, 3], seed=0, dtype=np.float64)
    net2.fit(x, y, optimizer=pf.SGD(lr=0.1), epochs=1, batch_size=16, seed=0, progress=False)
    # Epoch 1 ran at 0.1, epochs 2 and 3 at 1e-13 and 1e-25: the result is epoch 1's to ~1e-10.
    for p, q in zip(after3, _params(net2)):
        np.testing.assert_allclose(p, q, atol=1e-9)


def test_reduce_on_plateau_counts_like_scikit_learn():
    s = schedules.ReduceOnPlateau(factor=0.5, patience=2, tol=0.1, min_lr=0.01)
    s.start(1.0)
    lrs = [s.after_epoch(e, {"loss": v}, 0) for e, v in enumerate([5.0, 4.0, 3.95, 3.9, 3.0, 3.0, 3.0], 1)]
    # 4.0 improves on 5.0; 3.95 and 3.9 do not by more than tol → halve; 3.0 improves; two more flat → halve.
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_reduce_on_plateau_stop_ends_fit_at_the_smallest_rate():
    x, y = _blobs(60)
    net = pf.MLP([2, 8, 3], seed=0)
    sched = schedules.ReduceOnPlateau(factor=0.1, patience=1, tol=10.0, min_lr=1e-3, stop=True)
    hist = net.fit(x, y, optimizer=pf.SGD(lr=0.1), epochs=50, lr_schedule=sched, progress=False)
    # tol=10: only the first epoch counts as an improvement (on +inf); then 0.1 → 0.01 → 0.001, and the
    # plateau at 0.001 stops training.
    assert hist.stop_reason == "lr_plateau"
    assert hist["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert len(hist) == 4


def test_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match="gamma"):
        schedules.StepDecay(gamma=0)
    with pytest.raises(ValueError, match="patience"):
        schedules.ReduceOnPlateau(patience=0)
    with pytest.raises(ValueError, match="monitor"):
        schedules.ReduceOnPlateau(monitor="accuracy")
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        pf.MLP([2, 3]).fit(np.zeros((4, 2)), np.array([0, 1, 2, 0]), lr_schedule="cosine", progress=False)
    with pytest.raises(ValueError, match="val_loss"):
        pf.MLP([2, 3]).fit(np.zeros((4, 2)), np.array([0, 1, 2, 0]), progress=False,
                           lr_schedule=schedules.ReduceOnPlateau(monitor="val_loss"))


# ---- early stopping ------------------------------------------------------------------------------------------


def test_early_stopping_restores_the_best_epochs_weights():
    x, y = _blobs(80)
    net = pf.MLP([2, 8, 3], seed=0)
    scores = iter([0.1, 0.5, 0.9, 0.7, 0.6, 0.8, 0.2, 0.1])  # best at epoch 3, no better after it
    seen = {}

    def snapshot(epoch, logs):
        seen[epoch] = _params(net)

    hist = net.fit(x, y, optimizer=pf.SGD(lr=0.1), epochs=8, early_stopping=True, patience=3,
                   monitor=lambda n: next(scores), callbacks=[snapshot], seed=0, progress=False)
    assert hist.stop_reason == "early_stopping"
    assert len(hist) == 6 and hist.best_epoch == 3
    assert hist["val_score"] == [0.1, 0.5, 0.9, 0.7, 0.6, 0.8]
    _assert_same(_params(net), seen[3])


def test_early_stopping_on_validation_loss_ends_at_its_minimum():
    # Few noisy samples and a big network overfit: the validation loss turns up and training stops.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 5))
    y = (x[:, 0] + 0.8 * rng.standard_normal(60) > 0).astype(np.int64)
    net = pf.MLP([5, 128, 128, 2], seed=0, dtype=np.float64)
    hist = net.fit(x, y, optimizer=pf.Adam(lr=0.01), epochs=300, batch_size=8, early_stopping=True,
                   validation_fraction=0.3, patience=10, seed=0, progress=False)
    assert hist.stop_reason == "early_stopping"
    best = int(np.argmin(hist["val_loss"]))
    assert hist.best_epoch == best + 1 and len(hist) >= best + 1 + 10
    # The weights are the best epoch's: their validation loss is the minimum logged.
    _, (xv, yv, _) = pf.train._split_validation(net, *_prepared(net, x, y), None, "cross_entropy", 0.3, 0)
    assert net.loss(xv, yv) == pytest.approx(hist["val_loss"][best], rel=1e-12)


def _prepared(net, x, y):
    xp, yp, _ = net._prepare(x, y, None)
    return xp, yp


def test_validation_split_is_stratified_and_disjoint():
    x, y = _blobs(200)
    net = pf.MLP([2, 4, 3])
    xp, yp = _prepared(net, x, y)
    (xt, _, _), (xv, yv, _) = pf.train._split_validation(net, xp, yp, None, "cross_entropy", 0.25, 3)
    assert len(xt) + len(xv) == 200 and len(xv) == 50
    rows = {tuple(r) for r in xt.tolist()}
    assert not any(tuple(r) in rows for r in xv.tolist())
    counts = np.bincount(np.argmax(yp, 1), minlength=3)
    got = np.bincount(np.argmax(yv, 1), minlength=3)
    assert np.all(np.abs(got - counts * 0.25) <= 1.5)


def test_early_stopping_rejects_bad_settings():
    x, y = _blobs(20)
    net = pf.MLP([2, 4, 3])
    with pytest.raises(ValueError, match="validation_fraction"):
        net.fit(x, y, early_stopping=True, validation_fraction=1.5, progress=False)
    with pytest.raises(ValueError, match="monitor"):
        net.fit(x, y, early_stopping=True, monitor="accuracy", progress=False)
    with pytest.raises(ValueError, match="patience"):
        net.fit(x, y, early_stopping=True, patience=0, progress=False)


# ---- sample and class weights --------------------------------------------------------------------------------


def test_unit_weights_equal_no_weights():
    x, y = _blobs(50)
    a = pf.MLP([2, 6, 3], seed=0, dtype=np.float64)
    b = a.copy()
    ha = a.fit(x, y, optimizer=pf.SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=8, seed=1, progress=False)
    hb = b.fit(x, y, optimizer=pf.SGD(lr=0.1, momentum=0.9), epochs=3, batch_size=8, seed=1, progress=False,
               sample_weight=np.ones(50))
    for p, q in zip(_params(a), _params(b)):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-12)


def test_zero_weights_equal_dropping_rows_and_integer_weights_equal_repeating_them():
    x, y = _blobs(30)
    w = np.tile([0.0, 1.0, 2.0], 10)
    net = pf.MLP([2, 6, 3], seed=0, dtype=np.float64)
    weighted, dropped = net.copy(), net.copy()
    h1 = weighted.fit(x, y, optimizer=pf.SGD(lr=0.2), epochs=4, batch_size="full", shuffle=False, progress=False,
                      sample_weight=w)
    rows = np.repeat(np.arange(30), w.astype(int))
    h2 = dropped.fit(x[rows], y[rows], optimizer=pf.SGD(lr=0.2), epochs=4, batch_size="full", shuffle=False,
                     progress=False)
    for p, q in zip(_params(weighted), _params(dropped)):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-10)


def test_class_weight_balanced_equals_its_sample_weights():
    x, y = _blobs(90)
    y[:60] = 0  # imbalanced
    counts = np.bincount(y, minlength=3)
    sw = (90 / (3 * counts))[y]
    a = pf.MLP([2, 6, 3], seed=0, dtype=np.float64)
    b, c = a.copy(), a.copy()
    kw = dict(optimizer=pf.SGD(lr=0.1), epochs=2, batch_size=10, seed=0, progress=False)
    a.fit(x, y, class_weight="balanced", **kw)
    b.fit(x, y, sample_weight=sw, **kw)
    c.fit(x, y, class_weight={0: 90 / (3 * counts[0]), 1: 90 / (3 * counts[1]), 2: 90 / (3 * counts[2])}, **kw)
    for p, q, r in zip(_params(a), _params(b), _params(c)):
        np.testing.assert_allclose(p, q, rtol=1e-12)
        np.testing.assert_allclose(p, r, rtol=1e-12)


def test_class_weight_shifts_the_decision_towards_the_heavy_class():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 2))
    y = (x[:, 0] + 1.5 * rng.standard_normal(300) > 0).astype(np.int64)  # overlapping: weights move the boundary
    plain = pf.MLP([2, 8, 2], seed=0)
    heavy = plain.copy()
    kw = dict(optimizer=pf.SGD(lr=0.1, momentum=0.9), epochs=30, batch_size=16, seed=0, progress=False)
    plain.fit(x, y, **kw)
    heavy.fit(x, y, class_weight={0: 1.0, 1: 20.0}, **kw)
    assert (heavy.predict_labels(x) == 1).sum() > (plain.predict_labels(x) == 1).sum() + 30


def test_weighted_validation_loss_and_accuracy():
    x, y = _blobs(60)
    net = pf.MLP([2, 6, 3], seed=0, dtype=np.float64)
    sw = np.linspace(0.0, 2.0, 20)
    hist = net.fit(x[:40], y[:40], epochs=1, progress=False, validation_data=(x[40:], y[40:], sw))
    f = net.forward(x[40:])
    per_row = -np.log(f[np.arange(20), y[40:]])
    assert hist["val_loss"][0] == pytest.approx(np.average(per_row, weights=sw), rel=1e-12)
    assert hist["val_accuracy"][0] == pytest.approx(np.average(np.argmax(f, 1) == y[40:], weights=sw))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sample_weight": np.ones(5)}, "shape"),
        ({"sample_weight": -np.ones(20)}, ">= 0"),
        ({"sample_weight": np.full(20, np.nan)}, "finite"),
        ({"sample_weight": np.zeros(20)}, "all zero"),
        ({"class_weight": "even"}, "balanced"),
        ({"class_weight": {7: 1.0}}, "class indices"),
        ({"class_weight": {0: -1.0}}, ">= 0"),
    ],
)
def test_bad_weights_are_refused(kwargs, match):
    x, y = _blobs(20)
    with pytest.raises(ValueError, match=match):
        pf.MLP([2, 4, 3]).fit(x, y, progress=False, **kwargs)


def test_class_weight_needs_classes():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="class_weight"):
        pf.MLP([2, 1], output_activation="linear").fit(rng.standard_normal((8, 2)), rng.standard_normal(8),
                                                          class_weight="balanced", progress=False)


# ---- reproducibility and divergence ---------------------------------------------------------------------------

_REPRO = """
import hashlib, numpy as np, pyfastnn as pf
pf.set_num_threads({threads})
x, y = pf.datasets.load_digits(dtype="{dtype}")
net = pf.MLP([64, 32, 10], seed=3, dtype="{dtype}")
net.fit(x[:600], y[:600], optimizer=pf.Adam(lr=1e-3), epochs=3, batch_size={batch}, seed=5, progress=False)
print(hashlib.sha256(b"".join(p.tobytes() for p in net.weights + net.biases)).hexdigest())
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_same_bits(run_python, session_backend, dtype, threads):
    runs = [
        run_python(_REPRO.format(threads=threads, dtype=dtype, batch=batch), PYFASTNN_BACKEND=session_backend)
        for batch in (32, 32, 1)
    ]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert runs[0].stdout == runs[1].stdout, "the same seed gave different weights in two processes"
    assert runs[0].stdout != runs[2].stdout  # the hash does depend on the training


def test_same_seed_same_bits_in_process():
    x, y = pf.datasets.load_digits()
    nets = [pf.MLP([64, 32, 10], seed=1) for _ in range(2)]
    for net in nets:
        net.fit(x[:500], y[:500], optimizer=pf.SGD(lr=0.05, momentum=0.9), epochs=2, batch_size=16, seed=2,
                early_stopping=True, progress=False)
    _assert_same(_params(nets[0]), _params(nets[1]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_keeps_the_last_finite_epochs_weights():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3))
    y = rng.standard_normal((32, 1))
    net = pf.MLP([3, 8, 1], activation="tanh", output_activation="linear", dtype=np.float64, seed=0)
    ends = []
    # The rate grows ×1e6 every epoch (a schedule with gamma > 1 is refused, so a callback raises it).
    opt = pf.SGD(lr=1e-3)

    def grow(epoch, logs):
        ends.append(_params(net))
        opt.lr *= 1e6

    with pytest.raises(FloatingPointError) as info:
        net.fit(x, y, optimizer=opt, epochs=50, batch_size=8, callbacks=[grow], progress=False)
    message = str(info.value)
    assert f"epoch {len(ends) + 1}" in message and "smaller learning rate" in message
    assert ends, "diverged in the first epoch; the test wants a finite epoch first"
    _assert_same(_params(net), ends[-1])


def test_train_step_takes_sample_weights():
    x, y = _blobs(12)
    w = np.tile([0.0, 1.0, 3.0], 4)
    a = pf.MLP([2, 5, 3], seed=0, dtype=np.float64)
    b = a.copy()
    la = a.train_step(x, y, optimizer=pf.SGD(lr=0.3), sample_weight=w)
    rows = np.repeat(np.arange(12), w.astype(int))
    lb = b.train_step(x[rows], y[rows], optimizer=pf.SGD(lr=0.3))
    assert la == pytest.approx(lb, rel=1e-12)
    for p, q in zip(_params(a), _params(b)):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="all zero"):
        a.train_step(x, y, sample_weight=np.zeros(12))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_train_step_restores_the_optimizer_state_too():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3))
    y = rng.standard_normal((8, 1))
    net = pf.MLP([3, 4, 1], activation="tanh", output_activation="linear", dtype=np.float32, seed=0)
    opt = pf.SGD(lr=1e-3, momentum=0.9)
    net.train_step(x, y, optimizer=opt)
    before = _params(net) + [v.copy() for v in opt.state_arrays()]
    opt.lr = 1e36
    with pytest.raises(FloatingPointError, match="not updated"):
        for _ in range(10):
            net.train_step(x, y, optimizer=opt)
            before = _params(net) + [v.copy() for v in opt.state_arrays()]
    _assert_same(_params(net) + opt.state_arrays(), before)
