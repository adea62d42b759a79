"""train_step through the native plan (pyfastnn/_train_step.py, cpp backend): bit-identical to the general
path over many steps, re-planned whenever what the plan holds changes, and with every failure leaving the
parameters, the optimizer state and its step count exactly as they were."""

import math
import threading

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import network

OPTIMIZERS = {
    "sgd": lambda: pf.SGD(lr=0.05),
    "sgd-decay": lambda: pf.SGD(lr=0.05, weight_decay=1e-3),
    "momentum": lambda: pf.SGD(lr=0.02, momentum=0.9),
    "nesterov": lambda: pf.SGD(lr=0.02, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: pf.Adam(lr=0.01),
    "adam-decay": lambda: pf.Adam(lr=0.01, weight_decay=1e-3),
}


@pytest.fixture(autouse=True)
def _cpp_only():
    if "cpp" not in [name for name, info in pf.backends().items() if info["available"]]:
        pytest.skip("the cpp backend is not built")
    with pf.use_backend("cpp"):
        yield


@pytest.fixture
def general(monkeypatch):
    """Run train_step on the general path only (the path of every call before the plan existed)."""

    def use(on):
        if on:
            monkeypatch.setattr(network, "fast_train_step", lambda *args: None)
        else:
            monkeypatch.undo()

    return use


def data(rows=256, n_in=12, n_out=4, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, n_in)).astype(dtype), rng.integers(0, n_out, rows)


def state_of(net, opt):
    """Everything a step may change, copied: parameters, optimizer state arrays and step count."""
    return ([a.copy() for a in net.weights + net.biases + opt.state_arrays()], opt._step())


def assert_same(a, b):
    (arrays_a, step_a), (arrays_b, step_b) = a, b
    assert step_a == step_b
    assert len(arrays_a) == len(arrays_b)
    for p, q in zip(arrays_a, arrays_b):
        assert p.dtype == q.dtype and p.shape == q.shape
        assert p.tobytes() == q.tobytes()  # bit for bit (NaN included)


def run(script, general_path, general, seed=0, sizes=(12, 16, 4), dtype=np.float32, opt="adam"):
    """Apply script(net, opt) on a fresh network; returns (losses, state)."""
    general(general_path)
    try:
        net = pf.MLP(list(sizes), seed=seed, dtype=dtype)
        optimizer = OPTIMIZERS[opt]()
        losses = script(net, optimizer)
        if not general_path:
            assert net.__dict__.get("_step_plan") is not None, "the plan was never used"
        return losses, state_of(net, optimizer)
    finally:
        general(False)


def both(script, general, **kwargs):
    fast_losses, fast_state = run(script, False, general, **kwargs)
    ref_losses, ref_state = run(script, True, general, **kwargs)
    assert fast_losses == ref_losses
    assert_same(fast_state, ref_state)
    return fast_losses


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("batch", [1, 3, 32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plan_and_general_path_agree_bit_for_bit(general, opt, batch, dtype):
    x, y = data(dtype=dtype)

    def script(net, optimizer):
        return [net.train_step(x[i:i + batch], y[i:i + batch], optimizer=optimizer)
                for i in range(0, 200, batch)]

    losses = both(script, general, opt=opt, dtype=dtype)
    assert all(math.isfinite(v) for v in losses)


@pytest.mark.parametrize("loss", ["squared_error", "binary_cross_entropy", "hinge", "cross_entropy"])
def test_every_loss_and_target_form_agrees(general, loss):
    x, labels = data()
    if loss == "cross_entropy":
        targets = np.eye(4, dtype=np.float32)[labels] * 0.5 + 0.125  # probabilities, not labels
        sizes, act = (12, 16, 4), "softmax"
    elif loss == "hinge":
        targets = np.where(labels[:, None] % 2 == 0, 1.0, -1.0).astype(np.float32)
        sizes, act = (12, 16, 1), "linear"
    elif loss == "binary_cross_entropy":
        targets = (labels[:, None] % 2).astype(np.float32)
        sizes, act = (12, 16, 1), "sigmoid"
    else:
        targets = x[:, :3] * 2
        sizes, act = (12, 16, 3), "tanh"

    def script(net, optimizer):
        net.activations[-1] = act
        return [net.train_step(x[i:i + 8], targets[i:i + 8], loss=loss, optimizer=optimizer)
                for i in range(0, 160, 8)]

    both(script, general, sizes=sizes, opt="momentum")


def test_sample_weights_agree(general):
    x, y = data()
    w = np.random.default_rng(1).uniform(0, 2, len(x))
    w[5] = 0

    def script(net, optimizer):
        return [net.train_step(x[i:i + 4], y[i:i + 4], optimizer=optimizer, sample_weight=w[i:i + 4])
                for i in range(0, 120, 4)]

    both(script, general, opt="adam")


def test_what_the_plan_holds_may_change_between_steps(general):
    """Each change that the plan must notice, between steps of one loop: the results stay the general
    path's."""
    x, y = data()
    x64 = x.astype(np.float64)

    def script(net, optimizer):
        losses = []
        other = pf.SGD(lr=0.02, momentum=0.5)
        for i in range(60):
            xb, yb = x[i:i + 4], y[i:i + 4]
            if i == 5:
                net.weights[0] = net.weights[0] * 0.5  # a new array replaces a parameter
            if i == 10:
                net.biases[1] = np.full_like(net.biases[1], 0.1)
            if i == 15:
                optimizer.lr = optimizer.lr / 2  # what a schedule does
            if i == 20:
                optimizer.beta1 = 0.8  # a hyper-parameter the plan holds
            if 25 <= i < 30:
                losses.append(net.train_step(xb, yb, optimizer=other))  # another optimizer, then back
                continue
            if i == 30:
                optimizer.reset()  # new state arrays
            if i == 35:
                xb, yb = x[i:i + 7], y[i:i + 7]  # another batch size
            if i == 40:
                xb = x64[i:i + 4]  # another dtype: converted by the general path
            if i == 45:
                net.weights[1][:] *= 1.5  # written in place
            if i == 50:
                losses.append(net.train_step(xb, yb, optimizer="adam"))  # a named optimizer, made once
                losses.append(net.train_step(xb, yb, optimizer="ADAM"))
                continue
            if i == 55:
                net.weights = [w.copy() for w in net.weights]  # a new list
            loss = "cross_entropy" if i % 2 else None
            losses.append(net.train_step(xb, yb, loss=loss, optimizer=optimizer))
        return losses

    both(script, general, opt="adam")


def test_a_replaced_parameter_is_checked_again(general):
    x, y = data()
    net = pf.MLP([12, 16, 4], seed=0)
    net.train_step(x[:4], y[:4])
    net.train_step(x[:4], y[:4])
    net.weights[0] = np.zeros((16, 13), dtype=np.float32)
    with pytest.raises(ValueError, match=r"weights\[0\] must be a float32 array of shape \(16, 12\)"):
        net.train_step(x[:4], y[:4])
    net.weights[0] = np.asfortranarray(np.zeros((16, 12), dtype=np.float32)).T.copy().T  # another layout
    net.train_step(x[:4], y[:4])
    net.weights[1].flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        net.train_step(x[:4], y[:4])


# ---- failures leave everything as it was ------------------------------------------------------------------


def failing_calls(x, y):
    """(name, call(net, opt)) of train_steps that must fail, each leaving everything unchanged."""
    x_nan = x[:4].copy()
    x_nan[1, 2] = np.nan
    y_out = y[:4].copy()
    y_out[2] = 7

    def exploding(net, opt):
        saved = net.weights[-1].copy()
        net.weights[-1][:] *= 1e5  # the loss jumps far above the first step's
        try:
            net.train_step(x[:4], y[:4], optimizer=opt)
        finally:
            np.copyto(net.weights[-1], saved)

    def overflowing(net, opt):
        lr = opt.lr
        opt.lr = 1e300  # a finite loss, an update beyond float32
        try:
            net.train_step(x[:4], y[:4], optimizer=opt)
        finally:
            opt.lr = lr

    def overflowing_in_range(net, opt):
        lr = opt.lr
        opt.lr = 3.4e38  # a rate float32 holds: any gradient above 1 overflows
        try:
            net.train_step(x[:4], y[:4], optimizer=opt)
        finally:
            opt.lr = lr

    def nan_weight(net, opt):
        saved = net.weights[0][0, 0]
        net.weights[0][0, 0] = np.nan
        try:
            net.train_step(x[:4], y[:4], optimizer=opt)
        finally:
            net.weights[0][0, 0] = saved

    return [
        ("nan-x", lambda net, opt: net.train_step(x_nan, y[:4], optimizer=opt)),
        ("label-out-of-range", lambda net, opt: net.train_step(x[:4], y_out, optimizer=opt)),
        ("negative-label", lambda net, opt: net.train_step(x[:4], -y[:4] - 1, optimizer=opt)),
        ("wrong-features", lambda net, opt: net.train_step(x[:4, :5], y[:4], optimizer=opt)),
        ("bad-sample-weight", lambda net, opt: net.train_step(x[:4], y[:4], optimizer=opt,
                                                              sample_weight=[1, -1, 1, 1])),
        ("x-aliases-weights", lambda net, opt: net.train_step(net.weights[0][:4], y[:4], optimizer=opt)),
        ("exploding", exploding),
        ("overflowing", overflowing),
        ("overflowing-in-range", overflowing_in_range),
        ("nan-weight", nan_weight),
    ]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov", "adam"])
def test_every_failure_leaves_parameters_and_state_bit_identical(general, opt):
    x, y = data()
    x = x[:, :12]
    for name, call in failing_calls(x, y):
        if name == "overflowing-in-range" and opt == "adam":
            continue  # Adam's step is about lr per weight: 3.4e38 stays finite
        outcomes = []
        for general_path in (False, True):
            general(general_path)
            try:
                net = pf.MLP([12, 16, 4], seed=0)
                optimizer = OPTIMIZERS[opt]()
                for i in range(0, 12, 4):
                    net.train_step(x[i:i + 4], y[i:i + 4], optimizer=optimizer)
                before = state_of(net, optimizer)
                with pytest.raises((ValueError, TypeError, FloatingPointError)) as info:
                    call(net, optimizer)
                assert_same(state_of(net, optimizer), before)
                diverged = ("exploding", "overflowing", "overflowing-in-range", "nan-weight")
                assert name not in diverged or isinstance(info.value, FloatingPointError)
                assert not name.startswith("overflowing") or "overflowed" in str(info.value)
                assert name != "exploding" or "more than 1000 times" in str(info.value)
                outcomes.append((type(info.value), str(info.value)))
                # The next step is the one the failure did not disturb.
                outcomes.append(net.train_step(x[12:16], y[12:16], optimizer=optimizer))
                outcomes.append(state_of(net, optimizer))
            finally:
                general(False)
        fast, ref = outcomes[:3], outcomes[3:]
        assert fast[0] == ref[0], f"{name}: the plan raised {fast[0]}, the general path {ref[0]}"
        assert fast[1] == ref[1], name
        assert_same(fast[2], ref[2])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("scale", [1.0, 2.0 ** 21, 1e30])
def test_large_weights_take_the_checked_update(general, scale):
    """Plain SGD skips the copy of the parameters only when a bound proves the update finite (every weight
    below 2^20 among others); larger weights take the copy and the check, and give the same results."""
    x, y = data()

    def script(net, optimizer):
        net.weights[0][0, 0] = scale
        losses = []
        for i in range(0, 40, 4):
            try:
                losses.append(net.train_step(x[i:i + 4], y[i:i + 4], optimizer=optimizer))
            except FloatingPointError as exc:
                losses.append(str(exc))
        return losses

    both(script, general, opt="sgd")


@pytest.mark.parametrize("sizes, threads", [((70, 40, 5), 1), ((300, 260, 3), 2)])
@pytest.mark.parametrize("rows", [1, 5, 9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_sgd_copies_exactly_when_a_weight_reaches_2_20(sizes, threads, rows, dtype):
    """Plain SGD skips the copy only while every |weight| < 2^20; on small batches max |W| comes from the
    forward pass (per thread when W's rows are split), larger ones read W. Each weight decides it: one at the
    first, middle or last row of a layer (where two threads' halves meet) and at its first, middle or last
    column (in the dot products' tail) makes the step copy, so that undo() finds something to put back. (Two
    threads split W only while the machine is not oversubscribed; otherwise one thread runs both halves.)"""
    previous = pf.get_num_threads()
    pf.set_num_threads(threads)
    try:
        rng = np.random.default_rng(1)
        net = pf.MLP(list(sizes), seed=0, dtype=dtype)
        opt = pf.SGD(lr=0.01)
        n_in, n_hidden = sizes[0], sizes[1]
        x = rng.standard_normal((rows, n_in)).astype(dtype)
        y = rng.integers(0, sizes[2], rows)
        cols = {0: [0, n_in // 2, n_in - 1], 1: [0, n_hidden // 2, n_hidden - 1]}
        # Inputs and hidden units the big weights meet are zero, so the loss and the update stay as they are.
        x[:, cols[0]] = 0
        net.weights[0][cols[1], :] = 0
        net.biases[0][cols[1]] = -1
        net.train_step(x, y, optimizer=opt)  # binds the optimizer (general path)
        net.train_step(x, y, optimizer=opt)
        plan = net._step_plan
        assert plan.native.undo() is False  # small weights: no copy was taken
        for layer, w in enumerate(net.weights):
            n_out = w.shape[0]
            for i in sorted({0, n_out // 2 - 1, n_out // 2, n_out - 1}):
                for j, sign in zip(cols[layer], (1, -1, 1)):
                    kept = w[i, j]
                    w[i, j] = sign * 2.0 ** 20
                    before = [a.copy() for a in net.weights + net.biases]
                    net.train_step(x, y, optimizer=opt)
                    assert net._step_plan is plan
                    assert plan.native.undo() is True, (layer, i, j)
                    for a, b in zip(net.weights + net.biases, before):
                        assert a.tobytes() == b.tobytes()
                    w[i, j] = np.nextafter(dtype(2.0 ** 20), dtype(0)) * sign  # the largest below
                    net.train_step(x, y, optimizer=opt)
                    assert plan.native.undo() is False, (layer, i, j)
                    w[i, j] = kept
    finally:
        pf.set_num_threads(previous)


def test_a_failed_first_call_leaves_a_shared_optimizer_as_it_was():
    """An optimizer bound to one network, then called on another with bad input: its state stays the first
    network's (it is made anew only by a step that passes the checks)."""
    x, y = data()
    a, b = pf.MLP([12, 16, 4], seed=0), pf.MLP([12, 16, 4], seed=1)
    opt = pf.SGD(0.05, momentum=0.9)
    for i in range(0, 12, 4):
        a.train_step(x[i:i + 4], y[i:i + 4], optimizer=opt)
    before = state_of(a, opt)
    bad = x[:4].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        b.train_step(bad, y[:4], optimizer=opt)
    assert_same(state_of(a, opt), before)


def test_an_explosion_below_the_null_loss_is_no_explosion(general):
    """The plan refuses a loss above the limit set by the first step's; the null-loss rule then lets it pass,
    and the step is applied as the general path applies it."""
    x, y = data()

    def script(net, optimizer):
        first = net.train_step(x[:4], y[:4], optimizer=optimizer)
        net._first_step_loss = first * 1e-6  # a first loss far below chance level: its limit is too
        rest = [net.train_step(x[i:i + 4], y[i:i + 4], optimizer=optimizer) for i in range(4, 40, 4)]
        return [first, *rest]

    both(script, general, opt="sgd")


def test_an_interrupt_after_the_native_step_undoes_it(monkeypatch):
    """Ctrl-C arriving once the native step has returned, before train_step has recorded it (the Adam step
    count): the update is undone, so the network and the optimizer agree."""
    from pyfastnn import _backend

    kernels = _backend.kernels()
    native = kernels.step_plan

    class Interrupted:
        def __init__(self, *args):
            self.plan = native(*args)

        def step(self, *args):
            self.plan.step(*args)
            raise KeyboardInterrupt

        def undo(self):
            return self.plan.undo()

    x, y = data()
    net, opt = pf.MLP([12, 16, 4], seed=0), pf.Adam(0.01)
    net.train_step(x[:4], y[:4], optimizer=opt)
    before = state_of(net, opt)
    monkeypatch.setattr(kernels, "step_plan", Interrupted)
    net._step_plan = None
    with pytest.raises(KeyboardInterrupt):
        net.train_step(x[4:8], y[4:8], optimizer=opt)
    assert_same(state_of(net, opt), before)


def test_native_plan_checks(general):
    """The plan's own answers: status 4 (not its form) for x and y it does not take, 5 after a replacement."""
    x, y = data()
    net = pf.MLP([12, 16, 4], seed=0)
    opt = pf.SGD(0.1)
    net.train_step(x[:2], y[:2], optimizer=opt)  # the general path binds the new optimizer's state
    assert "_step_plan" not in net.__dict__
    net.train_step(x[:2], y[:2], optimizer=opt)
    plan = net._step_plan.native
    args = (None, 0.1, 0, math.inf)
    w, b = net.weights, net.biases
    assert plan.step(w, b, x[:2], y[:2].astype(np.int32), *args)[0] == 4
    assert plan.step(w, b, x[:3], y[:3], *args)[0] == 4
    assert plan.step(w, b, np.asfortranarray(x[:2]), y[:2], *args)[0] == 4
    assert plan.step(w, b, x[:2], np.eye(4, dtype=np.float32)[y[:2]] * -1, *args)[0] == 4
    assert plan.step(w, b, x[:2], y[:2], np.array([1.0, np.inf], dtype=np.float32), 0.1, 0, math.inf)[0] == 4
    assert plan.step(list(w), b, x[:2], y[:2], *args)[0] == 0  # a new list of the same arrays
    assert plan.step([w[0].copy(), w[1]], b, x[:2], y[:2], *args)[0] == 5
    assert plan.step(w, b[:1], x[:2], y[:2], *args)[0] == 5
    status, value, _, done = plan.step(w, b, x[:2], y[:2], None, 0.1, 0, 0.0)
    assert status == 2 and value > 0 and not done


def test_a_reader_never_sees_half_a_step():
    """Inference in another thread while train_step runs through the plan sees the weights of a step
    boundary: every output it gets is that of some recorded boundary."""
    x, y = data(rows=512)
    net = pf.MLP([12, 64, 4], seed=0)
    opt = pf.SGD(lr=0.02, momentum=0.9)
    probe = x[:3]
    states, outputs = [], []
    done = threading.Event()

    def infer():
        with pf.use_backend("cpp"):  # the choice is per thread
            while not done.is_set():
                outputs.append(net.predict(probe))

    reader = threading.Thread(target=infer)
    states.append([p.copy() for p in net.weights + net.biases])
    reader.start()
    try:
        for i in range(400):
            net.train_step(x[i:i + 1], y[i:i + 1], optimizer=opt)
            states.append([p.copy() for p in net.weights + net.biases])
    finally:
        done.set()
        reader.join()
    assert outputs
    expected = []
    for state in states:
        ref = net.copy()
        ref.weights, ref.biases = state[:2], state[2:]
        expected.append(ref.predict(probe))
    expected = np.stack(expected)
    wrong = [k for k, out in enumerate(outputs) if not np.any(np.all(expected == out, axis=(1, 2)))]
    assert not wrong, f"{len(wrong)} of {len(outputs)} predictions match no step boundary"
