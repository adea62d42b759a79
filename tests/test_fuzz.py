"""Property-based fuzzing of the public API (issue #13, "Beyond the fixes"): pf.MLP's construction, forward,
loss, loss_and_gradients, train_step and fit, and pf.gemm, on generated arguments — shapes with 0 and 1 rows
or features, every kind of dtype, non-contiguous, Fortran-ordered, negatively strided, broadcast and read-only
views, lists, scipy.sparse matrices, NaN / infinity / values beyond float32 / subnormals.

Every call ends in a right answer, checked against a float64 NumPy reference with a rounding-error bound
(forward, gemm) or against the NumPy backend (the training calls), or in a clear error of a documented type
(tests/_fuzz.py). Inputs the API must accept are told apart from those it must refuse, so neither a refusal of
valid input nor an accepted invalid one passes. Profiles: HYPOTHESIS_PROFILE=ci (default) or deep.
"""

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from _fuzz import FUZZ, outcome
from hypothesis import event, example, given
from hypothesis import strategies as st

import pyfastnn as pf

HIDDEN = ["relu", "tanh", "sigmoid", "linear", "piecewise_linear"]
OUTPUT = ["softmax", "sigmoid", "linear", "tanh", "relu", "piecewise_linear"]
# Lipschitz constants (in the max norm over a row for softmax): how much an activation can amplify an error.
LIPSCHITZ = {
    "relu": 1.0,
    "tanh": 1.0,
    "sigmoid": 0.25,
    "linear": 1.0,
    "piecewise_linear": 1.0,
    "softmax": 2.0,
}
DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int64, np.uint8, np.bool_, object, np.complex128]
SPECIALS = ["none", "none", "nan", "inf", "-inf", "beyond32", "huge", "subnormal", "zeros"]
LAYOUTS = ["c", "c", "f", "strided", "negative", "readonly", "broadcast", "list", "sparse"]


# ---- generated inputs --------------------------------------------------------------------------------------


def _values(seed, shape, special, scale=1.0):
    """float64 values of ``shape`` with one special value (NaN, infinity, ...) planted, or none."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape) * scale
    if special == "zeros":
        v[...] = 0
    elif special != "none" and v.size:
        planted = {
            "nan": np.nan,
            "inf": np.inf,
            "-inf": -np.inf,
            "beyond32": 1e39,
            "huge": 3e37,
            "subnormal": 1e-40,
        }[special]
        v.flat[rng.integers(v.size)] = planted
    return v


def _cast(v, dtype):
    """Values in ``dtype``: integers rounded (after scaling, so they are not all 0), booleans by sign."""
    with np.errstate(invalid="ignore", over="ignore"):
        if dtype is object:
            return v.astype(object)
        if np.dtype(dtype).kind in "iu":
            info = np.iinfo(dtype)
            return np.clip(np.nan_to_num(np.round(v * 3)), info.min, info.max).astype(dtype)
        if np.dtype(dtype).kind == "b":
            return v > 0
        if np.dtype(dtype).kind == "c":
            return (v + 0.5j).astype(dtype)
        return v.astype(dtype)


def _lay_out(a, layout):
    """``a`` (2-D) presented in another memory layout or container, with the same values."""
    if layout == "f":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), dtype=a.dtype)
        big[::2, ::3] = a
        return big[::2, ::3]
    if layout == "negative":
        return np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if layout == "list":
        return a.tolist()
    return a


@st.composite
def inputs(draw, n_features):
    """(x, its values as an ndarray of x's dtype) for a network of n_features inputs: mostly the right shape,
    sometimes 0 rows, a wrong number of features, one sample (1-D) or 3-D."""
    if draw(st.booleans()):  # input the call must accept, in any layout
        rows, feats, shape = draw(st.sampled_from([1, 2, 3, 5])), n_features, None
        dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.bool_]))
        special = draw(st.sampled_from(["none", "none", "zeros", "subnormal", "huge"]))
    else:
        rows = draw(st.sampled_from([1, 2, 3, 5, 0, 1]))
        feats = draw(st.sampled_from([n_features] * 4 + [n_features + 1, max(n_features - 1, 0), 0]))
        shape = draw(st.sampled_from([(rows, feats)] * 8 + [(feats,), (rows, feats, 1)]))
        dtype = draw(st.sampled_from(DTYPES))
        special = draw(st.sampled_from(SPECIALS))
    shape = shape or (rows, feats)
    layout = draw(st.sampled_from(LAYOUTS)) if len(shape) == 2 else "c"
    values = _cast(_values(draw(st.integers(0, 2**16)), shape, special), dtype)
    if layout == "broadcast" and shape[0]:
        base = values[:1]
        values = np.broadcast_to(base, shape)
        return values, values
    if layout == "sparse":
        import scipy.sparse

        if values.dtype.kind in "fbiu" and values.dtype != np.float16:  # scipy.sparse has no float16
            fmt = draw(st.sampled_from(["csr", "csc", "coo"]))
            density = draw(st.sampled_from([0.0, 0.3, 1.0]))
            mask = np.random.default_rng(draw(st.integers(0, 99))).random(shape) < density
            kept = np.where(mask, values, np.zeros((), dtype=values.dtype))
            return getattr(scipy.sparse, f"{fmt}_matrix")(kept), kept
        layout = "c"
    if layout == "list":  # a list holds Python numbers: NumPy reads them back as int, float, bool or complex
        values = np.asarray(values.tolist())
    return _lay_out(values, layout), values


@st.composite
def networks(draw, max_layers=3):
    n_layers = draw(st.integers(1, max_layers))
    sizes = [draw(st.integers(1, 5)) for _ in range(n_layers + 1)]
    out = draw(st.sampled_from([a for a in OUTPUT if a != "softmax" or sizes[-1] > 1]))
    return pf.MLP(
        sizes,
        activation=draw(st.sampled_from(HIDDEN)),
        output_activation=out,
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 1000)),
    )


def _refusal(net, x, values):
    """The error type check_inputs must answer x with, or None if x is valid for ``net``."""
    if values.dtype.kind not in "biuf":
        return TypeError
    if values.ndim not in (1, 2):
        return ValueError
    shape = (1, values.shape[0]) if values.ndim == 1 else values.shape
    if shape[0] == 0 or shape[1] != net.layer_sizes[0]:
        return ValueError
    with np.errstate(over="ignore", invalid="ignore"):
        if not np.all(np.isfinite(values.astype(net.dtype))):
            return ValueError
    return None


# ---- the forward pass against float64 with an error bound --------------------------------------------------


def _act64(name, z):
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        with np.errstate(over="ignore"):
            return 1 / (1 + np.exp(-z))
    if name == "piecewise_linear":
        return np.clip(z + 0.5, 0, 1)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z


def reference_forward(net, x64):
    """(outputs in float64, a bound on the error of outputs computed in net.dtype, whether the computation in
    net.dtype may overflow): the bound sums each GEMM's worst-case rounding error (k+2 roundings of |a|·|w|),
    the error carried in from the previous layer through |w|, each activation's Lipschitz constant and a few
    rounding errors of the activation itself (and flushed subnormals)."""
    info = np.finfo(net.dtype)
    eps, tiny = float(info.eps), float(info.tiny)
    a, err, overflow = x64, np.zeros_like(x64), False
    for w, b, act in zip(net.weights, net.biases, net.activations):
        w64, b64 = w.astype(np.float64), b.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            z = a @ w64.T + b64
            magnitude = np.abs(a) @ np.abs(w64).T + np.abs(b64)
            overflow |= not np.all(magnitude < float(info.max) / 4)
            ez = err @ np.abs(w64).T + (w.shape[1] + 2) * eps * magnitude + (w.shape[1] + 2) * tiny
            a = _act64(act, z)
        if act == "softmax":
            err = LIPSCHITZ[act] * ez.max(axis=1, keepdims=True) + 16 * eps * np.abs(a) + tiny
        else:
            err = LIPSCHITZ[act] * ez + 16 * eps * np.abs(a) + tiny
    return a, err, overflow


def _as_dense64(values, dtype):
    with np.errstate(over="ignore"):
        return np.atleast_2d(np.asarray(values).astype(dtype).astype(np.float64))


@FUZZ
@given(net=networks(), data=st.data())
@example(net=pf.MLP([3, 2], output_activation="relu", seed=0), data=None)  # NaN weights: FloatingPointError
def test_forward_is_right_or_refuses(backend_name, net, data):
    if data is None:  # the explicit example: NaN written into a weight must not come out as an output
        net.weights[0][0, 0] = np.nan
        x, values = np.ones((2, 3), dtype=np.float32), np.ones((2, 3), dtype=np.float32)
    else:
        x, values = data.draw(inputs(net.layer_sizes[0]))
    kind, got = outcome(lambda: net.forward(x), what="MLP.forward")
    expected = _refusal(net, x, values)
    if expected is not None:
        assert kind is expected, f"{expected.__name__} expected for {values.dtype} {values.shape}; got {kind}"
        return
    ref, bound, overflow = reference_forward(net, _as_dense64(values, net.dtype))
    if kind is FloatingPointError:  # allowed where the network holds NaN or may overflow its dtype
        assert overflow or not np.all(np.isfinite(ref)), f"FloatingPointError without overflow: {got}"
        return
    assert kind == "ok", got
    assert got.shape == (
        (net.layer_sizes[-1],) if values.ndim == 1 else (values.shape[0], net.layer_sizes[-1])
    )
    assert got.dtype == net.dtype
    if overflow:
        event("forward: overflow possible, values not compared")
        return
    err = np.abs(np.atleast_2d(got).astype(np.float64) - ref)
    assert np.all(err <= bound), f"wrong outputs: error {err.max():.3g} exceeds the bound {bound.max():.3g}"


@FUZZ
@given(
    sizes=st.one_of(
        st.lists(st.integers(1, 4), min_size=2, max_size=4),
        st.lists(st.integers(-1, 4), max_size=4),
        st.sampled_from([5, "34", None, [2.0, 3], [True, 2], (np.int32(2), np.int64(3))]),
    ),
    activation=st.sampled_from(HIDDEN * 2 + ["step", "softmax", "nope", None, 3, ["relu"], ["tanh", "relu"]]),
    output=st.sampled_from(OUTPUT + ["auto"] * 4 + ["sign", "step", "bogus", None]),
    dtype=st.sampled_from(
        [np.float32, np.float64, "float32", "f8"] * 2 + [np.int32, "complex64", None, "nope", float]
    ),
    seed=st.sampled_from([None, 0, 7, 2**70] * 2 + [-1, 1.5, True]),
    init=st.sampled_from(["auto", "he", "glorot"] * 2 + ["xavier", None]),
    ste=st.sampled_from([False, True] * 3 + [0, "yes"]),
)
def test_construction_is_right_or_refuses(sizes, activation, output, dtype, seed, init, ste):
    kind, net = outcome(
        lambda: pf.MLP(
            sizes,
            activation=activation,
            output_activation=output,
            dtype=dtype,
            seed=seed,
            init=init,
            straight_through=ste,
        ),
        what="MLP()",
    )
    if kind != "ok":
        return
    sizes = [int(s) for s in sizes]
    assert net.layer_sizes == sizes and len(sizes) >= 2 and min(sizes) >= 1
    assert net.dtype in (np.float32, np.float64) and np.dtype(dtype) == net.dtype
    assert isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 or seed is None
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        assert w.shape == (sizes[l + 1], sizes[l]) and b.shape == (sizes[l + 1],)
        assert w.dtype == b.dtype == net.dtype and np.all(np.isfinite(w)) and not np.any(b)
    assert len(net.activations) == len(sizes) - 1 and all(a in pf.ACTIVATIONS for a in net.activations)


# ---- the training calls against the NumPy backend ----------------------------------------------------------


@st.composite
def targets(draw, net, rows):
    """Targets for ``net`` on ``rows`` samples: integer labels, one-hot rows, regression values, and wrong
    ones (out of range, fractional, NaN, wrong length or width, strings)."""
    n_out = net.layer_sizes[-1]
    rng = np.random.default_rng(draw(st.integers(0, 999)))
    kind = draw(
        st.sampled_from(
            [
                "labels",
                "labels",
                "onehot",
                "unit",
                "signs",
                "values",
                "bad_label",
                "fraction",
                "nan",
                "short",
                "wide",
                "strings",
                "float_labels",
            ]
        )
    )
    if kind == "labels":
        return rng.integers(0, max(n_out, 2) if n_out > 1 else 2, rows)
    if kind == "float_labels":
        return rng.integers(0, max(n_out, 2), rows).astype(np.float64)
    if kind == "onehot":
        return np.eye(n_out)[rng.integers(0, n_out, rows)]
    if kind == "unit":
        return rng.random((rows, n_out))
    if kind == "signs":
        return np.where(rng.random((rows, n_out)) < 0.5, -1.0, 1.0)
    if kind == "values":
        return rng.standard_normal((rows, n_out)) * 3
    if kind == "bad_label":
        return np.full(rows, draw(st.sampled_from([-1, n_out, 2**40])))
    if kind == "fraction":
        return np.full(rows, 0.5)
    if kind == "nan":
        y = rng.random((rows, n_out))
        if y.size:
            y.flat[0] = np.nan
        return y
    if kind == "short":
        return rng.integers(0, 2, max(rows - 1, 0))
    if kind == "wide":
        return rng.random((rows, n_out + 1))
    return np.array(["a"] * rows)


def _training_problem(draw, net):
    """(x, y, loss) for a training call: valid inputs mostly (in any layout), sometimes invalid ones."""
    x, _ = draw(inputs(net.layer_sizes[0]))
    rows = np.atleast_2d(np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=object)).shape[0]
    if draw(st.booleans()):  # targets the default loss takes
        rng = np.random.default_rng(draw(st.integers(0, 999)))
        act, n_out = net.output_activation, net.layer_sizes[-1]
        if act == "softmax":
            y = (
                rng.integers(0, n_out, rows)
                if draw(st.booleans())
                else np.eye(n_out)[rng.integers(0, n_out, rows)]
            )
        else:
            y = rng.random((rows, n_out)) if act == "sigmoid" else rng.standard_normal((rows, n_out))
        return x, y, None
    y = draw(targets(net, rows))
    loss = draw(
        st.sampled_from(
            [None, None, "squared_error", "cross_entropy", "binary_cross_entropy", "hinge", "mse", 3]
        )
    )
    return x, y, loss


def _differential(call, net, what, rtol):
    """``call(net)`` on the backend under test and on the NumPy backend (on copies): the same outcome, and
    when both return, the same values (``call`` returns a list of arrays / numbers) and the same network
    after."""
    mine, theirs = net.copy(), net.copy()
    kind, got = outcome(lambda: call(mine), what=what)
    with pf.use_backend("numpy"):
        ref_kind, ref = outcome(lambda: call(theirs), what=what + " (numpy ref)")
    if kind is FloatingPointError and ref_kind == "ok" or ref_kind is FloatingPointError and kind == "ok":
        # A network at the edge of divergence may cross the explosion threshold on one backend only.
        event(f"{what}: divergence seen by one backend only")
        return
    assert kind == ref_kind, f"{what}: {kind} here but {ref_kind} on the numpy backend ({got} / {ref})"
    if kind != "ok":
        if kind is not FloatingPointError:
            assert str(got) == str(ref)
        return
    for a, b in zip(got + mine.weights + mine.biases, ref + theirs.weights + theirs.biases):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
        assert a.shape == b.shape
        assert np.allclose(a, b, rtol=rtol, atol=rtol * scale), f"{what}: differs from the numpy backend"


def _rtol(net):
    return 1e-3 if net.dtype == np.float32 else 1e-7


@FUZZ
@given(net=networks(), data=st.data())
def test_loss_and_gradients_match_the_reference_backend(backend_name, net, data):
    x, y, loss = _training_problem(data.draw, net)
    _differential(lambda n: [n.loss(x, y, loss=loss)], net, "MLP.loss", _rtol(net))

    def loss_and_gradients(n):
        value, grads = n.loss_and_gradients(x, y, loss)
        return [value, *[a for pair in grads for a in pair]]

    _differential(loss_and_gradients, net, "MLP.loss_and_gradients", _rtol(net))


OPTIMIZERS = [
    None,
    "sgd",
    "adam",
    lambda: pf.SGD(lr=0.05, momentum=0.9, nesterov=True),
    lambda: pf.Adam(lr=0.01),
] * 3 + ["rmsprop", 3, lambda: pf.SGD(lr=-1.0), lambda: pf.SGD(lr=float("nan")), lambda: pf.SGD(lr=1e30)]


def _optimizer(spec):
    return spec() if callable(spec) else spec


@FUZZ
@given(
    net=networks(max_layers=2),
    data=st.data(),
    optimizer=st.sampled_from(OPTIMIZERS),
    weights=st.sampled_from(
        [None] * 6 + ["ones", "ones", "zeros", "negative", "nan", "short", "tiny", "huge"]
    ),
)
def test_train_step_matches_the_reference_backend(backend_name, net, data, optimizer, weights):
    x, y, loss = _training_problem(data.draw, net)
    rows = np.atleast_2d(np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=object)).shape[0]
    sw = (
        None
        if weights is None
        else {
            "ones": np.ones(rows),
            "zeros": np.zeros(rows),
            "negative": -np.ones(rows),
            "nan": np.full(rows, np.nan),
            "short": np.ones(rows + 1),
            "tiny": np.full(rows, 1e-46),
            "huge": np.full(rows, 1e300),
        }[weights]
    )
    _differential(
        lambda n: [n.train_step(x, y, loss=loss, optimizer=_optimizer(optimizer), sample_weight=sw)],
        net,
        "MLP.train_step",
        _rtol(net) * 10,
    )


@FUZZ
@given(
    net=networks(max_layers=2),
    data=st.data(),
    optimizer=st.sampled_from(OPTIMIZERS),
    batch_size=st.sampled_from([1, 2, 3, 32, "full", None] * 3 + [0, -1, 2.5, True, "2"]),
    epochs=st.sampled_from([1, 2] * 4 + [0, -1, 1.5, None]),
    shuffle=st.booleans(),
)
def test_fit_matches_the_reference_backend(backend_name, net, data, optimizer, batch_size, epochs, shuffle):
    x, y, loss = _training_problem(data.draw, net)

    def fit(n):
        h = n.fit(
            x,
            y,
            loss=loss,
            optimizer=_optimizer(optimizer),
            batch_size=batch_size,
            epochs=epochs,
            shuffle=shuffle,
            seed=0,
            progress=False,
        )
        return [np.asarray(h.history.get("loss", []), dtype=np.float64)]

    _differential(fit, net, "MLP.fit", _rtol(net) * 100)


# ---- pf.gemm against float64 with an error bound -----------------------------------------------------------


def _top(a):
    """The largest finite magnitude in a (0 if none)."""
    finite = np.abs(a[np.isfinite(a)])
    return float(finite.max()) if finite.size else 0.0


@st.composite
def gemm_operand(draw, shape, like=None):
    """(operand, its values): mostly a float32 or float64 array (of the dtype of ``like`` if given)."""
    dtype = draw(
        st.sampled_from([np.float32] * 8 + [np.float64] * 8 + [np.int32, np.complex64, object, np.float16])
    )
    if like is not None and isinstance(like, np.ndarray) and draw(st.integers(0, 4)):
        dtype = like.dtype
    special = draw(st.sampled_from(["none"] * 6 + ["nan", "inf", "huge", "subnormal", "zeros"]))
    values = _cast(_values(draw(st.integers(0, 2**16)), shape, special), dtype)
    layout = draw(
        st.sampled_from(
            ["c"] * 4 + ["f", "strided", "negative", "readonly", "broadcast"] * 2 + ["list", "1d"]
        )
    )
    if layout == "broadcast" and shape[0]:
        return np.broadcast_to(values[:1], shape), values[:1].repeat(shape[0], 0)
    if layout == "1d":
        return values.reshape(-1), values
    return _lay_out(values, layout), values


def _gemm_refusal(a, b, out, trans_a, trans_b, alpha, beta):
    """The error type pf.gemm must give, or None when the call is valid."""
    import numbers

    for x in (a, b):
        if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
            return TypeError
        if x.ndim != 2:
            return ValueError
    if a.dtype != b.dtype:
        return TypeError
    for v in (alpha, beta):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return TypeError
    for v in (trans_a, trans_b):
        if not isinstance(v, (bool, np.bool_)):
            return TypeError
    m, k = a.shape[::-1] if trans_a else a.shape
    k2, n = b.shape[::-1] if trans_b else b.shape
    if k != k2 or (out is None and beta != 0):
        return ValueError
    if out is not None and (
        not isinstance(out, np.ndarray)
        or out.dtype != a.dtype
        or out.shape != (m, n)
        or not out.flags.c_contiguous
        or not out.flags.writeable
        or np.shares_memory(out, a)
        or np.shares_memory(out, b)
    ):
        return ValueError
    return None


@FUZZ
@given(
    data=st.data(),
    m=st.sampled_from([0, 1, 2, 3, 7, 33]),
    k=st.sampled_from([0, 1, 2, 5, 70]),
    n=st.sampled_from([0, 1, 3, 17]),
    trans_a=st.sampled_from([False, True] * 8 + [np.bool_(True), "no", 0]),
    trans_b=st.sampled_from([False, True] * 8 + [np.False_, 1, None]),
    alpha=st.sampled_from([1.0, 0.0, -2.5, 1e-3, np.float32(3), 2] * 4 + ["1", 1j, True]),
    beta=st.sampled_from([0.0, 0.0, 1.0, -0.5, 0, np.float64(2)]),
    out_kind=st.sampled_from(
        ["none", "fresh", "nan"] * 3
        + [
            "wrong_shape",
            "wrong_dtype",
            "fortran",
            "readonly",
            "alias_a",
            "alias_b",
            "list",
        ]
    ),
)
def test_gemm_is_right_or_refuses(backend_name, data, m, k, n, trans_a, trans_b, alpha, beta, out_kind):
    a_shape = (k, m) if isinstance(trans_a, (bool, np.bool_)) and trans_a else (m, k)
    b_shape = (n, k) if isinstance(trans_b, (bool, np.bool_)) and trans_b else (k, n)
    a, a_values = data.draw(gemm_operand(a_shape))
    b, b_values = data.draw(gemm_operand(b_shape, like=a))
    dtype = a.dtype if isinstance(a, np.ndarray) and a.dtype in (np.float32, np.float64) else np.float64
    out = None
    if out_kind in ("fresh", "nan", "fortran", "readonly"):
        out = np.random.default_rng(m + k + n).standard_normal((m, n)).astype(dtype)
        if out_kind == "nan":
            out[...] = np.nan
        elif out_kind == "fortran" and m > 1 and n > 1:
            out = np.asfortranarray(out)
        elif out_kind == "readonly":
            out.flags.writeable = False
    elif out_kind == "wrong_shape":
        out = np.zeros((m + 1, n), dtype=dtype)
    elif out_kind == "wrong_dtype":
        out = np.zeros((m, n), dtype=np.float32 if dtype == np.float64 else np.float64)
    elif out_kind == "list":
        out = np.zeros((m, n)).tolist()
    elif out_kind in ("alias_a", "alias_b") and isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        src = a if out_kind == "alias_a" else b
        if src.size >= m * n and src.flags.c_contiguous and src.flags.writeable and src.dtype == dtype:
            out = src.reshape(-1)[: m * n].reshape(m, n)  # out shares a's (b's) memory
    old = None if out is None or not isinstance(out, np.ndarray) else out.astype(np.float64)
    expected = _gemm_refusal(a, b, out, trans_a, trans_b, alpha, beta)
    kind, got = outcome(
        lambda: pf.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta), what="pf.gemm"
    )
    if expected is not None:
        assert kind is expected, f"{expected.__name__} expected; got {kind}: {got}"
        if old is not None and not np.shares_memory(out, a) and not np.shares_memory(out, b):
            assert np.array_equal(out.astype(np.float64), old, equal_nan=True), "a refused call wrote out"
        return
    assert kind == "ok", got
    assert got.shape == (m, n) and got.dtype == dtype and (out is None or got is out)
    eps = float(np.finfo(dtype).eps)
    a64 = np.asarray(a_values, dtype=np.float64).reshape(a_shape)
    b64 = np.asarray(b_values, dtype=np.float64).reshape(b_shape)
    a64, b64 = (a64.T if trans_a else a64), (b64.T if trans_b else b64)
    with np.errstate(all="ignore"):
        ref = float(alpha) * (a64 @ b64)
        bound = (k + 2) * eps * abs(float(alpha)) * (np.abs(a64) @ np.abs(b64))
        bound += (k + 2) * float(np.finfo(dtype).tiny) * (1 + abs(float(alpha))) * (1 + _top(a64) + _top(b64))
        if beta != 0:  # with beta = 0 out's old contents (NaN here for out_kind "nan") must not be read
            ref = ref + float(beta) * old
            bound = bound + 2 * eps * (np.abs(ref) + abs(float(beta)) * np.abs(old))
    result = got.astype(np.float64)
    err = np.abs(result - ref)
    # Entries near overflow are not compared; a NaN or infinite reference must stay NaN or infinite.
    finite = np.isfinite(ref) & (np.abs(ref) + bound < float(np.finfo(dtype).max) / 2)
    right = np.where(finite, err <= bound, ~np.isfinite(result) | np.isfinite(ref))
    if alpha == 0:  # alpha = 0 may skip the product, as BLAS does: NaN or inf operands then do not show
        skipped = float(beta) * old if beta != 0 else np.zeros_like(ref)
        right |= (result == skipped) | (np.isnan(result) & np.isnan(skipped))
    if not finite.all():
        event("gemm: non-finite or overflowing operands")
    assert right.all(), (
        f"wrong product where {np.argwhere(~right)[:3].tolist()}: {result[~right][:3]} vs {ref[~right][:3]}"
    )
