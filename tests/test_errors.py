"""Bad input at the public API: a clear ValueError/TypeError that says what was expected and what was given,
never a crash, never a half-updated network."""

import os

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn._backend import BACKENDS
from pyfastnn.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from pyfastnn.losses import LOSSES

RNG = np.random.default_rng(12345)
X8 = RNG.standard_normal((8, 3))
LABELS8 = np.arange(8) % 3


def make_net(**kw):
    kw.setdefault("seed", 0)
    return pf.MLP(kw.pop("sizes", [3, 4, 3]), **kw)


def snapshot(net):
    """Everything a training step could change: the parameter arrays (by identity and by bytes)."""
    return (
        [id(w) for w in net.weights] + [id(b) for b in net.biases],
        [np.asarray(p).tobytes() for p in net.weights + net.biases],
    )


# Every public entry point that takes (X, y); each is called so that it would succeed on good data.
def _forward(net, x, y):
    return net.forward(x)


def _loss(net, x, y):
    return net.loss(x, y)


def _grads(net, x, y):
    return net.loss_and_gradients(x, y)


def _train_step(net, x, y):
    return net.train_step(x, y, optimizer=pf.SGD(lr=0.1, momentum=0.9))


def _fit(net, x, y):
    return net.fit(x, y, epochs=1, batch_size=4, progress=False)


def _pf_fit(net, x, y):
    return pf.fit(net, x, y, epochs=1, batch_size=4, progress=False)


ENTRY_POINTS = [_forward, _loss, _grads, _train_step, _fit, _pf_fit]
XY_ENTRY_POINTS = ENTRY_POINTS[1:]  # those that also read targets


def check_fails(entry, net, x, y, exc, *words):
    """``entry`` raises ``exc`` whose message contains every word, and leaves the parameters bit-identical."""
    before = snapshot(net)
    with pytest.raises(exc) as info:
        entry(net, x, y)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in message {message!r}"
    assert snapshot(net) == before, "a failed call changed the network"
    return message


def test_entry_points_work_on_good_data():
    # The baseline for every failure test below: the same calls succeed on good data.
    for entry in ENTRY_POINTS:
        net = make_net()
        before = snapshot(net)
        entry(net, X8, LABELS8)
        if entry in (_train_step, _fit, _pf_fit):
            assert snapshot(net)[1] != before[1], f"{entry.__name__} did not train"


class _ArrayLike:
    """Neither an ndarray nor a list: converted through __array__ (as a DataFrame or a tensor is)."""

    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.a, dtype=dtype)


def _seeded_fit(net, x, y):
    return list(net.fit(x, y, epochs=1, batch_size=4, seed=0, progress=False)["loss"])


@pytest.mark.parametrize("entry", [_forward, _loss, _grads, _train_step, _seeded_fit])
def test_array_likes_are_taken_as_their_arrays(entry):
    # X and the targets through __array__ and the buffer protocol give what the arrays themselves give.
    for wrap in (_ArrayLike, memoryview):
        net, ref = make_net(), make_net()
        got = entry(net, wrap(np.ascontiguousarray(X8)), wrap(np.ascontiguousarray(LABELS8)))
        want = entry(ref, X8, LABELS8)
        if entry is _grads:  # (loss, [(dW, db), ...])
            got, want = [got[0], *(a for pair in got[1] for a in pair)], [want[0], *(a for p in want[1] for a in p)]
        for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            np.testing.assert_array_equal(g, w)
        assert snapshot(net)[1] == snapshot(ref)[1]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("bad", ["abc", {1: 2}, 3.0, object()], ids=["str", "dict", "scalar", "object"])
def test_what_is_not_array_like_is_named(entry, bad):
    check_fails(entry, make_net(), bad, LABELS8, TypeError, "X must be", type(bad).__name__)


# ---- bad X --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_wrong_feature_count(entry):
    msg = check_fails(entry, make_net(), RNG.standard_normal((8, 5)), LABELS8, ValueError, "5", "3")
    assert "feature" in msg


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_3d_x(entry):
    check_fails(entry, make_net(), np.zeros((8, 3, 3)), LABELS8, ValueError, "(8, 3, 3)", "2-D")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "bad",
    [
        np.array([["a", "b", "c"]] * 8),
        [["1", "2", "3"]] * 8,
        np.array([[1.0, 2.0, 3.0]] * 8, dtype=object),
        [[1.0, None, 3.0]] * 8,
        np.zeros((8, 3), dtype=np.complex128),
    ],
    ids=["str-array", "str-list", "object-array", "list-with-None", "complex"],
)
def test_non_numeric_x(entry, bad):
    check_fails(entry, make_net(), bad, LABELS8, TypeError, "number")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_x(entry, value):
    x = X8.copy()
    x[3, 1] = value
    check_fails(entry, make_net(), x, LABELS8, ValueError, "NaN or infinity")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_x_that_overflows_the_network_dtype(entry):
    # Finite in float64, infinite once cast to the network's float32.
    x = X8.copy()
    x[0, 0] = 1e39
    net = make_net(dtype=np.float32)
    check_fails(entry, net, x, LABELS8, ValueError, "up to 1e+39, beyond the float32 range")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_empty_x(entry):
    check_fails(entry, make_net(), np.zeros((0, 3)), np.zeros(0, dtype=int), ValueError, "empty")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_ragged_x(entry):
    check_fails(entry, make_net(), [[1.0, 2.0, 3.0], [1.0, 2.0]], [0, 1], ValueError, "rectangular")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("bad", [None, "X", {"a": 1}, 3.0])
def test_x_not_an_array(entry, bad):
    check_fails(entry, make_net(), bad, LABELS8, TypeError, type(bad).__name__)


def test_one_sample_of_the_wrong_length():
    check_fails(_forward, make_net(), np.zeros(4), None, ValueError, "4", "3")


# ---- bad targets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
def test_length_mismatch(entry):
    check_fails(entry, make_net(), X8, LABELS8[:5], ValueError, "8", "5")


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_y(entry, value):
    y = np.eye(3)[LABELS8]
    y[2, 1] = value
    check_fails(entry, make_net(), X8, y, ValueError, "NaN or infinity")


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
@pytest.mark.parametrize(
    "bad", [np.array(["a"] * 8), np.array([0] * 8, dtype=object), np.zeros(8, dtype=complex)]
)
def test_non_numeric_y(entry, bad):
    check_fails(entry, make_net(), X8, bad, TypeError, "numeric")


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
def test_3d_y(entry):
    check_fails(entry, make_net(), X8, np.zeros((8, 3, 1)), ValueError, "(8, 3, 1)")


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
def test_y_with_wrong_number_of_columns(entry):
    check_fails(entry, make_net(), X8, np.zeros((8, 5)), ValueError, "5", "3")


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
@pytest.mark.parametrize("bad", [3, -1, 100])
def test_cross_entropy_label_out_of_range(entry, bad):
    y = LABELS8.copy()
    y[5] = bad
    check_fails(entry, make_net(), X8, y, ValueError, "0..2", str(bad), "index 5")


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
def test_cross_entropy_non_integer_label(entry):
    y = LABELS8.astype(float)
    y[4] = 1.5
    check_fails(entry, make_net(), X8, y, ValueError, "integer", "1.5")


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
def test_cross_entropy_negative_one_hot(entry):
    y = np.eye(3)[LABELS8]
    y[0, 0] = -0.5
    check_fails(entry, make_net(), X8, y, ValueError, "non-negative")


def test_cross_entropy_huge_label_message_shows_the_given_value():
    y = LABELS8.astype(float)
    y[2] = 1e30
    with np.errstate(invalid="ignore"):
        check_fails(_loss, make_net(), X8, y, ValueError, "1e+30")


def _single_output(act="linear", **kw):
    return make_net(sizes=[3, 4, 1], output_activation=act, **kw)


HINGE_CALLS = [
    lambda n, x, y: n.loss(x, y, loss="hinge"),
    lambda n, x, y: n.loss_and_gradients(x, y, loss="hinge"),
    lambda n, x, y: n.train_step(x, y, loss="hinge"),
    lambda n, x, y: n.fit(x, y, loss="hinge", epochs=1, progress=False),
]


@pytest.mark.parametrize("call", HINGE_CALLS, ids=["loss", "loss_and_gradients", "train_step", "fit"])
@pytest.mark.parametrize("bad", [0.0, 0.25, 2.0])
def test_hinge_targets_outside_pm1(call, bad):
    y = np.where(LABELS8 > 0, 1.0, -1.0)
    y[1] = bad
    check_fails(call, _single_output(), X8, y, ValueError, "hinge", "-1", "+1")


def test_hinge_is_the_default_loss_of_a_sign_output():
    y = np.where(LABELS8 > 0, 1.0, -1.0)
    net = _single_output("sign", straight_through=True)
    assert np.isfinite(net.loss(X8, y))
    y[1] = 0.0
    check_fails(_loss, net, X8, y, ValueError, "hinge")


@pytest.mark.parametrize("case", ["hinge", "cross_entropy"])
def test_target_messages_show_the_given_value(case):
    if case == "hinge":
        y = np.where(LABELS8 > 0, 1.0, -1.0)
        y[1] = 0.25
        check_fails(lambda n, x, t: n.loss(x, t, loss="hinge"), _single_output(), X8, y, ValueError, "0.25")
    else:
        y = np.eye(3)[LABELS8]
        y[0, 0] = -0.5
        check_fails(_loss, make_net(), X8, y, ValueError, "-0.5")


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
@pytest.mark.parametrize("bad", [-0.5, 1.5])
def test_bce_targets_outside_unit_interval(entry, bad):
    y = (LABELS8 > 0).astype(float)
    y[6] = bad
    check_fails(
        entry, _single_output("sigmoid"), X8, y, ValueError, "binary_cross_entropy", "[0, 1]", str(bad)
    )


@pytest.mark.parametrize("entry", XY_ENTRY_POINTS)
def test_integer_labels_need_cross_entropy(entry):
    # 1-D targets on a 3-output network with squared_error: not labels, not a column
    net = make_net(output_activation="linear")
    check_fails(entry, net, X8, LABELS8.astype(float), ValueError, "1 output", "3")


def test_y_that_overflows_the_network_dtype():
    y = np.full((8, 1), 1e39)
    with np.errstate(over="ignore"):
        check_fails(_loss, _single_output(dtype=np.float32), X8, y, ValueError, "NaN or infinity")


def test_ragged_y_message():
    check_fails(_loss, make_net(), X8, [[1, 0, 0]] * 7 + [[1]], ValueError, "targets")


# ---- names --------------------------------------------------------------------------------------------------


def _lists(message, names):
    for name in names:
        assert name in message, f"valid name {name!r} missing from {message!r}"


def test_unknown_activation_lists_valid_names():
    with pytest.raises(ValueError, match="gelu") as info:
        pf.MLP([3, 4, 2], activation="gelu")
    _lists(str(info.value), HIDDEN_ACTIVATIONS)
    with pytest.raises(ValueError, match="gelu") as info:
        pf.MLP([3, 4, 2], activation=["gelu"])
    _lists(str(info.value), HIDDEN_ACTIVATIONS)
    with pytest.raises(ValueError, match="swish") as info:
        pf.MLP([3, 4, 2], output_activation="swish")
    _lists(str(info.value), ACTIVATIONS)
    with pytest.raises(TypeError, match="activation"):
        pf.MLP([3, 4, 2], activation=None)


def test_unknown_loss_lists_valid_names():
    net = make_net()
    for call in (
        lambda: net.loss(X8, LABELS8, loss="mse"),
        lambda: net.loss_and_gradients(X8, LABELS8, loss="mse"),
        lambda: net.train_step(X8, LABELS8, loss="mse"),
        lambda: net.fit(X8, LABELS8, loss="mse", progress=False),
    ):
        before = snapshot(net)
        with pytest.raises(ValueError, match="mse") as info:
            call()
        _lists(str(info.value), LOSSES)
        assert snapshot(net) == before
    with pytest.raises(TypeError, match="loss"):
        net.loss(X8, LABELS8, loss=3)


def test_unknown_optimizer_lists_valid_names():
    net = make_net()
    before = snapshot(net)
    for call in (
        lambda: net.train_step(X8, LABELS8, optimizer="rmsprop"),
        lambda: net.fit(X8, LABELS8, optimizer="rmsprop", progress=False),
    ):
        with pytest.raises(ValueError, match="rmsprop") as info:
            call()
        _lists(str(info.value), ["sgd", "adam"])
    with pytest.raises(TypeError, match="Optimizer"):
        net.train_step(X8, LABELS8, optimizer=0.1)
    assert snapshot(net) == before


def test_unknown_init_lists_valid_names():
    with pytest.raises(ValueError, match="xavier") as info:
        pf.MLP([3, 2], init="xavier")
    _lists(str(info.value), ["auto", "he", "glorot"])


def test_unknown_backend_lists_valid_names():
    previous = pf.get_backend()
    for bad in ("nope", "", "NumPy", None, 3):
        with pytest.raises(ValueError) as info:
            pf.set_backend(bad)
        _lists(str(info.value), BACKENDS)
        with pytest.raises(ValueError), pf.use_backend(bad):
            pass
    assert pf.get_backend() == previous


def _unavailable_backends():
    return [name for name, info in pf.backends().items() if not info["available"]]


@pytest.mark.parametrize(
    "name",
    _unavailable_backends()
    or [pytest.param(None, marks=pytest.mark.skip(reason="every backend is available here"))],
)
def test_unavailable_backend_says_why(name):
    previous = pf.get_backend()
    reason = pf.backends()[name]["reason"]
    assert reason
    with pytest.raises(ValueError) as info:
        pf.set_backend(name)
    assert "not available" in str(info.value) and reason in str(info.value)
    with pytest.raises(ValueError, match="not available"), pf.use_backend(name):
        pass
    assert pf.get_backend() == previous




def test_bogus_backend_env_fails_when_the_backend_is_first_needed(run_python):
    r = run_python("import pyfastnn as pf; pf.get_backend()", clear=(), PYFASTNN_BACKEND="bogus")
    assert r.returncode != 0
    assert "PYFASTNN_BACKEND" in r.stderr and "bogus" in r.stderr
    _lists(r.stderr.strip().splitlines()[-1], BACKENDS)


def test_bogus_backend_env_fails_at_import(run_python):
    r = run_python("import pyfastnn", clear=(), PYFASTNN_BACKEND="bogus")
    assert r.returncode != 0
    assert "PYFASTNN_BACKEND" in r.stderr


# ---- optimizers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [pf.SGD, pf.Adam])
@pytest.mark.parametrize("lr", [0, 0.0, -0.1, -1e-12])
def test_lr_not_positive(cls, lr):
    with pytest.raises(ValueError, match="lr") as info:
        cls(lr=lr)
    assert "> 0" in str(info.value) and str(float(lr)) in str(info.value)


@pytest.mark.parametrize("cls", [pf.SGD, pf.Adam])
def test_lr_bad_type_or_not_finite(cls):
    for bad in ("0.1", None, True, [0.1]):
        with pytest.raises(TypeError, match="lr"):
            cls(lr=bad)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="lr"):
            cls(lr=bad)


@pytest.mark.parametrize("momentum", [-0.1, 1.0, 1.5])
def test_momentum_out_of_range(momentum):
    with pytest.raises(ValueError, match="momentum") as info:
        pf.SGD(momentum=momentum)
    assert str(momentum) in str(info.value)


def test_other_optimizer_hyperparameters():
    with pytest.raises(ValueError, match="nesterov"):
        pf.SGD(nesterov=True)
    with pytest.raises(TypeError, match="nesterov"):
        pf.SGD(momentum=0.9, nesterov="yes")
    with pytest.raises(ValueError, match="weight_decay"):
        pf.SGD(weight_decay=-1)
    for kw in ({"beta1": 1.0}, {"beta2": -0.1}, {"eps": 0}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            pf.Adam(**kw)


# ---- fit arguments ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"batch_size": 0}, ValueError, ["batch_size", "0"]),
        ({"batch_size": -3}, ValueError, ["batch_size", "-3"]),
        ({"batch_size": 2.5}, TypeError, ["batch_size", "2.5"]),
        ({"batch_size": "half"}, TypeError, ["batch_size", "half"]),
        ({"epochs": 0}, ValueError, ["epochs", "0"]),
        ({"epochs": -1}, ValueError, ["epochs", "-1"]),
        ({"epochs": 2.0}, TypeError, ["epochs", "2.0"]),
        ({"epochs": True}, TypeError, ["epochs"]),
        ({"tol": -1.0}, ValueError, ["tol", "-1.0"]),
        ({"tol": np.nan}, ValueError, ["tol"]),
        ({"validation_data": X8}, TypeError, ["validation_data", "pair"]),
        ({"validation_data": (X8[:, :2], LABELS8)}, ValueError, ["X_val", "2", "3"]),
        ({"validation_data": (X8, LABELS8[:3])}, ValueError, ["8", "3"]),
        ({"validation_data": (X8, LABELS8 + 5)}, ValueError, ["0..2"]),
        ({"callbacks": [42]}, TypeError, ["callbacks", "42"]),
        ({"optimizer": "rmsprop"}, ValueError, ["rmsprop"]),
    ],
)
def test_fit_rejects_bad_arguments_before_training(kwargs, exc, words):
    check_fails(lambda n, x, y: n.fit(x, y, progress=False, **kwargs), make_net(), X8, LABELS8, exc, *words)


def test_batch_larger_than_the_data_is_clamped():
    big, full = make_net(), make_net()
    hist = big.fit(X8, LABELS8, batch_size=1000, epochs=3, shuffle=False, progress=False)
    full.fit(X8, LABELS8, batch_size=None, epochs=3, shuffle=False, progress=False)
    assert len(hist) == 3 and np.all(np.isfinite(hist["loss"]))
    assert hist["loss"][-1] < hist["loss"][0]
    for a, b in zip(big.weights + big.biases, full.weights + full.biases):
        np.testing.assert_array_equal(a, b)


def test_pf_fit_with_a_non_network():
    with pytest.raises(TypeError, match="MLP"):
        pf.fit("not a network", X8, LABELS8, progress=False)


@pytest.mark.parametrize("seed", [-1, "abc", 1.5])
def test_fit_bad_seed_names_the_argument(seed):
    check_fails(
        lambda n, x, y: n.fit(x, y, seed=seed, progress=False),
        make_net(),
        X8,
        LABELS8,
        (ValueError, TypeError),
        "seed",
    )


# ---- construction -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [[3, 0, 2], [0, 2], [3, 4, 0], [3, -1, 2]])
def test_layer_size_not_positive(sizes):
    with pytest.raises(ValueError, match="at least one neuron") as info:
        pf.MLP(sizes)
    assert str(sizes) in str(info.value)


@pytest.mark.parametrize("sizes", [[3, 2.5, 2], [3, "4", 2], [3, None, 2], [3.0, 2], [True, 2]])
def test_layer_size_not_int(sizes):
    with pytest.raises(TypeError, match="int") as info:
        pf.MLP(sizes)
    assert str(sizes) in str(info.value)


def test_layer_sizes_numpy_ints_are_fine():
    net = pf.MLP(np.array([3, 4, 2]))
    assert net.layer_sizes == [3, 4, 2] and all(type(s) is int for s in net.layer_sizes)


@pytest.mark.parametrize("sizes", [[], [3], (5,)])
def test_too_few_layer_sizes(sizes):
    with pytest.raises(ValueError, match="at least an input and an output"):
        pf.MLP(sizes)


def test_layer_sizes_not_a_sequence():
    with pytest.raises(TypeError, match="layer_sizes.*int"):
        pf.MLP(3)


def test_softmax_only_at_the_output():
    with pytest.raises(ValueError, match="softmax is only allowed at the output"):
        pf.MLP([3, 4, 2], activation="softmax")
    with pytest.raises(ValueError, match="softmax is only allowed at the output"):
        pf.MLP([3, 4, 4, 2], activation=["relu", "softmax"])
    with pytest.raises(ValueError, match="softmax needs at least 2 outputs"):
        pf.MLP([3, 1], output_activation="softmax")
    assert pf.MLP([3, 4, 2], output_activation="softmax").activations == ["relu", "softmax"]


@pytest.mark.parametrize(
    "acts, n_hidden", [(["relu"], 2), (["relu", "tanh", "tanh"], 2), ([], 2), (["relu"], 0)]
)
def test_wrong_number_of_per_layer_activations(acts, n_hidden):
    sizes = [3] + [4] * n_hidden + [2]
    with pytest.raises(ValueError, match="one name per hidden layer") as info:
        pf.MLP(sizes, activation=acts)
    assert f"{n_hidden} expected, {len(acts)} given" in str(info.value)


@pytest.mark.parametrize(
    "dtype, exc",
    [
        (np.float16, ValueError),
        ("int32", ValueError),
        (np.complex64, ValueError),
        ("banana", TypeError),
        (object, ValueError),
        ("longdouble", ValueError),
    ],
)
def test_bad_dtype(dtype, exc):
    with pytest.raises(exc, match="float32 or float64") as info:
        pf.MLP([3, 2], dtype=dtype)
    assert "got" in str(info.value)


def test_bad_seed_type():
    with pytest.raises(TypeError, match="seed"):
        pf.MLP([3, 2], seed=1.5)
    with pytest.raises(TypeError, match="seed"):
        pf.MLP([3, 2], seed="0")


def test_negative_seed_names_the_argument():
    with pytest.raises(ValueError, match="seed"):
        pf.MLP([3, 2], seed=-1)


# ---- parameters replaced by the user ------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRY_POINTS + [lambda n, x, y: n.save(os.devnull)])
@pytest.mark.parametrize(
    "replacement, words",
    [
        (np.zeros((4, 4), np.float32), ["weights[0]", "(4, 3)", "(4, 4)"]),
        (np.zeros((4, 3), np.float64), ["weights[0]", "float32", "float64"]),
        (np.zeros((4, 6), np.float32)[:, ::2], ["weights[0]", "C-contiguous"]),  # (a transposed table is fine)
        ([[0.0] * 3] * 4, ["weights[0]", "list"]),
    ],
    ids=["shape", "dtype", "strided", "list"],
)
def test_replaced_weight_is_reported_on_the_next_call(entry, replacement, words):
    net = make_net()
    net.weights[0] = replacement
    check_fails(entry, net, X8, LABELS8, ValueError, *words)


def test_replaced_bias_is_reported():
    net = make_net()
    net.biases[1] = np.zeros(5, np.float32)
    check_fails(_train_step, net, X8, LABELS8, ValueError, "biases[1]", "(3,)", "(5,)")


def test_weights_written_in_place_are_used():
    net = make_net()
    net.weights[-1][...] = 0
    net.biases[-1][...] = 0
    np.testing.assert_allclose(net.forward(X8), np.full((8, 3), 1 / 3), rtol=1e-6)


def test_weights_list_of_the_wrong_length():
    net = make_net()
    net.weights = net.weights[:1]
    net.biases = net.biases[:1]
    with pytest.raises(ValueError, match="weights"):
        net.forward(X8)


def test_weights_not_a_list():
    net = make_net()
    net.weights = None
    with pytest.raises((TypeError, ValueError), match="weights"):
        net.forward(X8)


# ---- step and sign units ------------------------------------------------------------------------------------


def _separable(n=64, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float64)


@pytest.mark.parametrize(
    "act, out", [("step", "sigmoid"), ("sign", "sigmoid"), ("relu", "step"), ("tanh", "sign")]
)
def test_zero_gradient_units_need_straight_through(act, out):
    x, y = _separable()
    net = pf.MLP([2, 4, 1], activation=act, output_activation=out, seed=0)
    t = 2 * y - 1 if out == "sign" else y
    for entry in (
        lambda n, a, b: n.train_step(a, b),
        lambda n, a, b: n.fit(a, b, epochs=1, progress=False),
        lambda n, a, b: pf.fit(n, a, b, epochs=1, progress=False),
    ):
        check_fails(entry, net, x, t, ValueError, "straight_through")
    # Not training: evaluation works without it.
    assert np.isfinite(net.loss(x, t))


@pytest.mark.parametrize("act", ["step", "sign"])
def test_straight_through_hidden_units_learn(act):
    x, y = _separable()
    net = pf.MLP([2, 8, 1], activation=act, output_activation="sigmoid", seed=0, straight_through=True)
    before = net.loss(x, y)
    hist = net.fit(x, y, epochs=40, batch_size=16, optimizer=pf.SGD(lr=0.5), progress=False, seed=0)
    assert hist["loss"][-1] < 0.6 * before
    assert net.accuracy(x, y) >= 0.9


def test_straight_through_sign_output_learns():
    x, y = _separable()
    t = 2 * y - 1
    net = pf.MLP([2, 1], output_activation="sign", seed=0, straight_through=True)
    _, grads = net.loss_and_gradients(x, t)
    assert any(np.any(g != 0) for pair in grads for g in pair)
    before = net.loss(x, t)
    net.fit(x, t, epochs=20, optimizer=pf.SGD(lr=0.1), progress=False, seed=0)
    assert net.loss(x, t) < before


# ---- a failed train_step leaves the network unchanged -------------------------------------------------------


@pytest.mark.parametrize(
    "opt", [lambda: pf.SGD(lr=0.1, momentum=0.9), lambda: pf.Adam(lr=0.01)], ids=["sgd-momentum", "adam"]
)
def test_failed_step_leaves_weights_and_optimizer_state_unchanged(opt):
    net, twin = make_net(), make_net()
    opt_net, opt_twin = opt(), opt()
    net.train_step(X8, LABELS8, optimizer=opt_net)
    twin.train_step(X8, LABELS8, optimizer=opt_twin)
    y_nan = np.eye(3)[LABELS8]
    y_nan[0, 0] = np.nan
    for bad_x, bad_y in ((X8, y_nan), (X8[:, :2], LABELS8), (X8, LABELS8 + 3)):
        check_fails(
            lambda n, a, b: n.train_step(a, b, optimizer=opt_net), net, bad_x, bad_y, (ValueError, TypeError)
        )
    # The next good step is exactly what it would have been without the failures.
    net.train_step(X8, LABELS8, optimizer=opt_net)
    twin.train_step(X8, LABELS8, optimizer=opt_twin)
    for a, b in zip(net.weights + net.biases, twin.weights + twin.biases):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("loss", ["squared_error", "cross_entropy"])
def test_diverging_step_raises_and_leaves_weights_bit_identical(loss):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3))
    if loss == "squared_error":
        net = make_net(sizes=[3, 4, 1], activation="tanh", output_activation="linear", dtype=np.float64)
        y = rng.standard_normal((16, 1))
    else:
        net = make_net(sizes=[3, 4, 3], activation="relu", dtype=np.float64)
        y = np.arange(16) % 3
    opt = pf.SGD(lr=1e150)
    for _ in range(20):
        before = snapshot(net)
        try:
            net.train_step(x, y, loss=loss, optimizer=opt)
        except FloatingPointError as exc:
            assert "not updated" in str(exc)
            assert snapshot(net) == before
            break
    else:
        pytest.fail("a learning rate of 1e150 never diverged")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverging_fit_names_the_epoch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3))
    y = rng.standard_normal((16, 1))
    net = make_net(sizes=[3, 4, 1], activation="tanh", output_activation="linear", dtype=np.float64)
    with pytest.raises(FloatingPointError, match="epoch"):
        net.fit(x, y, optimizer=pf.SGD(lr=1e150), epochs=20, batch_size=16, progress=False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_step_that_returns_normally_leaves_finite_weights():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3))
    y = rng.standard_normal((16, 1))
    net = make_net(sizes=[3, 4, 1], activation="tanh", output_activation="linear", dtype=np.float32)
    opt = pf.SGD(lr=1e30)
    for _ in range(5):
        before = snapshot(net)
        try:
            net.train_step(x, y, optimizer=opt)
        except FloatingPointError:
            assert snapshot(net) == before
            break
        assert all(np.all(np.isfinite(p)) for p in net.weights + net.biases), (
            "train_step left non-finite weights"
        )


# ---- accuracy -----------------------------------------------------------------------------------------------


def test_accuracy_length_mismatch():
    with pytest.raises(ValueError, match="8.*3"):
        make_net().accuracy(X8, LABELS8[:3])


@pytest.mark.parametrize(
    "bad", [np.array(["a"] * 8), np.full(8, np.nan), np.eye(5)[LABELS8]], ids=["str", "nan", "wide-one-hot"]
)
def test_accuracy_rejects_bad_labels(bad):
    with pytest.raises((ValueError, TypeError)):
        make_net().accuracy(X8, bad)


# ---- pf.gemm ------------------------------------------------------------------------------------------------


A = np.ones((3, 4))
B = np.ones((4, 5))


@pytest.mark.parametrize(
    "args, kwargs, exc, words",
    [
        ((A.astype(np.float32), B), {}, TypeError, ["same dtype", "float32", "float64"]),
        ((A.astype(int), B.astype(int)), {}, TypeError, ["float32 or float64", "int64"]),
        ((A, B.T), {}, ValueError, ["3×4", "5×4"]),
        ((A, B), {"trans_a": True}, ValueError, ["inner dimensions"]),
        ((np.ones((2, 3, 4)), B), {}, ValueError, ["2-D", "(2, 3, 4)"]),
        ((A, np.ones(4)), {}, ValueError, ["2-D", "(4,)"]),
        ((A.tolist(), B), {}, TypeError, ["NumPy array", "list"]),
        ((A, B), {"beta": 1.0}, ValueError, ["beta", "out"]),
        ((A, B), {"out": np.empty((5, 3))}, ValueError, ["(3, 5)", "(5, 3)"]),
        ((A, B), {"out": np.empty((3, 5), np.float32)}, ValueError, ["float64", "float32"]),
        ((A, B), {"out": np.empty((5, 3)).T}, ValueError, ["C-contiguous"]),
        ((A, B), {"out": [[0.0] * 5] * 3}, ValueError, ["out", "list"]),
        ((A, B), {"alpha": "2"}, TypeError, ["alpha"]),
        ((A, B), {"beta": 1j}, TypeError, ["beta"]),
    ],
)
def test_gemm_errors(args, kwargs, exc, words):
    with pytest.raises(exc) as info:
        pf.gemm(*args, **kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


def test_gemm_out_overlapping_an_operand():
    a = np.ones((4, 4))
    b = np.ones((4, 4))
    keep = a.copy()
    with pytest.raises(ValueError, match="overlap"):
        pf.gemm(a, b, out=a)
    with pytest.raises(ValueError, match="overlap"):
        pf.gemm(a, b, out=b, beta=1.0)
    big = np.zeros((8, 4))
    with pytest.raises(ValueError, match="overlap"):
        pf.gemm(big[:4], b, out=big[2:6])
    np.testing.assert_array_equal(a, keep)


def test_gemm_out_read_only():
    out = np.zeros((3, 5))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        pf.gemm(A, B, out=out)


# ---- threads ------------------------------------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    n = pf.get_num_threads()
    yield
    pf.set_num_threads(n)


@pytest.mark.parametrize(
    "bad, exc",
    [
        (0, ValueError),
        (-2, ValueError),
        ("2", TypeError),
        (2.5, TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
def test_set_num_threads_errors(bad, exc, restore_threads):
    before = pf.get_num_threads()
    with pytest.raises(exc, match="threads") as info:
        pf.set_num_threads(bad)
    assert repr(bad) in str(info.value) or str(bad) in str(info.value)
    assert pf.get_num_threads() == before


def test_bad_num_threads_env(run_python):
    r = run_python("import pyfastnn as pf; pf.get_num_threads()", clear=(), PYFASTNN_NUM_THREADS="lots")
    assert r.returncode != 0 and "PYFASTNN_NUM_THREADS" in r.stderr and "lots" in r.stderr


def test_arrays_with_an_equal_but_distinct_dtype_object_are_accepted():
    # An unpickled (or memory-mapped) float32 array carries a new dtype object equal to np.float32's; the compiled
    # checks once compared dtype objects by identity and refused it.
    import pickle

    a = pickle.loads(pickle.dumps(np.arange(12, dtype=np.float32).reshape(3, 4)))
    assert a.dtype == np.float32 and a.dtype is not np.dtype(np.float32)
    np.testing.assert_allclose(pf.gemm(a, a.T.copy()), a @ a.T, rtol=1e-6)
    net = pickle.loads(pickle.dumps(pf.MLP([4, 3, 2], seed=0)))
    assert net.dtype is np.dtype(np.float32)
    np.testing.assert_allclose(net.forward(a), pf.MLP([4, 3, 2], seed=0).forward(a), rtol=1e-6)
    with pytest.raises(TypeError, match="float32 or float64"):
        pf.gemm(a.astype(">f4"), a.astype(">f4"))  # byte-swapped data is still refused


def test_a_read_only_network_still_predicts():
    net = pf.MLP([4, 3, 2], seed=0)
    want = net.forward(np.ones((2, 4)))
    for p in net.weights + net.biases:
        p.flags.writeable = False
    np.testing.assert_array_equal(net.forward(np.ones((2, 4))), want)
    with pytest.raises(ValueError, match="writable"):
        net.train_step(np.ones((2, 4)), np.array([0, 1]))
