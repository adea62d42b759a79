"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor``, drop-in replacements for scikit-learn's.

They take scikit-learn's parameter names and defaults where the meaning is the same and train a
:class:`pyfastnn.MLP` with :func:`pyfastnn.fit`. This module needs scikit-learn (``pip install scikit-learn``);
the rest of pyfastnn does not.

What differs from scikit-learn, on purpose or by necessity:

* ``solver`` is "sgd", "adam" or "lbfgs" (full-batch L-BFGS through scipy.optimize over pyfastnn's native
  loss and gradients, scikit-learn's objective and stopping rules). Like scikit-learn, the network trains in
  the dtype of X (float32 stays float32, anything else becomes float64) unless ``dtype`` says otherwise: pass
  float32 data or ``dtype="float32"`` for speed. Initial weights are He / Glorot from pyfastnn (scikit-learn
  uses Glorot uniform), so the same ``random_state`` does not give the same weights as scikit-learn.
* The loss scaling matches scikit-learn's exactly: the regressor minimises ½·mean squared error averaged
  over the outputs, and ``alpha`` is the L2 penalty 0.5·alpha·‖W‖² per batch of ``batch_size`` rows, so the
  same hyper-parameters give the same updates. ``loss_curve_`` holds the data term only (scikit-learn adds
  the penalty, which at the default alpha is ~1e-4 of the loss). Under lbfgs the batch is the whole data set
  (the sum of the sample weights), the iterates are scikit-learn's from the same weights, and ``loss_`` is
  its objective, penalty included.
* ``learning_rate`` also takes "step" and "exponential" (pyfastnn's schedules); as in scikit-learn the
  schedules apply to the sgd solver only.
* Extra parameters: ``dtype``, ``backend``, ``callbacks`` (``cb(epoch, logs) -> bool``, True stops) and, for
  the classifier, ``class_weight``. ``history_`` is the :class:`pyfastnn.History` of the last fit.
"""

import contextlib
import numbers
import sys
import time
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError(
        "pyfastnn.MLPClassifier and MLPRegressor need scikit-learn >= 1.6: pip install scikit-learn "
        f"(or pip install 'pyfastnn[sklearn]'). ({exc})"
    ) from exc

from . import _backend
from ._lbfgs import minimize_lbfgs
from .network import MLP
from .optim import SGD, Adam
from .schedules import ExponentialDecay, InverseScaling, ReduceOnPlateau, StepDecay
from .train import fit as _fit

# scikit-learn's activation names next to pyfastnn's.
_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
                "linear": "linear", "sigmoid": "sigmoid", "piecewise_linear": "piecewise_linear"}
_SKLEARN_NAME = {"linear": "identity", "sigmoid": "logistic", "softmax": "softmax"}
_LEARNING_RATES = ("constant", "invscaling", "adaptive", "step", "exponential")
_SOLVERS = ("lbfgs", "sgd", "adam")
_STOCHASTIC_ONLY = ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_", "history_")


def _stochastic_solver(estimator):
    """partial_fit exists for the stochastic solvers only, as in scikit-learn."""
    if estimator.solver == "lbfgs":
        raise AttributeError("partial_fit is only available for stochastic optimizers. lbfgs is not "
                             "stochastic.")
    return True


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the network, the training loop."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None, backend=None, callbacks=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.backend = backend
        self.callbacks = callbacks

    # ---- fitted attributes that are views of the network ----------------------------------------------------

    @property
    def coefs_(self):
        """W^l as scikit-learn lays it out, (fan_in, fan_out): transposed views of the network's weights."""
        check_is_fitted(self, "net_")
        return [w.T for w in self.net_.weights]

    @property
    def intercepts_(self):
        check_is_fitted(self, "net_")
        return list(self.net_.biases)

    @property
    def n_layers_(self):
        check_is_fitted(self, "net_")
        return len(self.net_.layer_sizes)

    @property
    def out_activation_(self):
        check_is_fitted(self, "net_")
        return _SKLEARN_NAME.get(self.net_.output_activation, self.net_.output_activation)

    # ---- checks ----------------------------------------------------------------------------------------------

    def _check_params(self):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = [sizes]
        try:
            sizes = [int(s) for s in sizes]
            ok = all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in self.hidden_layer_sizes
                     ) if not isinstance(self.hidden_layer_sizes, numbers.Integral) else True
        except TypeError:
            ok = False
        if not ok or any(s < 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive ints; got {self.hidden_layer_sizes!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}; got {self.activation!r}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(map(repr, _SOLVERS))}; got {self.solver!r}")
        if self.learning_rate not in _LEARNING_RATES:
            raise ValueError(f"learning_rate must be one of {', '.join(_LEARNING_RATES)}; got {self.learning_rate!r}")
        for name, low in (("alpha", 0.0), ("tol", 0.0), ("power_t", 0.0), ("momentum", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= low:
                raise ValueError(f"{name} must be a number >= {low}; got {value!r}")
        if not self.momentum <= 1:
            raise ValueError(f"momentum must lie in [0, 1]; got {self.momentum!r}")
        for name in ("learning_rate_init", "epsilon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(f"{name} must be a number > 0; got {value!r}")
        for name in ("beta_1", "beta_2", "validation_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
                raise ValueError(f"{name} must lie in [0, 1); got {value!r}")
        for name in ("max_iter", "n_iter_no_change", "max_fun"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        bs = self.batch_size
        if not (isinstance(bs, str) and bs == "auto") and (
            isinstance(bs, bool) or not isinstance(bs, numbers.Integral) or bs < 1
        ):
            raise ValueError(f"batch_size must be 'auto' or an int >= 1; got {bs!r}")
        if self.early_stopping and not 0 < self.validation_fraction < 1:
            raise ValueError(f"early_stopping needs validation_fraction in (0, 1); got {self.validation_fraction!r}")
        try:
            dtype = None if self.dtype is None else np.dtype(self.dtype)
        except TypeError:
            dtype = False
        if dtype is not None and dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be None (that of X), float32 or float64; got {self.dtype!r}")
        if self.backend is not None and self.backend not in _backend.BACKENDS:
            raise ValueError(f"backend must be None or one of {', '.join(_backend.BACKENDS)}; got {self.backend!r}")
        if self.callbacks is not None and not all(callable(cb) for cb in self.callbacks):
            raise TypeError("callbacks must be a list of callables cb(epoch, logs) -> bool")
        return sizes, dtype

    # ---- training --------------------------------------------------------------------------------------------

    def _on_backend(self):
        """The ``backend`` parameter's backend for a ``with`` block (the current one when None)."""
        return _backend.use_backend(self.backend) if self.backend else contextlib.nullcontext()

    def _validate_x(self, X, reset):
        return validate_data(self, X, reset=reset, dtype=self.net_.dtype, order="C", accept_sparse="csr")

    def _new_network(self, n_features, sizes, n_outputs, output_activation, dtype, seed):
        self.net_ = MLP([n_features, *sizes, n_outputs], activation=_ACTIVATIONS[self.activation],
                        output_activation=output_activation, dtype=dtype, seed=seed)
        self.n_outputs_ = n_outputs
        self.t_ = 0
        self._optimizer = None
        if self.solver == "lbfgs":  # as scikit-learn's lbfgs: no per-epoch record (nor a stale one)
            for name in _STOCHASTIC_ONLY:
                self.__dict__.pop(name, None)
            return
        self.loss_curve_ = []
        self.best_loss_ = None if self.early_stopping else np.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None

    def _make_optimizer(self, batch, scale):
        """pyfastnn's optimizer that makes scikit-learn's updates for these hyper-parameters.

        scikit-learn's data gradient is pyfastnn's times ``scale`` (1 for the classifier's log-losses, ½ for
        the regressor's squared error), and its penalty 0.5·alpha·‖W‖²/batch adds alpha·W/batch. SGD: rate
        lr·scale, weight decay alpha/(batch·scale) — the same updates. Adam does not change when its gradient
        and epsilon are scaled alike: epsilon/scale, weight decay alpha/(batch·scale). (scikit-learn's Adam puts
        epsilon outside the bias correction, Kingma & Ba's "efficient" form; pyfastnn's inside. The two differ
        by ~1e-4 relative in the first steps, where epsilon is not negligible next to √v.)
        """
        decay = self.alpha / (batch * scale)
        if self.solver == "sgd":
            return SGD(lr=self.learning_rate_init * scale, momentum=self.momentum,
                       nesterov=bool(self.nesterovs_momentum and self.momentum > 0), weight_decay=decay)
        return Adam(lr=self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2,
                    eps=self.epsilon / scale, weight_decay=decay)

    def _schedule(self):
        if self.solver != "sgd" or self.learning_rate == "constant":
            return None
        if self.learning_rate == "invscaling":
            return InverseScaling(self.power_t)
        if self.learning_rate == "step":
            return StepDecay()
        if self.learning_rate == "exponential":
            return ExponentialDecay()
        # scikit-learn's "adaptive": divide by 5 after n_iter_no_change epochs without improvement; stop
        # once the rate is down to 1e-6.
        monitor = "val_score" if self.early_stopping else "loss"
        return ReduceOnPlateau(factor=0.2, patience=self.n_iter_no_change + 1, tol=self.tol, min_lr=1e-6,
                               monitor=monitor, stop=True)

    def _train(self, X, y, sample_weight, epochs, incremental, grad_scale, loss_scale, comm=None):
        """Train the network on prepared data; record scikit-learn's fitted attributes.

        With an MPI communicator ``comm`` (see :func:`pyfastnn.train.fit`), ``batch_size`` is per rank and the
        weight decay is that of the global batch (ranks × batch rows), as one process with that batch has.

        ``grad_scale``: scikit-learn's gradient over pyfastnn's; ``loss_scale``: its reported loss over
        pyfastnn's. They differ for a multi-output regressor: scikit-learn reports ½·(mean over outputs) but
        its gradient is that of ½·(sum over outputs)."""
        if self.solver == "lbfgs":
            if comm is not None:
                raise ValueError("comm (distributed training) needs a stochastic solver, 'sgd' or 'adam'; "
                                 "solver='lbfgs' trains in one process")
            return self._train_lbfgs(X, y, sample_weight, grad_scale, loss_scale)
        n = X.shape[0]
        ranks = 1 if comm is None else comm.Get_size()
        batch = min(200, n) if self.batch_size == "auto" else self.batch_size
        if comm is not None:
            # Per rank, the same on every rank (fit takes at most a shard's rows from each rank's own).
            batch = 200 if self.batch_size == "auto" else self.batch_size
        elif batch > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                          UserWarning, stacklevel=3)
            batch = n
        x_val = None
        early = self.early_stopping and not incremental
        if early:
            stratify = y if self._stratify() else None
            parts = train_test_split(X, y, *(() if sample_weight is None else (sample_weight,)),
                                     random_state=self._random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
            X, x_val, y, y_val = parts[:4]
            sample_weight, sw_val = (parts[4], parts[5]) if sample_weight is not None else (None, None)
            if X.shape[0] < 1 or x_val.shape[0] < 1:
                raise ValueError("early_stopping needs enough samples to hold out validation_fraction of them")
            if comm is None:
                batch = min(batch, X.shape[0])
        if self._optimizer is None or not incremental:
            self._optimizer = self._make_optimizer(batch * ranks, grad_scale)
        schedule = self._schedule()
        seed = int(self._random_state.randint(np.iinfo(np.int32).max))
        kwargs = {"tol": None if incremental else self.tol, "patience": self.n_iter_no_change + 1}
        if early:
            kwargs.update(validation_data=(x_val, self._targets(y_val), sw_val), early_stopping=True,
                          monitor=lambda net: self._validation_score(x_val, y_val, sw_val))
        if isinstance(schedule, ReduceOnPlateau):
            kwargs["patience"] = epochs + 1  # the schedule, not fit, decides when a plateau ends training
        with self._on_backend():
            history = _fit(self.net_, X, self._targets(y), loss=self._loss, optimizer=self._optimizer,
                           batch_size=batch, epochs=epochs, shuffle=bool(self.shuffle), seed=seed,
                           callbacks=list(self.callbacks or ()), progress=bool(self.verbose),
                           sample_weight=sample_weight, lr_schedule=schedule, comm=comm, **kwargs)
        self.history_ = history
        for value in history["loss"]:
            self.loss_curve_.append(loss_scale * value)
        self.loss_ = self.loss_curve_[-1]
        self.t_ += X.shape[0] * len(history)
        self.n_iter_ = len(history) if not incremental else getattr(self, "n_iter_", 0) + len(history)
        if early:
            self.validation_scores_.extend(history["val_score"])
            self.best_validation_score_ = max(self.validation_scores_)
        elif self.best_loss_ is not None:
            self.best_loss_ = min(self.best_loss_, min(self.loss_curve_))
        if not incremental and history.stop_reason == "epochs":
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        return self

    def _train_lbfgs(self, X, y, sample_weight, grad_scale, loss_scale):
        """Full-batch L-BFGS as scikit-learn's lbfgs solver: the same objective (its loss plus
        0.5·alpha·‖W‖²/n_samples, n_samples the sum of the weights under ``sample_weight``), scipy's
        L-BFGS-B with maxiter=max_iter, maxfun=max_fun, gtol=tol.

        pyfastnn's loss times ``grad_scale`` has scikit-learn's gradient, so that is what L-BFGS
        minimises. For a multi-output regressor scikit-learn's reported loss (a mean over the outputs) is not
        the function its gradient belongs to, and its line search sees them mixed; here they agree, and
        ``loss_`` is still reported in scikit-learn's scale."""
        callbacks = list(self.callbacks or ())
        started = time.perf_counter()
        stopped = []

        def reported(data_loss, penalty):
            return loss_scale * data_loss + penalty

        def after_iteration(iteration, data_loss, penalty):
            logs = {"loss": reported(data_loss, penalty), "time": time.perf_counter() - started}
            if self.verbose:
                print(f"Iteration {iteration}, loss = {logs['loss']:.8f}", file=sys.stderr)
            if any([bool(cb(iteration, dict(logs))) for cb in callbacks]):  # every callback sees it
                stopped.append(iteration)
            return bool(stopped)

        with self._on_backend():
            result = minimize_lbfgs(self.net_, X, self._targets(y), self._loss, sample_weight=sample_weight,
                                    alpha=self.alpha, scale=grad_scale, max_iter=self.max_iter,
                                    max_fun=self.max_fun, tol=self.tol, callback=after_iteration)
        self.n_iter_ = min(result.nit, self.max_iter)
        self.loss_ = reported(result.data_loss, result.penalty)
        if result.status != 0:  # scikit-learn's warning (a callback's stop is not a failure)
            message = (f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                       f"(status={result.status}):\n{result.message}\n")
            if self.n_iter_ == self.max_iter:
                message += ("\nIncrease the number of iterations to improve the convergence "
                            f"(max_iter={self.max_iter}).")
            if not stopped:
                warnings.warn(message, ConvergenceWarning, stacklevel=5)  # the caller of fit
        return self

    def _start(self, X, y, incremental, sample_weight):
        """Validate, and (re)build the network when this call starts from scratch."""
        sizes, dtype = self._check_params()
        first = not hasattr(self, "net_") or (not self.warm_start and not incremental)
        if not first:
            dtype = self.net_.dtype
        X, y = validate_data(self, X, y, reset=first, dtype=dtype or [np.float64, np.float32], order="C",
                             accept_sparse="csr", multi_output=True, y_numeric=self._regression)
        dtype = X.dtype
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=dtype)
        if first or not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        return X, y, sample_weight, sizes, dtype, first

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True  # scipy.sparse X trains the first layer as an embedding table
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multilayer perceptron classifier trained by pyfastnn; scikit-learn's ``MLPClassifier`` interface.

    Binary targets get one sigmoid output and binary cross-entropy; several classes a softmax layer and
    cross-entropy; a label-indicator matrix (multi-label) one sigmoid output per label. See the module
    docstring for what differs from scikit-learn.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Neurons of each hidden layer, input to output: the network is [n_features, *hidden_layer_sizes,
        n_outputs].
    activation : {"relu", "identity", "logistic", "tanh", "linear", "sigmoid", "piecewise_linear"}
        Activation of the hidden layers (default "relu"). scikit-learn's names are read as pyfastnn's
        ("identity" is "linear", "logistic" is "sigmoid"); "piecewise_linear" is clip(z + 1/2, 0, 1).
    solver : {"adam", "sgd", "lbfgs"}, default "adam"
        "sgd": stochastic gradient descent with ``momentum`` (Nesterov's when ``nesterovs_momentum``); "adam":
        Adam with ``beta_1``, ``beta_2``, ``epsilon``; "lbfgs": full-batch L-BFGS (scipy.optimize's
        L-BFGS-B on the network's native loss and gradients), often the better choice for small data sets. The
        parameters of mini-batches, rates and early stopping apply to the stochastic solvers only.
    alpha : float >= 0, default 1e-4
        L2 penalty on the weights (not the biases), as scikit-learn: each batch of B rows adds
        0.5·alpha·‖W‖²/B; under lbfgs the whole data set is the batch, B the sum of the sample weights.
    batch_size : int >= 1 or "auto", default "auto"
        Rows per update; "auto" is min(200, n_samples). A size above n_samples is clipped, with a warning.
    learning_rate : {"constant", "invscaling", "adaptive", "step", "exponential"}, default "constant"
        How the rate changes between epochs, for the sgd solver only. "invscaling": η = η₀/(t + 1)^power_t,
        t the samples seen; "adaptive": divided by 5 when the training loss (the validation score under
        ``early_stopping``) has not improved by more than ``tol`` for ``n_iter_no_change`` + 1 epochs, and
        training ends once that happens at 1e-6; "step": halved every 10 epochs; "exponential": times 0.95
        every epoch (see :mod:`pyfastnn.schedules`).
    learning_rate_init : float > 0, default 1e-3
        The initial learning rate η₀.
    power_t : float >= 0, default 0.5
        The exponent of "invscaling".
    max_iter : int >= 1, default 200
        The most epochs ``fit`` trains (``partial_fit`` trains one per call); under lbfgs, the most
        iterations.
    shuffle : bool, default True
        Visit the samples in a new random order every epoch.
    random_state : None, int or numpy.random.RandomState, default None
        Seeds the initial weights, the shuffling and the ``early_stopping`` split. The same seed gives other
        initial weights than scikit-learn's (pyfastnn initialises He / Glorot itself).
    tol : float >= 0, default 1e-4
        ``fit`` stops when the training loss (the validation score under ``early_stopping``) has not improved
        by more than ``tol`` for ``n_iter_no_change`` + 1 epochs in a row (scikit-learn's count). With the
        "adaptive" rate, that condition lowers the rate instead. Under lbfgs: scipy's gtol, stop when no
        component of the objective's gradient exceeds ``tol`` in magnitude.
    verbose : bool, default False
        Print each epoch's (lbfgs: iteration's) progress to standard error.
    warm_start : bool, default False
        ``fit`` starts from the weights of the previous fit (keeping its dtype) instead of new ones.
    momentum : float in [0, 1], default 0.9
        Momentum of the sgd solver.
    nesterovs_momentum : bool, default True
        Nesterov's momentum for the sgd solver (when momentum > 0).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified by class for single-label
        classification), stop when the validation score (accuracy for the classifier, R² for the regressor)
        has not improved by more than ``tol`` for ``n_iter_no_change`` + 1 epochs, and end with the weights of
        the best epoch. ``partial_fit`` and lbfgs ignore it.
    validation_fraction : float in (0, 1), default 0.1
        The fraction held out for ``early_stopping``.
    beta_1, beta_2 : float in [0, 1), default 0.9, 0.999
        Adam's decay rates of the first and second moment estimates.
    epsilon : float > 0, default 1e-8
        Adam's ε (inside the bias correction; scikit-learn's is outside, a ~1e-4 relative difference in the
        first steps).
    n_iter_no_change : int >= 1, default 10
        The patience of ``tol``, ``early_stopping`` and the "adaptive" rate (see those).
    max_fun : int >= 1, default 15000
        Under lbfgs, the most evaluations of the loss and gradients (scipy's maxfun: checked at the end of
        each iteration, so the last one may go over).
    dtype : None, "float32" or "float64", default None
        The network's dtype. None: that of X (float32 stays float32, anything else becomes float64); pass
        float32 data or ``dtype="float32"`` for speed. ``warm_start`` and ``partial_fit`` keep the fitted
        network's dtype.
    backend : None, "cpp", "numba" or "numpy", default None
        The kernels ``fit`` and ``predict`` run on; None: pyfastnn's current backend
        (``pyfastnn.get_backend()``).
    callbacks : list of callables or None, default None
        Each is called as ``cb(epoch, logs)`` after every epoch (``logs``: the epoch's "loss", "lr", "time",
        and under ``early_stopping`` the validation values); one returning True stops training. Under lbfgs,
        after every iteration, with "loss" (``loss_``'s value then) and "time".
    class_weight : dict {class label: weight}, "balanced" or None, default None
        Multiplies each sample's weight (``sample_weight``, else 1) by that of its class; "balanced" uses
        n_samples / (n_classes · count of the class). Not for multi-label targets.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The class labels (for multi-label targets, the label columns).
    n_features_in_ : int
        The number of features seen by ``fit``.
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        The column names of X, when ``fit`` was given X with string column names (a DataFrame).
    net_ : pyfastnn.MLP
        The trained network.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape (N_i, N_{i+1}), the sizes of layers i and i + 1 counting the input as layer 0:
        scikit-learn's layout, transposed views of ``net_.weights`` (writing into them changes the network).
    intercepts_ : list of ndarray
        ``intercepts_[i]`` of shape (N_{i+1},): the arrays of ``net_.biases``.
    n_layers_ : int
        Layers including the input and the output layer: len(hidden_layer_sizes) + 2.
    n_outputs_ : int
        Neurons of the output layer.
    out_activation_ : str
        The output activation in scikit-learn's words: "logistic" (one output, or multi-label) or "softmax".
    loss_ : float
        The last epoch's training loss. Under lbfgs, scikit-learn's objective at the final weights: the
        training loss plus the L2 penalty.
    loss_curve_ : list of float
        The training loss of every epoch (the mean over its batches, each measured before its update),
        without the L2 penalty, scaled as scikit-learn reports it: the mean over the samples of the
        cross-entropy (softmax) or binary cross-entropy (summed over the outputs). Stochastic solvers only,
        as in scikit-learn.
    best_loss_ : float or None
        The smallest value of ``loss_curve_``; None under ``early_stopping``. Stochastic solvers only, as
        ``validation_scores_`` and ``best_validation_score_``.
    validation_scores_ : list of float or None
        Under ``early_stopping``, the validation score (accuracy) of every epoch; else None.
    best_validation_score_ : float or None
        The largest of ``validation_scores_``; None without ``early_stopping``.
    n_iter_ : int
        Epochs trained by ``fit`` (or, summed, by the ``partial_fit`` calls since); under lbfgs, the
        iterations of the last ``fit``.
    t_ : int
        Training samples seen: rows × epochs, summed over calls (lbfgs does not count them, as scikit-learn).
    history_ : pyfastnn.History
        What the last ``fit`` or ``partial_fit`` call logged per epoch (``history_["loss"]`` in pyfastnn's
        scale, ``history_.stop_reason``, ...). Stochastic solvers only (lbfgs reports through ``callbacks``).
    """

    _regression = False

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None, backend=None, callbacks=None,
                 class_weight=None):
        super().__init__(hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
                         learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
                         max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1,
                         beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
                         dtype=dtype, backend=backend, callbacks=callbacks)
        self.class_weight = class_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _stratify(self):
        return not self._label_binarizer.y_type_.startswith("multilabel")

    def _targets(self, y):
        return np.ascontiguousarray(self._label_binarizer.transform(y), dtype=self.net_.dtype)

    def _validation_score(self, x, y, sw):
        return accuracy_score(y, self.predict(x), sample_weight=sw)

    def _class_sample_weight(self, y, sample_weight):
        if self.class_weight is None:
            return sample_weight
        from sklearn.utils.class_weight import compute_sample_weight

        if self._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError("class_weight is not supported for multi-label targets")
        weights = compute_sample_weight(self.class_weight, y)
        return weights if sample_weight is None else sample_weight * weights

    def _fit_classifier(self, X, y, sample_weight, classes, incremental, comm=None):
        X, y, sample_weight, sizes, dtype, first = self._start(X, y, incremental, sample_weight)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)  # a column of labels, as scikit-learn reads it
        check_classification_targets(y)
        if first:
            if comm is not None and classes is None and y.ndim == 1:
                # A rank's shard may lack some classes: the classes are those of every rank.
                classes = np.unique(np.concatenate(comm.allgather(np.unique(y))))
            binarizer = LabelBinarizer()
            binarizer.fit(classes if classes is not None else y)
            self._label_binarizer = binarizer
            self.classes_ = binarizer.classes_
            if len(self.classes_) < 2 and not binarizer.y_type_.startswith("multilabel"):
                raise ValueError(f"the classifier needs samples of at least 2 classes; got 1 class: {self.classes_}")
            multi = binarizer.y_type_ == "multiclass"
            n_out = len(self.classes_) if multi or binarizer.y_type_.startswith("multilabel") else 1
            self._loss = "cross_entropy" if multi else "binary_cross_entropy"
            self._new_network(X.shape[1], sizes, n_out, "softmax" if multi else "sigmoid", dtype,
                              int(self._random_state.randint(np.iinfo(np.int32).max)))
        else:
            if classes is not None and not np.array_equal(np.asarray(classes), self.classes_):
                raise ValueError(f"`classes={list(classes)}` is not the same as on the first call to partial_fit, "
                                 f"{list(self.classes_)}")
            kind = type_of_target(y)
            if not kind.startswith("multilabel") and not np.isin(np.unique(y), self.classes_).all():
                raise ValueError(f"y has classes not seen at the first fit: expected {list(self.classes_)}, got "
                                 f"{sorted(set(np.unique(y)) - set(self.classes_))}")
        sample_weight = self._class_sample_weight(y, sample_weight)
        epochs = 1 if incremental else self.max_iter
        return self._train(X, y, sample_weight, epochs, incremental, 1.0, 1.0, comm)

    def fit(self, X, y, sample_weight=None, comm=None):
        """Train on X (n_samples, n_features) and y (labels, or a label-indicator matrix); returns self.

        ``comm``: an mpi4py communicator for distributed data-parallel training, each rank passing its own
        shard (see :func:`pyfastnn.train.fit`; ``batch_size`` is then per rank). The communicator is used
        during this call only, never stored: the estimator stays clonable and picklable."""
        return self._fit_classifier(X, y, sample_weight, None, incremental=False, comm=comm)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), keeping the weights and the optimizer state. The first call needs ``classes``
        (all the classes y may ever hold), unless the model has already been fitted. Stochastic solvers only:
        with solver="lbfgs" the estimator has no partial_fit, as scikit-learn's."""
        if not hasattr(self, "net_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit_classifier(X, y, sample_weight, classes, incremental=True)

    def _outputs(self, X):
        check_is_fitted(self, "net_")
        X = self._validate_x(X, reset=False)
        with self._on_backend():
            return self.net_.forward(X)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes) (one column per label for multi-label targets)."""
        f = self._outputs(X).astype(np.float64)
        if self.net_.output_activation == "sigmoid":
            # A finite logit's probability lies strictly inside (0, 1), but the sigmoid rounds to 1 beyond
            # z ≈ 37 (≈ 17 in float32), as a well separated label reaches under lbfgs: keep such values at the
            # nearest doubles inside the interval, the side the true value is on.
            np.clip(f, np.finfo(np.float64).tiny, np.nextafter(1.0, 0.0), out=f)
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return f
        if f.shape[1] == 1:
            return np.hstack([1.0 - f, f])
        return f / f.sum(axis=1, keepdims=True)  # a float32 softmax sums to 1 only within ~1e-7

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted classes (or a label-indicator matrix for multi-label targets)."""
        f = self._outputs(X)
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return self._label_binarizer.inverse_transform(f, threshold=0.5)
        if f.shape[1] == 1:
            return self.classes_[(f[:, 0] > 0.5).astype(np.int64)]
        return self.classes_[np.argmax(f, axis=1)]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multilayer perceptron regressor trained by pyfastnn; scikit-learn's ``MLPRegressor`` interface.

    Linear outputs and squared error, scaled like scikit-learn's (½·mean over outputs). See the module
    docstring for what differs from scikit-learn.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Neurons of each hidden layer, input to output: the network is [n_features, *hidden_layer_sizes,
        n_outputs].
    activation : {"relu", "identity", "logistic", "tanh", "linear", "sigmoid", "piecewise_linear"}
        Activation of the hidden layers (default "relu"). scikit-learn's names are read as pyfastnn's
        ("identity" is "linear", "logistic" is "sigmoid"); "piecewise_linear" is clip(z + 1/2, 0, 1).
    solver : {"adam", "sgd", "lbfgs"}, default "adam"
        "sgd": stochastic gradient descent with ``momentum`` (Nesterov's when ``nesterovs_momentum``); "adam":
        Adam with ``beta_1``, ``beta_2``, ``epsilon``; "lbfgs": full-batch L-BFGS (scipy.optimize's
        L-BFGS-B on the network's native loss and gradients), often the better choice for small data sets. The
        parameters of mini-batches, rates and early stopping apply to the stochastic solvers only.
    alpha : float >= 0, default 1e-4
        L2 penalty on the weights (not the biases), as scikit-learn: each batch of B rows adds
        0.5·alpha·‖W‖²/B; under lbfgs the whole data set is the batch, B the sum of the sample weights.
    batch_size : int >= 1 or "auto", default "auto"
        Rows per update; "auto" is min(200, n_samples). A size above n_samples is clipped, with a warning.
    learning_rate : {"constant", "invscaling", "adaptive", "step", "exponential"}, default "constant"
        How the rate changes between epochs, for the sgd solver only. "invscaling": η = η₀/(t + 1)^power_t,
        t the samples seen; "adaptive": divided by 5 when the training loss (the validation score under
        ``early_stopping``) has not improved by more than ``tol`` for ``n_iter_no_change`` + 1 epochs, and
        training ends once that happens at 1e-6; "step": halved every 10 epochs; "exponential": times 0.95
        every epoch (see :mod:`pyfastnn.schedules`).
    learning_rate_init : float > 0, default 1e-3
        The initial learning rate η₀.
    power_t : float >= 0, default 0.5
        The exponent of "invscaling".
    max_iter : int >= 1, default 200
        The most epochs ``fit`` trains (``partial_fit`` trains one per call); under lbfgs, the most
        iterations.
    shuffle : bool, default True
        Visit the samples in a new random order every epoch.
    random_state : None, int or numpy.random.RandomState, default None
        Seeds the initial weights, the shuffling and the ``early_stopping`` split. The same seed gives other
        initial weights than scikit-learn's (pyfastnn initialises He / Glorot itself).
    tol : float >= 0, default 1e-4
        ``fit`` stops when the training loss (the validation score under ``early_stopping``) has not improved
        by more than ``tol`` for ``n_iter_no_change`` + 1 epochs in a row (scikit-learn's count). With the
        "adaptive" rate, that condition lowers the rate instead. Under lbfgs: scipy's gtol, stop when no
        component of the objective's gradient exceeds ``tol`` in magnitude.
    verbose : bool, default False
        Print each epoch's (lbfgs: iteration's) progress to standard error.
    warm_start : bool, default False
        ``fit`` starts from the weights of the previous fit (keeping its dtype) instead of new ones.
    momentum : float in [0, 1], default 0.9
        Momentum of the sgd solver.
    nesterovs_momentum : bool, default True
        Nesterov's momentum for the sgd solver (when momentum > 0).
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified by class for single-label
        classification), stop when the validation score (accuracy for the classifier, R² for the regressor)
        has not improved by more than ``tol`` for ``n_iter_no_change`` + 1 epochs, and end with the weights of
        the best epoch. ``partial_fit`` and lbfgs ignore it.
    validation_fraction : float in (0, 1), default 0.1
        The fraction held out for ``early_stopping``.
    beta_1, beta_2 : float in [0, 1), default 0.9, 0.999
        Adam's decay rates of the first and second moment estimates.
    epsilon : float > 0, default 1e-8
        Adam's ε (inside the bias correction; scikit-learn's is outside, a ~1e-4 relative difference in the
        first steps).
    n_iter_no_change : int >= 1, default 10
        The patience of ``tol``, ``early_stopping`` and the "adaptive" rate (see those).
    max_fun : int >= 1, default 15000
        Under lbfgs, the most evaluations of the loss and gradients (scipy's maxfun: checked at the end of
        each iteration, so the last one may go over).
    dtype : None, "float32" or "float64", default None
        The network's dtype. None: that of X (float32 stays float32, anything else becomes float64); pass
        float32 data or ``dtype="float32"`` for speed. ``warm_start`` and ``partial_fit`` keep the fitted
        network's dtype.
    backend : None, "cpp", "numba" or "numpy", default None
        The kernels ``fit`` and ``predict`` run on; None: pyfastnn's current backend
        (``pyfastnn.get_backend()``).
    callbacks : list of callables or None, default None
        Each is called as ``cb(epoch, logs)`` after every epoch (``logs``: the epoch's "loss", "lr", "time",
        and under ``early_stopping`` the validation values); one returning True stops training. Under lbfgs,
        after every iteration, with "loss" (``loss_``'s value then) and "time".

    Attributes
    ----------
    n_features_in_ : int
        The number of features seen by ``fit``.
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        The column names of X, when ``fit`` was given X with string column names (a DataFrame).
    net_ : pyfastnn.MLP
        The trained network.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape (N_i, N_{i+1}), the sizes of layers i and i + 1 counting the input as layer 0:
        scikit-learn's layout, transposed views of ``net_.weights`` (writing into them changes the network).
    intercepts_ : list of ndarray
        ``intercepts_[i]`` of shape (N_{i+1},): the arrays of ``net_.biases``.
    n_layers_ : int
        Layers including the input and the output layer: len(hidden_layer_sizes) + 2.
    n_outputs_ : int
        Neurons of the output layer.
    out_activation_ : str
        The output activation in scikit-learn's words: "identity".
    loss_ : float
        The last epoch's training loss. Under lbfgs, scikit-learn's objective at the final weights: the
        training loss plus the L2 penalty.
    loss_curve_ : list of float
        The training loss of every epoch (the mean over its batches, each measured before its update),
        without the L2 penalty, scaled as scikit-learn reports it: ½·squared error averaged over the
        outputs and the samples. Stochastic solvers only, as in scikit-learn.
    best_loss_ : float or None
        The smallest value of ``loss_curve_``; None under ``early_stopping``. Stochastic solvers only, as
        ``validation_scores_`` and ``best_validation_score_``.
    validation_scores_ : list of float or None
        Under ``early_stopping``, the validation score (R²) of every epoch; else None.
    best_validation_score_ : float or None
        The largest of ``validation_scores_``; None without ``early_stopping``.
    n_iter_ : int
        Epochs trained by ``fit`` (or, summed, by the ``partial_fit`` calls since); under lbfgs, the
        iterations of the last ``fit``.
    t_ : int
        Training samples seen: rows × epochs, summed over calls (lbfgs does not count them, as scikit-learn).
    history_ : pyfastnn.History
        What the last ``fit`` or ``partial_fit`` call logged per epoch (``history_["loss"]`` in pyfastnn's
        scale, ``history_.stop_reason``, ...). Stochastic solvers only (lbfgs reports through ``callbacks``).
    """

    _regression = True
    _loss = "squared_error"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _stratify(self):
        return False

    def _targets(self, y):
        y = np.asarray(y, dtype=self.net_.dtype)
        return np.ascontiguousarray(y.reshape(-1, 1) if y.ndim == 1 else y)

    def _validation_score(self, x, y, sw):
        return r2_score(y, self.predict(x), sample_weight=sw)

    def _fit_regressor(self, X, y, sample_weight, incremental, comm=None):
        X, y, sample_weight, sizes, dtype, first = self._start(X, y, incremental, sample_weight)
        n_out = 1 if y.ndim == 1 else y.shape[1]
        if first:
            self._new_network(X.shape[1], sizes, n_out, "linear", dtype,
                              int(self._random_state.randint(np.iinfo(np.int32).max)))
            self._single_output = y.ndim == 1
        elif n_out != self.n_outputs_:
            raise ValueError(f"y has {n_out} outputs but the model was fitted with {self.n_outputs_}")
        epochs = 1 if incremental else self.max_iter
        return self._train(X, y, sample_weight, epochs, incremental, 0.5, 1.0 / (2 * n_out), comm)

    def fit(self, X, y, sample_weight=None, comm=None):
        """Train on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_outputs); returns self.

        ``comm``: an mpi4py communicator for distributed data-parallel training (see
        :meth:`MLPClassifier.fit`)."""
        return self._fit_regressor(X, y, sample_weight, incremental=False, comm=comm)

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), keeping the weights and the optimizer state. Stochastic solvers only: with
        solver="lbfgs" the estimator has no partial_fit, as scikit-learn's."""
        return self._fit_regressor(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets, (n_samples,) for a single output, else (n_samples, n_outputs)."""
        check_is_fitted(self, "net_")
        X = self._validate_x(X, reset=False)
        with self._on_backend():
            f = self.net_.forward(X).astype(np.float64)
        return f[:, 0] if self._single_output else f
