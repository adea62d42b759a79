"""Export to PyTorch and ONNX (pyfastnn.export): every unit, both dtypes, round trips, sparse-trained
networks, skl2onnx for the estimators, and the errors of bad input.

The tests skip when torch / onnx / onnxruntime / skl2onnx are missing, unless PYFASTNN_REQUIRE_EXPORT=1 (CI
sets it), which turns a missing package into a failure.
"""

import importlib
import os
import sys
import warnings

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import export
from pyfastnn.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS

REQUIRED = os.environ.get("PYFASTNN_REQUIRE_EXPORT") == "1"
DTYPES = (np.float32, np.float64)


def _package(name):
    if REQUIRED:
        return importlib.import_module(name)
    return pytest.importorskip(name)


@pytest.fixture(scope="module")
def torch():
    return _package("torch")


@pytest.fixture(scope="module")
def ort():
    _package("onnx")
    return _package("onnxruntime")


@pytest.fixture(scope="module")
def skl2onnx():
    _package("sklearn")
    _package("onnx")
    _package("onnxruntime")
    module = _package("skl2onnx")
    export.register_skl2onnx()
    return module


def _tolerance(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}


def _net(hidden, output, dtype, straight_through=False, sizes=(5, 7, 6, 3)):
    return pf.MLP(list(sizes), activation=hidden, output_activation=output, dtype=dtype, seed=3,
                  straight_through=straight_through)


def _inputs(dtype, n=40, width=5, seed=0):
    # Scaled so every unit sees both sides of its kinks (step at 0, piecewise_linear at ±1/2, ...).
    return (np.random.default_rng(seed).standard_normal((n, width)) * 2).astype(dtype)


def _torch_forward(torch, module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _run_onnx(ort, model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


# ---- the units, value for value ----------------------------------------------------------------------------

SPECIAL = np.array([-np.inf, -3.0, -1.0, -0.5, -0.25, -0.0, 0.0, 0.25, 0.5, 1.0, 3.0, np.inf, np.nan])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS[:-1])
def test_each_torch_unit_computes_pyfastnns_values_including_zero_kinks_and_nan(torch, name, dtype):
    z = SPECIAL.astype(dtype)[None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the reference sigmoid meets inf - inf on purpose
        want = pf.activations.apply(name, z)
    module = export._torch_activation(torch, name, straight_through=False)
    got = _torch_forward(torch, module, z)
    assert got.dtype == dtype
    if name in ("sigmoid", "tanh"):
        np.testing.assert_allclose(got, want, **_tolerance(dtype))
    else:  # the piecewise units are exact: same values, 1/2 at step's 0, NaN kept
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_module_normalises_rows(torch, dtype):
    z = _inputs(dtype, n=6)
    module = export._torch_activation(torch, "softmax", False)
    np.testing.assert_allclose(_torch_forward(torch, module, z), pf.activations.apply("softmax", z),
                               **_tolerance(dtype))


# ---- to_torch: outputs, gradients, losses ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ACTIVATIONS)
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_to_torch_gives_the_networks_outputs(torch, hidden, output, dtype):
    net = _net(hidden, output, dtype)
    x = _inputs(dtype)
    module = net.to_torch()
    assert isinstance(module, torch.nn.Sequential) and len(module) == 2 * net.n_layers
    got = _torch_forward(torch, module, x)
    assert got.dtype == dtype and got.shape == (x.shape[0], 3)
    np.testing.assert_allclose(got, net.forward(x), **_tolerance(dtype))


def _pf_loss_in_torch(torch, loss, a, y):
    """pyfastnn's losses (batch mean of per-sample sums over the outputs) on torch tensors."""
    if loss == "squared_error":
        per = ((y - a) ** 2).sum(1)
    elif loss == "hinge":
        per = torch.relu(1 - y * a).sum(1)  # relu's gradient at 0 is 0, as pyfastnn's hinge at margin 1
    elif loss == "binary_cross_entropy":
        per = -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).sum(1)
    else:
        per = -(y * torch.log(a)).sum(1)
    return per.mean()


def _targets(loss, shape, rng):
    if loss == "cross_entropy":
        return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    if loss == "hinge":
        return rng.choice([-1.0, 1.0], size=shape)
    if loss == "binary_cross_entropy":
        return rng.random(shape)
    return rng.standard_normal(shape)


@pytest.mark.parametrize("straight_through", [False, True])
@pytest.mark.parametrize("output", ACTIVATIONS)
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_torch_gradients_of_the_default_loss_equal_pyfastnns(torch, hidden, output, straight_through):
    """Backpropagation through the exported modules (straight-through units included) gives pyfastnn's loss
    and gradients: the modules are faithful in training too, not only in inference."""
    net = _net(hidden, output, np.float64, straight_through=straight_through)
    loss = pf.losses.default_loss(output)
    rng = np.random.default_rng(1)
    x = _inputs(np.float64)
    y = _targets(loss, (x.shape[0], 3), rng)
    want_loss, want_grads = net.loss_and_gradients(x, y, loss=loss)
    module = net.to_torch()
    value = _pf_loss_in_torch(torch, loss, module(torch.from_numpy(x)), torch.from_numpy(y))
    value.backward()
    assert value.item() == pytest.approx(want_loss, rel=1e-10)
    linears = [m for m in module if isinstance(m, torch.nn.Linear)]
    for l, (m, (dw, db)) in enumerate(zip(linears, want_grads)):
        np.testing.assert_allclose(m.weight.grad.numpy(), dw, rtol=1e-8, atol=1e-12, err_msg=f"dW{l}")
        np.testing.assert_allclose(m.bias.grad.numpy(), db, rtol=1e-8, atol=1e-12, err_msg=f"db{l}")


def test_straight_through_gradient_is_pyfastnns_window(torch):
    z = torch.tensor([-1.5, -0.75, -0.25, 0.0, 0.25, 0.75, 1.5], dtype=torch.float64, requires_grad=True)
    for cls, half in ((export.Step, 0.5), (export.Sign, 1.0)):
        for ste in (False, True):
            z.grad = None
            cls(straight_through=ste)(z).sum().backward()
            want = (np.abs(z.detach().numpy()) < half).astype(float) if ste else np.zeros(7)
            np.testing.assert_array_equal(z.grad.numpy(), want)
    w = torch.tensor([-0.5, -0.25, 0.0, 0.5, 0.75], dtype=torch.float64, requires_grad=True)
    export.PiecewiseLinear()(w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 1.0, 1.0, 0.0, 0.0])  # 0 at the kinks, as pyfastnn


# ---- round trips -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("straight_through", [False, True])
def test_round_trip_pyfastnn_torch_pyfastnn_is_bit_exact(torch, dtype, straight_through):
    net = pf.MLP([4, 6, 5, 5, 5, 5, 5, 5, 3], activation=list(HIDDEN_ACTIVATIONS),
                 output_activation="softmax", dtype=dtype, seed=7, straight_through=straight_through)
    for b in net.biases:
        b[:] = np.random.default_rng(2).standard_normal(b.shape)
    back = pf.MLP.from_torch(net.to_torch())
    assert back.layer_sizes == net.layer_sizes and back.activations == net.activations
    assert back.dtype == net.dtype and back.straight_through == straight_through
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        assert a.dtype == b.dtype and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
        assert not np.shares_memory(a, b)
    x = _inputs(dtype, width=4)
    np.testing.assert_array_equal(back.forward(x), net.forward(x))


def test_exports_copy_the_parameters(torch, ort):
    net = _net("tanh", "softmax", np.float32)
    module = net.to_torch()
    model = net.to_onnx()
    x = _inputs(np.float32)
    before = net.forward(x)
    for w in net.weights:
        w[:] = 0
    np.testing.assert_allclose(_torch_forward(torch, module, x), before, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_run_onnx(ort, model, x)[0], before, rtol=1e-5, atol=1e-6)
    back = pf.MLP.from_torch(module)
    with torch.no_grad():
        module[0].weight.zero_()
    np.testing.assert_allclose(back.forward(x), before, rtol=1e-5, atol=1e-6)


def test_torch_to_pyfastnn_to_torch_keeps_every_parameter(torch):
    torch.manual_seed(0)
    nn = torch.nn
    module = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 4),
                           nn.Linear(4, 3), nn.Softmax(dim=1))
    net = pf.MLP.from_torch(module)
    assert net.layer_sizes == [6, 8, 8, 4, 3] and net.activations == ["relu", "tanh", "linear", "softmax"]
    again = net.to_torch()
    old = [p for m in module if isinstance(m, torch.nn.Linear) for p in (m.weight, m.bias)]
    new = [p for m in again if isinstance(m, torch.nn.Linear) for p in (m.weight, m.bias)]
    assert len(old) == len(new) and all(torch.equal(a, b) for a, b in zip(old, new))
    x = _inputs(np.float32, width=6)
    np.testing.assert_allclose(net.forward(x), _torch_forward(torch, module, x), rtol=1e-5, atol=1e-6)


def test_from_torch_linear_without_bias_gets_zero_biases(torch):
    module = torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False, dtype=torch.float64), torch.nn.Sigmoid())
    net = pf.MLP.from_torch(module)
    assert net.dtype == np.float64 and net.activations == ["sigmoid"]
    np.testing.assert_array_equal(net.biases[0], np.zeros(2))
    x = _inputs(np.float64, width=3)
    np.testing.assert_allclose(net.forward(x), _torch_forward(torch, module, x), rtol=1e-12)


# ---- sparse-trained networks (first layer in the embedding layout) -----------------------------------------

@pytest.fixture(scope="module")
def sparse_net():
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(5)
    x = sparse.random(200, 300, density=0.03, format="csr", random_state=6, dtype=np.float32)
    y = rng.integers(0, 3, 200)
    net = pf.MLP([300, 16, 3], seed=1)
    net.fit(x, y, epochs=2, progress=False)
    assert net.embedding_layout
    return net, x


def test_sparse_trained_network_exports_to_torch(torch, sparse_net):
    net, x = sparse_net
    module = net.to_torch()
    np.testing.assert_array_equal(module[0].weight.detach().numpy(), net.weights[0])
    assert module[0].weight.is_contiguous()
    dense = x.toarray()
    np.testing.assert_allclose(_torch_forward(torch, module, dense), net.forward(x), rtol=1e-5, atol=1e-6)
    back = pf.MLP.from_torch(module)
    np.testing.assert_array_equal(back.weights[0], net.weights[0])


def test_sparse_trained_network_exports_to_onnx(ort, sparse_net):
    net, x = sparse_net
    (got,) = _run_onnx(ort, net.to_onnx(), x.toarray())
    np.testing.assert_allclose(got, net.forward(x), rtol=1e-5, atol=1e-5)


# ---- ONNX --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ACTIVATIONS)
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_onnx_model_gives_the_networks_outputs(ort, hidden, output, dtype):
    net = _net(hidden, output, dtype)
    x = _inputs(dtype)
    model = net.to_onnx()
    (got,) = _run_onnx(ort, model, x)
    assert got.dtype == dtype and got.shape == (x.shape[0], 3)
    want = net.forward(x)
    if dtype == np.float32:
        assert np.max(np.abs(got - want)) <= 1e-5
    else:
        np.testing.assert_allclose(got, want, **_tolerance(dtype))


@pytest.mark.parametrize("name", ["step", "sign", "piecewise_linear", "relu", "linear"])
def test_onnx_piecewise_units_are_exact_at_zero_and_kinks(ort, name):
    # An identity first layer feeds the special values straight into the unit.
    n = SPECIAL.size - 3  # without ±inf and NaN: forward refuses outputs that are not finite
    net = pf.MLP([n, n], output_activation=name, dtype=np.float64)
    net.weights[0][:] = np.eye(n)
    x = SPECIAL[1:-2][None, :].copy()
    (got,) = _run_onnx(ort, net.to_onnx(), x)
    np.testing.assert_array_equal(got, net.forward(x))


def test_to_onnx_writes_a_file_that_onnxruntime_loads(ort, tmp_path):
    import onnx

    net = _net("relu", "softmax", np.float32)
    path = tmp_path / "net.onnx"
    model = net.to_onnx(path)
    assert path.stat().st_size > 0
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded)
    assert [i.name for i in loaded.graph.input] == ["X"] and [o.name for o in loaded.graph.output] == ["Y"]
    assert loaded.opset_import[0].version == export.OPSET == model.opset_import[0].version
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = _inputs(np.float32, n=3)
    np.testing.assert_allclose(session.run(None, {"X": x})[0], net.forward(x), rtol=1e-5, atol=1e-6)
    (one,) = session.run(None, {"X": x[:1]})  # the batch dimension is free
    assert one.shape == (1, 3)


def test_to_onnx_bad_arguments(ort):
    net = _net("relu", "softmax", np.float32)
    with pytest.raises(ValueError, match="opset must be an int >= 13; got 9"):
        net.to_onnx(opset=9)
    with pytest.raises(TypeError, match="path must be a str, a path-like object or None; got int"):
        net.to_onnx(3)
    with pytest.raises(TypeError, match="net must be a pyfastnn.MLP; got str"):
        export.to_onnx("net")
    net.weights[0] = net.weights[0][:, :2]
    with pytest.raises(ValueError, match=r"weights\[0\] must be a float32 array of shape \(7, 5\)"):
        net.to_onnx()


# ---- skl2onnx ----------------------------------------------------------------------------------------------

def _fitted(cls, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few epochs are enough here
        return cls((8,), max_iter=15, random_state=0, **kw).fit(X, y)


def _classifier_targets():
    rng = np.random.default_rng(3)
    return {
        "strings": np.array(["cat", "dog", "eel"])[rng.integers(0, 3, 90)],
        "binary strings": np.array(["no", "yes"])[rng.integers(0, 2, 90)],
        "integers": rng.integers(0, 4, 90) * 3 - 2,
        "binary integers": rng.integers(0, 2, 90),
        "multilabel": (rng.random((90, 3)) > 0.5).astype(np.int64),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(_classifier_targets()))
def test_skl2onnx_converts_the_classifier(skl2onnx, ort, kind, dtype):
    X = _inputs(dtype, n=90, width=4)
    est = _fitted(pf.MLPClassifier, X, _classifier_targets()[kind])
    model = skl2onnx.to_onnx(est, X[:1], options={"zipmap": False})
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    label, proba = session.run(None, {"X": X})
    assert proba.dtype == dtype
    np.testing.assert_array_equal(label, est.predict(X))
    assert np.max(np.abs(proba - est.predict_proba(X))) <= 1e-5


def test_skl2onnx_classifier_default_zipmap_with_string_labels(skl2onnx, ort):
    X = _inputs(np.float32, n=90, width=4)
    est = _fitted(pf.MLPClassifier, X, _classifier_targets()["strings"])
    model = skl2onnx.to_onnx(est, X[:1])
    label, maps = _run_onnx(ort, model, X)
    assert label.dtype == object and set(label) <= {"cat", "dog", "eel"}
    np.testing.assert_array_equal(label, est.predict(X))
    proba = np.array([[m[c] for c in est.classes_] for m in maps])
    assert np.max(np.abs(proba - est.predict_proba(X))) <= 1e-5


def test_skl2onnx_classifier_columns_and_nocl_options(skl2onnx, ort):
    X = _inputs(np.float32, n=90, width=4)
    est = _fitted(pf.MLPClassifier, X, _classifier_targets()["strings"])
    label, *columns = _run_onnx(ort, skl2onnx.to_onnx(est, X[:1], options={"zipmap": "columns"}), X)
    np.testing.assert_array_equal(label, est.predict(X))
    assert np.max(np.abs(np.column_stack(columns) - est.predict_proba(X))) <= 1e-5
    # nocl: no class labels in the graph, the label output is the class index
    label, proba = _run_onnx(ort, skl2onnx.to_onnx(est, X[:1], options={"zipmap": False, "nocl": True}), X)
    assert label.dtype == np.int64 and proba.shape == (90, 3)
    np.testing.assert_array_equal(est.classes_[label], est.predict(X))


def test_skl2onnx_float64_input_to_a_float32_network(skl2onnx, ort):
    X = _inputs(np.float64, n=90, width=4)
    est = _fitted(pf.MLPClassifier, X.astype(np.float32), _classifier_targets()["strings"])
    assert est.net_.dtype == np.float32
    label, proba = _run_onnx(ort, skl2onnx.to_onnx(est, X[:1], options={"zipmap": False}), X)
    assert proba.dtype == np.float64  # the input's type, as skl2onnx's own converters
    np.testing.assert_array_equal(label, est.predict(X))
    assert np.max(np.abs(proba - est.predict_proba(X))) <= 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_skl2onnx_converts_the_regressor(skl2onnx, ort, n_outputs, dtype):
    X = _inputs(dtype, n=90, width=4)
    rng = np.random.default_rng(4)
    y = rng.standard_normal(90) if n_outputs == 1 else rng.standard_normal((90, n_outputs))
    est = _fitted(pf.MLPRegressor, X, y)
    (got,) = _run_onnx(ort, skl2onnx.to_onnx(est, X[:1]), X)
    assert got.shape == (90, n_outputs) and got.dtype == dtype
    want = est.predict(X).reshape(90, n_outputs)
    assert np.max(np.abs(got - want)) <= (1e-5 if dtype == np.float32 else 1e-12)


def test_skl2onnx_converts_a_pipeline(skl2onnx, ort):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = _inputs(np.float32, n=90, width=4) * 10 + 3
    y = _classifier_targets()["strings"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), pf.MLPClassifier((8,), max_iter=15, random_state=0)).fit(X, y)
    label, proba = _run_onnx(ort, skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False}), X)
    np.testing.assert_array_equal(label, pipe.predict(X))
    assert np.max(np.abs(proba - pipe.predict_proba(X))) <= 1e-5


def test_skl2onnx_float_class_labels_become_int64_and_wrong_widths_are_refused(skl2onnx, ort):
    from skl2onnx.common.data_types import FloatTensorType

    X = _inputs(np.float32, n=40, width=4)
    est = _fitted(pf.MLPClassifier, X, np.where(X[:, 0] > 0, 2.0, -1.0))
    label, _ = _run_onnx(ort, skl2onnx.to_onnx(est, X[:1], options={"zipmap": False}), X)
    assert label.dtype == np.int64  # as skl2onnx does for scikit-learn's classifiers
    np.testing.assert_array_equal(label, est.predict(X))

    est = _fitted(pf.MLPRegressor, X, X[:, 0])
    with pytest.raises(ValueError, match="the input has 3 features but the estimator was fitted with 4"):
        skl2onnx.convert_sklearn(est, initial_types=[("X", FloatTensorType([None, 3]))])


def test_register_skl2onnx_twice_is_harmless(skl2onnx, ort):
    export.register_skl2onnx()
    X = _inputs(np.float32, n=20, width=4)
    est = _fitted(pf.MLPRegressor, X, X[:, 0])
    (got,) = _run_onnx(ort, skl2onnx.to_onnx(est, X[:1]), X)
    assert np.max(np.abs(got[:, 0] - est.predict(X))) <= 1e-5


# ---- bad input ---------------------------------------------------------------------------------------------

def test_from_torch_refuses_what_is_not_a_sequential(torch):
    with pytest.raises(TypeError, match="from_torch takes a torch.nn.Sequential .*; got Linear"):
        pf.MLP.from_torch(torch.nn.Linear(3, 2))
    with pytest.raises(TypeError, match="got dict"):
        pf.MLP.from_torch({"0": torch.nn.Linear(3, 2)})


def test_from_torch_names_the_unsupported_module(torch):
    nn = torch.nn
    cases = [
        (nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 2)),
         r"module \[1\] \(Dropout\(p=0.1.*\) is not supported: from_torch maps Linear, ReLU"),
        (nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(), nn.Linear(4, 2)), r"module \[1\] \(LeakyReLU"),
        (nn.Sequential(nn.Linear(3, 4), nn.Hardsigmoid()), r"module \[1\] \(Hardsigmoid"),
        (nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU())), r"module \[1\] \(Sequential"),
        (nn.Sequential(nn.ReLU(), nn.Linear(3, 4)),
         r"module \[0\] \(ReLU\(\)\) comes before the first Linear"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Tanh()), r"module \[2\] \(Tanh\(\)\) follows another"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=-1), nn.Linear(4, 2)),
         "pyfastnn allows softmax only at"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=0)),
         r"normalise each row \(dim=-1 or dim=1\); got dim=0"),
        (nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2)),
         r"module \[1\] .* takes 5 inputs but the Linear before"),
        (nn.Sequential(), "holds no Linear layer"),
        (nn.Sequential(nn.Linear(3, 4, dtype=torch.float16)),
         r"must all be float32 or all float64; got \['torch.float16'\]"),
        (nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2, dtype=torch.float64)),
         "must all be float32 or all float64"),
        (nn.Sequential(nn.Linear(3, 4), export.Step(straight_through=True), nn.Linear(4, 2), export.Sign()),
         "disagree on straight_through"),
    ]
    for module, message in cases:
        with pytest.raises(ValueError, match=message):
            pf.MLP.from_torch(module)


def test_to_torch_refuses_what_is_not_a_network(torch):
    with pytest.raises(TypeError, match="net must be a pyfastnn.MLP; got Sequential"):
        export.to_torch(torch.nn.Sequential())


@pytest.mark.parametrize("call, extra", [
    (lambda: _net("relu", "softmax", np.float32).to_torch(), "torch"),
    (lambda: pf.MLP.from_torch(None), "torch"),
    (lambda: _net("relu", "softmax", np.float32).to_onnx(), "onnx"),
    (export.register_skl2onnx, "onnx"),
])
def test_a_missing_package_names_the_extra_to_install(monkeypatch, call, extra):
    for name in ("torch", "onnx", "skl2onnx"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError, as when not installed
    with pytest.raises(ImportError, match=rf"needs the \w+ package: pip install 'pyfastnn\[{extra}\]'"):
        call()
