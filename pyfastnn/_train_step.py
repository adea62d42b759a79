"""``MLP.train_step`` on the compiled backend: one native call per step.

A step called from a Python loop on a small batch takes a few microseconds of arithmetic, so the per-call
checks and copies of the general path (pyfastnn/network.py) would cost many times the step itself. Here a
native plan (``_core.step_plan``) is made once per network, batch size, loss and optimizer: it has checked the
network's arrays, its buffers and the optimizer's state, and each step re-checks only what a caller may
change between calls (the parameter arrays, by identity; x and y in full, natively). The plan writes nothing
unless the loss is finite and below the explosion limit, and undoes an update that leaves a value not finite,
so no snapshot is taken in Python.

What the plan does not take (inputs that need converting, sparse rows, anything invalid) goes to the general
path, which converts it or raises the error it always raised: ``fast_train_step`` then returns None having
written nothing. The update itself is the same kernel code as the general path's, so both give bit-identical
weights.
"""

import math

import numpy as np

from .losses import LOSSES, prepare_targets
from .network import EXPLOSION, check_sample_weight
from .optim import Optimizer

_ndarray = np.ndarray

# StepPlan.step's status codes (bindings_nn.cpp, step_status).
_DONE, _BAD_LOSS, _OVER_LIMIT, _OVERFLOW, _UNCHECKED, _STALE = range(6)


class _Plan:
    """A native plan and what it was made for: ``key`` (optimizer, its version, the loss argument, rows,
    straight_through, the activations); and the explosion limit of the first-step loss ``ref`` it was last
    computed from."""

    __slots__ = ("key", "limit", "loss", "native", "ref")


def _make_plan(net, kernels, optimizer, loss_arg, rows):
    """A plan for these arguments, after the checks the general path makes first (same errors, same order);
    None when the optimizer's state is for other arrays (or there is none yet): the general path makes it anew
    after checking the inputs, so a call that fails leaves the optimizer as it was, and the next call plans."""
    net._check_trainable()
    net._check_parameters()
    loss = net._resolve_loss(loss_arg)
    if optimizer._key != optimizer._key_of(net.weights + net.biases):
        return None
    plan = _Plan()
    spec = optimizer.native_spec(net.weights + net.biases)  # binds the state (may make it anew)
    outs, zs, deltas = net._new_workspace(rows)
    dws, dbs = net._gradient_buffers()
    plan.native = kernels.step_plan(net.weights, net.biases, net.activations, loss, net.straight_through,
                                    spec, rows, outs, zs, deltas, dws, dbs)
    # After native_spec, which may count a new state; the same tuple as fast_train_step's test.
    plan.key = (optimizer, optimizer.__dict__.get("_version", 0), loss_arg, rows, net.straight_through,
                list(net.activations))
    plan.loss, plan.ref, plan.limit = loss, None, math.inf
    net._step_plan = plan
    return plan


def _named_optimizer(net, optimizer):
    """The optimizer of the network's named-optimizer cache that a train_step argument (None or a name) stands
    for, or None if the general path must resolve it (a name met for the first time, or something invalid)."""
    if optimizer is None:
        optimizer = "sgd"
    elif type(optimizer) is not str:
        return None
    named = net.__dict__.get("_named_optimizers")
    return named.get(optimizer.lower()) if named else None


def fast_train_step(net, guard, kernels, x, y, loss, optimizer, sample_weight):
    """``net.train_step`` through a native plan (the caller holds the training lock of ``guard``, the
    network's _Guard): the loss, or None when the general path must take the call (nothing was written)."""
    if type(x) is not _ndarray or type(y) is not _ndarray or x.ndim != 2:
        return None
    if not isinstance(optimizer, Optimizer):
        optimizer = _named_optimizer(net, optimizer)
        if optimizer is None:
            return None
    rows = x.shape[0]
    state = net.__dict__
    plan = state.get("_step_plan")
    if plan is None or plan.key != (optimizer, optimizer.__dict__.get("_version", 0), loss, rows,
                                    net.straight_through, net.activations):
        if rows == 0 or (loss is not None and (type(loss) is not str or loss not in LOSSES)):
            return None  # the general path names what is wrong
        plan = _make_plan(net, kernels, optimizer, loss, rows)
        if plan is None:
            return None
    sw = None
    if sample_weight is not None:
        try:
            sw = check_sample_weight(sample_weight, rows, net.dtype)
        except (TypeError, ValueError):
            return None  # raised by the general path, after its checks of x and y
    ref = state.get("_first_step_loss")
    if ref is not plan.ref:  # set once, by the first step
        plan.ref, plan.limit = ref, math.inf if ref is None else EXPLOSION * max(ref, 1e-12)
    limit = plan.limit
    guard.begin_write()  # inference in other threads sees the network before or after the step
    try:
        try:
            status, value, total, done = plan.native.step(net.weights, net.biases, x, y, sw, optimizer.lr,
                                                          optimizer._step(), limit)
            if status == _STALE:  # a parameter array was replaced: the general path checks it, the next
                del state["_step_plan"]  # call plans again
                return None
            if status == _UNCHECKED:
                return None
            mean = total / (rows if sw is None else float(sw.sum(dtype=np.float64)))
            if status == _OVER_LIMIT:
                targets = prepare_targets(plan.loss, y, net.layer_sizes[-1], rows, net.dtype)
                if mean > EXPLOSION * net._null_loss(kernels, plan.loss, targets):
                    # The loss is measured before the update, so an explosion shows one step after the update
                    # that caused it: this step is refused, and the message says the weights had diverged.
                    raise net._step_failure(
                        f"the loss is {mean:.3g}, more than {EXPLOSION:g} times its level at this network's "
                        f"first train_step ({ref:.3g}): the weights diverged in earlier steps", x, targets,
                        optimizer)
                status, value, total, done = plan.native.step(net.weights, net.biases, x, y, sw, optimizer.lr,
                                                              optimizer._step(), math.inf)
            if status == _BAD_LOSS or status == _OVERFLOW:
                targets = prepare_targets(plan.loss, y, net.layer_sizes[-1], rows, net.dtype)
                what = (f"the loss is {value}: training diverged" if status == _BAD_LOSS
                        else f"this update overflowed {net.dtype.name}")
                raise net._step_failure(what, x, targets, optimizer)
            if done:
                if ref is None:
                    net._first_step_loss = mean
                optimizer.advance(1)  # last: an interrupt before it finds the step undone, after it recorded
            return mean
        except BaseException:  # e.g. Ctrl-C after the native step, before it was recorded: undo it
            plan.native.undo()  # (a refused step has nothing to undo: nothing written, or put back)
            raise
    finally:
        guard.end_write()
