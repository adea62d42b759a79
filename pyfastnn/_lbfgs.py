"""Full-batch training by L-BFGS (scipy.optimize's L-BFGS-B) over the network's native loss and gradients.

The objective is scikit-learn's for its lbfgs solver, in the network's own loss:

    F(θ) = scale · C(θ) + ½·alpha·Σ_l ‖W^l‖² / S

C the (weighted) batch-mean loss of :meth:`MLP.loss`, S the number of samples (the sum of their weights),
the biases not penalised. scipy sees one float64 vector θ = [W^1, ..., W^L, b^1, ..., b^L], each array
flattened in its memory order (so the embedding layout of W^1 is flattened without a copy); the network keeps
its dtype.
"""

import math

import numpy as np
import scipy.optimize

from . import _backend
from .network import _all_finite, _one_trainer_at_a_time, check_sample_weight


def _flat(a):
    """A 1-D view of a C- or F-contiguous array (as the network's parameters are checked to be), in memory
    order."""
    return a.ravel(order="K")


def _like(buffer, a):
    """``buffer`` (a.size,) viewed with a's shape and memory layout."""
    if a.flags.c_contiguous:
        return buffer.reshape(a.shape)
    return buffer.reshape(a.shape[::-1]).T  # the embedding layout: the transpose of a C-contiguous table


@_one_trainer_at_a_time
def minimize_lbfgs(net, x, y, loss=None, *, sample_weight=None, alpha=0.0, scale=1.0, max_iter=200,
                   max_fun=15000, tol=1e-4, callback=None):
    """Train ``net`` in place by L-BFGS on the whole of (x, y).

    Parameters
    ----------
    net : MLP
    x : array (n, N_0) or scipy.sparse matrix
    y : targets as :meth:`MLP.loss` takes them
    loss : str or None
        The network's loss (its default for the output activation when None).
    sample_weight : array (n,) or None
        Weights of the samples: C is their weighted mean and S their sum.
    alpha : float >= 0
        The L2 penalty.
    scale : float > 0
        The factor of C in F (½ gives scikit-learn's ½·squared error from pyfastnn's squared error).
    max_iter, max_fun : int >= 1
        The most L-BFGS iterations and evaluations of F (scipy's maxiter and maxfun).
    tol : float >= 0
        scipy's gtol: stop when the largest gradient component is at most tol.
    callback : callable or None
        ``callback(iteration, data_loss, penalty) -> bool`` after each iteration (1-based), with C and the
        penalty term at the new point; True stops.

    Returns
    -------
    scipy.optimize.OptimizeResult
        scipy's result (``fun`` is F, ``nit``, ``nfev``, ``status``, ``message``) plus ``data_loss`` (C) and
        ``penalty`` at the final weights, which the network holds.

    Raises
    ------
    FloatingPointError
        If the loss or the weights end up not finite; the network then keeps its weights from before.
    KeyboardInterrupt
        On Ctrl-C (and any other exception inside an evaluation) the network holds the last iterate L-BFGS
        accepted, or its starting weights if none was yet: never a line search's trial point.
    """
    net._check_trainable()
    x, y, loss = net._prepare(x, y, loss)
    sw = () if sample_weight is None else (check_sample_weight(sample_weight, x.shape[0], net.dtype),)
    total_weight = float(sw[0].sum(dtype=np.float64)) if sw else float(x.shape[0])
    kernels = _backend.kernels()
    guard = net._guard()

    params = net.weights + net.biases
    bounds = np.cumsum([0] + [p.size for p in params])
    n_weights = int(bounds[net.n_layers])
    views = [_flat(p) for p in params]
    theta0 = np.concatenate(views).astype(np.float64)
    start = [p.copy(order="K") for p in params]
    # A float64 network backpropagates straight into the vector handed to scipy; a float32 one into its own
    # buffers, converted once per evaluation.
    grad = np.empty(theta0.size, dtype=np.float64)
    if net.dtype == np.float64:
        grads = [_like(grad[a:b], p) for a, b, p in zip(bounds[:-1], bounds[1:], params)]
    else:
        grads = [np.empty_like(p) for p in params]
    dws, dbs = grads[:net.n_layers], grads[net.n_layers:]
    penalty_rate = alpha / total_weight
    last = {"theta": None, "data": math.nan, "penalty": math.nan}

    def objective(theta):
        with guard.writing():  # readers in other threads see the weights before or after, never halfway
            for view, a, b in zip(views, bounds[:-1], bounds[1:]):
                view[...] = theta[a:b]
        with net._forward(kernels, x) as (outs, zs, deltas):
            data = kernels.backward(net.weights, net.activations, loss, x, y, outs, zs, deltas, dws, dbs,
                                    net.straight_through, *sw)
        if grads[0].dtype != np.float64:
            for g, a, b in zip(grads, bounds[:-1], bounds[1:]):
                grad[a:b] = _flat(g)
        grad[...] *= scale
        w = theta[:n_weights]
        grad[:n_weights] += penalty_rate * w
        penalty = 0.5 * penalty_rate * float(np.dot(w, w))
        last.update(theta=theta.copy(), data=float(data), penalty=penalty)
        # scipy copies the gradient before it evaluates again, so handing it this buffer is safe.
        return scale * float(data) + penalty, grad

    iteration = [0]
    accepted = [None]  # the last iterate L-BFGS accepted (None: still the starting point)

    def on_iteration(intermediate_result):
        iteration[0] += 1
        accepted[0] = intermediate_result.x.copy()
        if callback is not None and callback(iteration[0], last["data"], last["penalty"]):
            raise StopIteration

    try:
        result = scipy.optimize.minimize(objective, theta0, method="L-BFGS-B", jac=True, callback=on_iteration,
                                         options={"maxiter": max_iter, "maxfun": max_fun, "gtol": tol})
    except BaseException:
        # Ctrl-C or an error inside an evaluation: the network holds whatever point was being tried (a line
        # search's trial, or half-written); give it the last accepted iterate, a state L-BFGS reached.
        with guard.writing():
            if accepted[0] is None:
                for target, saved in zip(params, start):
                    np.copyto(target, saved)
            else:
                for view, a, b in zip(views, bounds[:-1], bounds[1:]):
                    view[...] = accepted[0][a:b]
        raise
    if last["theta"] is None or not np.array_equal(last["theta"], result.x):
        objective(result.x)  # the network and the recorded terms at scipy's answer
    if not (math.isfinite(result.fun) and _all_finite(params)):
        with guard.writing():
            for target, saved in zip(params, start):
                np.copyto(target, saved)
        raise FloatingPointError(
            f"L-BFGS ended on a loss of {result.fun} or non-finite weights; the weights were restored. Scale "
            "the inputs (e.g. to mean 0, standard deviation 1) or raise alpha"
        )
    result.data_loss, result.penalty = last["data"], last["penalty"]
    return result
