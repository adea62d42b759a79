"""pf.MLPClassifier / pf.MLPRegressor: scikit-learn's conventions, its estimator checks, and the same updates as
scikit-learn's own MLPs for the same hyper-parameters and weights."""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import pyfastnn as pf  # noqa: E402

# Checks that cannot hold for stochastic mini-batch training, with why. scikit-learn lists the same check as an
# expected failure for its own MLPs (sklearn/utils/_test_common/instance_generator.py runs it only for lbfgs,
# or for sgd with a loose tol).
_SGD_WEIGHTS = (
    "a sample of weight 2 and the same sample twice land in different shuffled mini-batches, so the SGD "
    "trajectories differ; full-batch equivalence is tested in tests/test_fit_features.py"
)
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": _SGD_WEIGHTS,
    "check_sample_weight_equivalence_on_sparse_data": _SGD_WEIGHTS,  # the same, with sparse X
}


@pytest.mark.parametrize("Estimator", ["MLPClassifier", "MLPRegressor"])
def test_check_estimator(Estimator):
    est = getattr(pf, Estimator)(max_iter=100)
    results = check_estimator(est, on_fail=None, expected_failed_checks=EXPECTED_FAILURES)
    failed = [f"{r['check_name']}: {r['exception']!r}" for r in results if r["status"] == "failed"]
    assert not failed, "\n".join(failed)
    assert len([r for r in results if r["status"] == "passed"]) > 40  # the checks really ran


def _data(n=40, seed=0, n_out=1, classes=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    if classes:  # labels that depend on x (a random linear classifier, plus a little label noise)
        y = np.argmax(x @ rng.standard_normal((5, classes)) + 0.3 * rng.standard_normal((n, classes)), axis=1)
    else:
        y = x[:, :n_out] @ rng.standard_normal((n_out, n_out)) + 0.1 * rng.standard_normal((n, n_out))
        y = y[:, 0] if n_out == 1 else y
    return x, y


def _one_warm_epoch(ours, theirs, x, y):
    """Give both the same weights, then one more epoch each from fresh optimizer states."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(x, y)
        ours.fit(x, y)
        for w, b, cw, cb in zip(ours.net_.weights, ours.net_.biases, theirs.coefs_, theirs.intercepts_):
            w[...] = cw.T
            b[...] = cb
        theirs.fit(x, y)
        ours.fit(x, y)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize(
    "kind,n_out,classes", [("regressor", 1, None), ("regressor", 3, None), ("classifier", 1, 2), ("classifier", 1, 4)]
)
def test_same_updates_as_scikit_learn(solver, kind, n_out, classes):
    # pyfastnn's losses are scaled differently (no ½, sum over outputs); the estimators map the hyper-parameters
    # so that the updates are scikit-learn's.
    x, y = _data(40, n_out=n_out, classes=classes)
    params = dict(hidden_layer_sizes=(7, 6), activation="tanh", solver=solver, alpha=0.01, batch_size=10,
                  learning_rate_init=0.05 if solver == "sgd" else 0.01, momentum=0.5, nesterovs_momentum=False,
                  shuffle=False, max_iter=1, warm_start=True, random_state=0)
    Ours = pf.MLPRegressor if kind == "regressor" else pf.MLPClassifier
    Theirs = sk_nn.MLPRegressor if kind == "regressor" else sk_nn.MLPClassifier
    ours, theirs = Ours(**params), Theirs(**params)
    _one_warm_epoch(ours, theirs, x, y)
    assert ours.net_.dtype == np.float64 and ours.out_activation_ == theirs.out_activation_
    # SGD: the same arithmetic to rounding. Adam: scikit-learn puts epsilon outside the bias correction (an
    # effective epsilon of eps/√(1−β₂ᵗ)), pyfastnn inside; with gradients ~1e-3 that is ~1e-4 relative.
    tol = dict(rtol=1e-10, atol=1e-12) if solver == "sgd" else dict(rtol=2e-3, atol=1e-5)
    for mine, ref in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, ref, **tol)
    # loss_curve_ holds the data term only; scikit-learn's adds 0.5·alpha·‖W‖²/batch (see the next test).
    assert 0 < theirs.loss_curve_[-1] - ours.loss_curve_[-1]
    if kind == "classifier":
        np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), **tol)
    else:
        np.testing.assert_allclose(ours.predict(x), theirs.predict(x), **tol)


def test_loss_curve_matches_without_penalty():
    x, y = _data(40, n_out=2)
    params = dict(hidden_layer_sizes=(5,), solver="sgd", alpha=0.0, batch_size=8, learning_rate_init=0.01,
                  shuffle=False, max_iter=1, warm_start=True, momentum=0.0)
    ours, theirs = pf.MLPRegressor(**params), sk_nn.MLPRegressor(**params)
    _one_warm_epoch(ours, theirs, x, y)
    assert ours.loss_curve_[-1] == pytest.approx(theirs.loss_curve_[-1], rel=1e-10)


def test_drop_in_on_digits():
    x, y = pf.datasets.load_digits()
    xtr, xte, ytr, yte = pf.datasets.train_test_split(x, y, test_size=0.25, seed=0)
    clf = pf.MLPClassifier(hidden_layer_sizes=(64,), max_iter=60, random_state=0).fit(xtr, ytr)
    assert clf.score(xte, yte) > 0.94
    assert clf.n_iter_ <= 60 and len(clf.loss_curve_) == clf.n_iter_
    assert clf.coefs_[0].shape == (64, 64) and clf.classes_.tolist() == list(range(10))
    assert clf.n_features_in_ == 64 and clf.n_layers_ == 3 and clf.out_activation_ == "softmax"
    proba = clf.predict_proba(xte)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(xte))


def test_string_labels_binary_and_float32():
    x, y = _data(60, classes=2)
    labels = np.array(["no", "yes"])[y]
    clf = pf.MLPClassifier(hidden_layer_sizes=8, max_iter=30, random_state=0, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x.astype(np.float32), labels)
    assert clf.net_.dtype == np.float32 and clf.out_activation_ == "logistic"
    assert set(clf.predict(x)) <= {"no", "yes"} and clf.predict_proba(x).shape == (60, 2)
    assert clf.score(x, labels) > 0.7
    clf64 = pf.MLPClassifier(hidden_layer_sizes=8, max_iter=2, dtype="float32").fit(x, labels)
    assert clf64.net_.dtype == np.float32


def test_multilabel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 4))
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0, x[:, 3] > 0.5], axis=1).astype(int)
    clf = pf.MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, learning_rate_init=0.01, random_state=0)
    clf.fit(x, y)
    assert clf.predict(x).shape == (80, 3) and set(np.unique(clf.predict(x))) <= {0, 1}
    assert clf.predict_proba(x).shape == (80, 3) and clf.out_activation_ == "logistic"
    assert clf.score(x, y) > 0.7  # exact-match ratio over the 3 labels


def test_partial_fit_and_classes():
    x, y = _data(60, classes=3)
    clf = pf.MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(x, y)
    clf.partial_fit(x[:30], y[:30], classes=[0, 1, 2])
    first = [w.copy() for w in clf.coefs_]
    clf.partial_fit(x[30:], y[30:])
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2
    assert not np.array_equal(first[0], clf.coefs_[0])
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(x, y + 5)


def test_early_stopping_attributes():
    x, y = pf.datasets.load_digits()
    clf = pf.MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, n_iter_no_change=3, max_iter=200,
                           random_state=0, learning_rate_init=0.01).fit(x, y)
    assert clf.n_iter_ < 200 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) and clf.best_loss_ is None
    assert clf.history_.stop_reason == "early_stopping"


def test_learning_rate_schedules_and_callbacks():
    x, y = _data(60, n_out=1)
    seen = []
    reg = pf.MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate="invscaling", power_t=0.5,
                          learning_rate_init=0.01, max_iter=5, random_state=0,
                          callbacks=[lambda e, logs: seen.append(logs["lr"]) or e == 3])
    reg.fit(x, y)
    assert reg.n_iter_ == 3 and reg.history_.stop_reason == "callback"
    # η for epoch e+1 = η₀ / (samples so far + 1)^0.5, scaled by the loss scale 1/2 of one output.
    assert seen == pytest.approx([0.005, 0.005 / 61**0.5, 0.005 / 121**0.5])
    adaptive = pf.MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive", tol=10.0,
                               n_iter_no_change=1, max_iter=100, random_state=0).fit(x, y)
    assert adaptive.history_.stop_reason == "lr_plateau" and adaptive.n_iter_ < 100


def test_class_weight():
    x, y = _data(200, classes=2)
    x[:, 0] = 0.3 * x[:, 0] + (y - 0.5) * 0.2  # weakly separable
    kw = dict(hidden_layer_sizes=(8,), max_iter=50, random_state=0, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = pf.MLPClassifier(**kw).fit(x, y)
        heavy = pf.MLPClassifier(class_weight={1: 10.0}, **kw).fit(x, y)
    assert (heavy.predict(x) == 1).sum() > (plain.predict(x) == 1).sum()


def test_pickle_clone_and_grid_search():
    x, y = _data(60, classes=3)
    clf = pf.MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
        again = pickle.loads(pickle.dumps(clf))
        np.testing.assert_array_equal(again.predict_proba(x), clf.predict_proba(x))
        assert clone(clf).get_params() == clf.get_params()
        grid = GridSearchCV(pf.MLPClassifier(max_iter=10, random_state=0), {"hidden_layer_sizes": [(4,), (8,)]},
                            cv=2).fit(x, y)
    assert grid.best_params_["hidden_layer_sizes"] in [(4,), (8,)]


def test_same_random_state_same_model():
    x, y = _data(60, classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = pf.MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=3).fit(x, y)
        b = pf.MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=3).fit(x, y)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize(
    "params,match",
    [
        ({"solver": "newton"}, "solver"),
        ({"solver": "lbfgs", "max_fun": 0}, "max_fun"),
        ({"activation": "softplus"}, "activation"),
        ({"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes"),
        ({"learning_rate": "cosine"}, "learning_rate"),
        ({"alpha": -1.0}, "alpha"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_iter": 0}, "max_iter"),
        ({"dtype": "int8"}, "dtype"),
        ({"backend": "cuda"}, "backend"),
    ],
)
def test_bad_parameters_raise_on_fit(params, match):
    x, y = _data(20, classes=2)
    with pytest.raises(ValueError, match=match):
        pf.MLPClassifier(**params).fit(x, y)


def test_backend_parameter(backend_name):
    x, y = _data(40, classes=2)
    clf = pf.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, backend=backend_name, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    assert clf.predict(x).shape == (40,)


def test_without_scikit_learn_the_estimators_say_what_to_install(run_python):
    r = run_python(
        """
        import sys
        sys.modules["sklearn"] = None  # as if it were not installed
        import pyfastnn as pf
        pf.MLP([2, 2])  # the rest of pyfastnn works
        try:
            pf.MLPClassifier
        except ImportError as exc:
            print(exc)
        """
    )
    assert r.returncode == 0, r.stderr
    assert "pip install scikit-learn" in r.stdout
