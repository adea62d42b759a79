"""solver="lbfgs" of pf.MLPClassifier / pf.MLPRegressor: scikit-learn's objective and attributes, the same
iterates as scikit-learn's lbfgs from the same weights, sample weights, sparse input, every backend."""

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import scipy.sparse as sp  # noqa: E402
from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import pyfastnn as pf  # noqa: E402


def _data(n=60, seed=0, n_out=1, classes=None, n_features=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_features))
    if classes:
        scores = x @ rng.standard_normal((n_features, classes)) + 0.3 * rng.standard_normal((n, classes))
        y = np.argmax(scores, axis=1)
    else:
        y = np.tanh(x[:, :n_out]) @ rng.standard_normal((n_out, n_out))
        y += 0.1 * rng.standard_normal((n, n_out))
        y = y[:, 0] if n_out == 1 else y
    return x, y


def _quiet_fit(est, x, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(x, y, **kw)


def _penalty(est, alpha, total_weight):
    return 0.5 * alpha * sum(float(np.sum(np.asarray(w, np.float64) ** 2)) for w in est.coefs_) / total_weight


@pytest.mark.parametrize("Estimator", ["MLPClassifier", "MLPRegressor"])
def test_check_estimator_passes_every_check(Estimator):
    est = getattr(pf, Estimator)(solver="lbfgs", max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = check_estimator(est, on_fail=None)  # no expected failure
    failed = [f"{r['check_name']}: {r['exception']!r}" for r in results if r["status"] == "failed"]
    assert not failed, "\n".join(failed)
    names = {r["check_name"] for r in results if r["status"] == "passed"}
    assert "check_sample_weight_equivalence_on_dense_data" in names
    assert "check_sample_weight_equivalence_on_sparse_data" in names
    assert len(names) > 40


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regressor"])
def test_same_iterates_as_scikit_learn_from_the_same_weights(kind):
    x, y = _data(80, classes={"multiclass": 4, "binary": 2}.get(kind))
    if kind == "multilabel":
        y = (x[:, :3] + 0.3 * np.random.default_rng(1).standard_normal((80, 3)) > 0).astype(int)
    params = dict(hidden_layer_sizes=(7, 6), activation="tanh", solver="lbfgs", alpha=0.01, max_iter=1,
                  warm_start=True, random_state=0)
    Ours, Theirs = ((pf.MLPRegressor, sk_nn.MLPRegressor) if kind == "regressor"
                    else (pf.MLPClassifier, sk_nn.MLPClassifier))
    ours, theirs = _quiet_fit(Ours(**params), x, y), _quiet_fit(Theirs(**params), x, y)
    for mine, ref in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        mine[...] = ref  # coefs_ / intercepts_ are views of the network's arrays
    ours.set_params(max_iter=8)
    theirs.set_params(max_iter=8)
    _quiet_fit(ours, x, y)
    _quiet_fit(theirs, x, y)
    assert ours.net_.dtype == np.float64 and ours.n_iter_ == theirs.n_iter_ == 8
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    for mine, ref in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-7)
    if kind == "regressor":
        np.testing.assert_allclose(ours.predict(x), theirs.predict(x), rtol=1e-6, atol=1e-8)
    else:
        np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), rtol=1e-6, atol=1e-8)
        np.testing.assert_array_equal(ours.predict(x), theirs.predict(x))


def test_loss_is_scikit_learns_objective_and_the_attributes_are_its_own():
    x, y = _data(70, classes=3)
    alpha = 0.05
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 6 iteration\(s\)"):
        clf = pf.MLPClassifier((8,), solver="lbfgs", alpha=alpha, max_iter=6, random_state=0).fit(x, y)
    expected = log_loss(y, clf.predict_proba(x)) + _penalty(clf, alpha, len(y))
    assert clf.loss_ == pytest.approx(expected, rel=1e-9)
    assert clf.n_iter_ == 6
    # scikit-learn's lbfgs keeps no per-epoch record, and partial_fit exists for the stochastic solvers only.
    for name in ("loss_curve_", "best_loss_", "validation_scores_", "history_"):
        assert not hasattr(clf, name), name
    assert not hasattr(clf, "partial_fit") and hasattr(pf.MLPClassifier(solver="adam"), "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as info:
        pf.MLPRegressor(solver="lbfgs").partial_fit
    assert "only available for stochastic optimizers. lbfgs is not stochastic" in str(info.value.__cause__)


def test_multi_output_regressor_reports_scikit_learns_loss():
    x, y = _data(50, n_out=3)
    reg = _quiet_fit(pf.MLPRegressor((6,), solver="lbfgs", alpha=0.1, max_iter=15, random_state=0), x, y)
    expected = 0.5 * np.mean((y - reg.predict(x)) ** 2) + _penalty(reg, 0.1, len(y))
    assert reg.loss_ == pytest.approx(expected, rel=1e-9)


def test_lower_loss_than_a_few_sgd_epochs_on_digits():
    x, y = pf.datasets.load_digits()
    x = x.astype(np.float64)
    common = dict(hidden_layer_sizes=(32,), random_state=0, alpha=1e-4)
    lbfgs = _quiet_fit(pf.MLPClassifier(solver="lbfgs", max_iter=40, **common), x, y)
    sgd = _quiet_fit(pf.MLPClassifier(solver="sgd", max_iter=5, learning_rate_init=0.01, **common), x, y)
    assert lbfgs.n_iter_ == 40
    ours, theirs = log_loss(y, lbfgs.predict_proba(x)), log_loss(y, sgd.predict_proba(x))
    assert ours < 0.5 * theirs, (ours, theirs)
    assert lbfgs.score(x, y) > 0.97


def test_converges_before_max_iter_without_warning():
    x, y = _data(40, classes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = pf.MLPClassifier((4,), solver="lbfgs", alpha=1.0, tol=1e-3, max_iter=500, random_state=0)
        clf.fit(x, y)
    assert 1 <= clf.n_iter_ < 500


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_weight_two_is_a_duplicated_row_and_zero_a_removed_one(kind):
    x, y = _data(30, classes=3 if kind == "classifier" else None)
    sw = np.ones(30)
    sw[:5], sw[5:8] = 2.0, 0.0
    keep = sw > 0
    counts = sw[keep].astype(int)
    x_rep, y_rep = np.repeat(x[keep], counts, axis=0), np.repeat(y[keep], counts, axis=0)
    Est = pf.MLPClassifier if kind == "classifier" else pf.MLPRegressor
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", alpha=0.1, max_iter=30, random_state=0)
    weighted = _quiet_fit(Est(**params), x, y, sample_weight=sw)
    repeated = _quiet_fit(Est(**params), x_rep, y_rep)
    assert weighted.loss_ == pytest.approx(repeated.loss_, rel=1e-9)
    out = (lambda e: e.predict_proba(x)) if kind == "classifier" else (lambda e: e.predict(x))
    np.testing.assert_allclose(out(weighted), out(repeated), rtol=1e-7, atol=1e-10)


def test_on_every_backend_the_same_fit(backend_name):
    x, y = _data(60, classes=3)
    params = dict(hidden_layer_sizes=(8,), solver="lbfgs", alpha=0.01, max_iter=10, random_state=0)
    ours = _quiet_fit(pf.MLPClassifier(**params), x, y)  # on backend_name, the active one
    ref = _quiet_fit(pf.MLPClassifier(backend="numpy", **params), x, y)
    assert ours.loss_ == pytest.approx(ref.loss_, rel=1e-8)
    np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), rtol=1e-6, atol=1e-9)


def test_float32_network():
    x, y = _data(80, classes=3)
    params = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=30, random_state=0)
    f32 = _quiet_fit(pf.MLPClassifier(dtype="float32", **params), x, y)
    f64 = _quiet_fit(pf.MLPClassifier(**params), x, y)
    assert f32.net_.dtype == np.float32 and f64.net_.dtype == np.float64
    assert f32.loss_ == pytest.approx(f64.loss_, rel=0.05)
    assert f32.loss_ < 0.5 * log_loss(y, np.full((80, 3), 1 / 3))  # it trained
    assert f32.loss_ == pytest.approx(log_loss(y, f32.predict_proba(x)) + _penalty(f32, 1e-4, 80), rel=1e-4)


def test_sparse_input_is_dense_inputs_fit(backend_name):
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((60, 12)) * (rng.random((60, 12)) < 0.3)
    y = (dense[:, 0] + dense[:, 1] > 0).astype(int)
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", alpha=0.01, max_iter=15, random_state=0)
    on_sparse = _quiet_fit(pf.MLPClassifier(**params), sp.csr_matrix(dense), y)
    on_dense = _quiet_fit(pf.MLPClassifier(**params), dense, y)
    assert on_sparse.net_.embedding_layout  # W¹ trained as an embedding table, flattened in its own order
    assert on_sparse.loss_ == pytest.approx(on_dense.loss_, rel=1e-8)
    np.testing.assert_allclose(on_sparse.coefs_[0], on_dense.coefs_[0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(on_sparse.predict_proba(sp.csr_matrix(dense)), on_dense.predict_proba(dense),
                               rtol=1e-6, atol=1e-9)


def test_warm_start_continues_from_the_fitted_weights():
    x, y = _data(60, n_out=1)
    params = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=10, random_state=0)
    reg = _quiet_fit(pf.MLPRegressor(warm_start=True, **params), x, y)
    first, start = reg.loss_, [w.copy() for w in reg.coefs_]
    seen = []
    reg.set_params(callbacks=[lambda it, logs: seen.append(logs["loss"])])
    _quiet_fit(reg, x, y)
    assert seen[0] < first and reg.loss_ < first  # its first iteration improves on where the last fit ended
    cold = _quiet_fit(pf.MLPRegressor(**params), x, y)
    np.testing.assert_array_equal(cold.coefs_[0], start[0])  # without warm_start: the same fresh start


def test_callbacks_and_verbose(capsys):
    x, y = _data(60, classes=2)
    calls = []

    def stop_at_three(iteration, logs):
        calls.append((iteration, logs["loss"]))
        return iteration == 3

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a callback's stop is not a failure to converge
        clf = pf.MLPClassifier((4,), solver="lbfgs", max_iter=50, callbacks=[stop_at_three], verbose=True,
                               random_state=0).fit(x, y)
    assert [c[0] for c in calls] == [1, 2, 3] and clf.n_iter_ == 3
    assert calls[-1][1] == pytest.approx(clf.loss_, rel=1e-12)
    assert capsys.readouterr().err.count("Iteration ") == 3


def test_max_fun_limits_the_evaluations():
    x, y = _data(60, classes=3)
    evaluations = []
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        clf = pf.MLPClassifier((6,), solver="lbfgs", max_fun=4, max_iter=100, random_state=0,
                               callbacks=[lambda it, logs: evaluations.append(it)]).fit(x, y)
    assert clf.n_iter_ <= 4 and len(evaluations) == clf.n_iter_


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "10", None])
def test_bad_max_fun(value):
    x, y = _data(20, classes=2)
    with pytest.raises(ValueError, match=f"max_fun must be an int >= 1; got {value!r}"):
        pf.MLPClassifier(solver="lbfgs", max_fun=value).fit(x, y)


def test_bad_solver_names_the_choices():
    x, y = _data(20, classes=2)
    with pytest.raises(ValueError, match="solver must be one of 'lbfgs', 'sgd', 'adam'; got 'newton'"):
        pf.MLPRegressor(solver="newton").fit(x, y.astype(float))


def test_non_finite_result_restores_the_weights():
    x, y = _data(30, n_out=1)
    x[0, 0] = 1e300  # overflows the float64 network's squared error
    reg = pf.MLPRegressor((4,), solver="lbfgs", max_iter=5, random_state=0)
    with pytest.raises(FloatingPointError, match="Scale the inputs"):
        reg.fit(x, y)
    assert all(np.isfinite(w).all() for w in reg.coefs_ + reg.intercepts_)


def test_interrupt_inside_a_line_search_leaves_the_last_accepted_iterate(backend_name, monkeypatch):
    # Ctrl-C while L-BFGS evaluates a trial point: the network must hold the iterate it last accepted (what a
    # run of that many iterations ends with), not the trial point or a half-written one.
    from pyfastnn import _backend, _lbfgs

    x, y = _data(60, classes=3)
    start = pf.MLP([5, 7, 3], activation="tanh", output_activation="softmax", seed=0)
    done = start.copy()
    _lbfgs.minimize_lbfgs(done, x, y, max_iter=3, tol=0.0)

    real = _backend.kernels()
    armed = {"on": False, "hit": 0}

    class Trap:
        def __getattr__(self, name):
            return getattr(real, name)

        def backward(self, *args):
            if armed["on"]:
                armed["hit"] += 1
                raise KeyboardInterrupt
            return real.backward(*args)

    def arm(iteration, data_loss, penalty):
        armed["on"] = iteration == 3  # the next evaluation is iteration 4's first trial point
        return False

    monkeypatch.setattr(_lbfgs._backend, "kernels", lambda: Trap())
    net = start.copy()
    with pytest.raises(KeyboardInterrupt):
        _lbfgs.minimize_lbfgs(net, x, y, max_iter=10, tol=0.0, callback=arm)
    assert armed["hit"] == 1
    for ours, theirs in zip(net.weights + net.biases, done.weights + done.biases):
        np.testing.assert_array_equal(ours, theirs)


def test_interrupt_in_the_first_evaluation_leaves_the_starting_weights(monkeypatch):
    from pyfastnn import _backend, _lbfgs

    x, y = _data(40, classes=3)
    net = pf.MLP([5, 4, 3], activation="relu", output_activation="softmax", seed=1)
    before = [p.copy() for p in net.weights + net.biases]
    real = _backend.kernels()

    class Trap:
        def __getattr__(self, name):
            return getattr(real, name)

        def backward(self, *args):
            args[0][0][...] = np.nan  # as an evaluation that wrote the weights and then was interrupted
            raise KeyboardInterrupt

    monkeypatch.setattr(_lbfgs._backend, "kernels", lambda: Trap())
    with pytest.raises(KeyboardInterrupt):
        _lbfgs.minimize_lbfgs(net, x, y, max_iter=10)
    for ours, theirs in zip(net.weights + net.biases, before):
        np.testing.assert_array_equal(ours, theirs)
