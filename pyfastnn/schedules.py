"""Learning-rate schedules: how the learning rate η changes from one epoch to the next.

``fit(..., lr_schedule=...)`` takes one of these objects or its name. ``fit`` calls ``start(lr)`` once with the
optimizer's learning rate, then ``after_epoch(epoch, logs, samples_seen)`` after every epoch; what that returns is
the learning rate of the next epoch (and is logged as "lr"). A schedule is per epoch because ``fit`` runs each
epoch's mini-batches in one native call; within an epoch η is constant.

======================  ================================================================================
``"constant"``          η stays η₀
``StepDecay(s, γ)``     η = η₀·γ^⌊epoch/s⌋
``ExponentialDecay(γ)`` η = η₀·γ^epoch
``InverseScaling(p)``   η = η₀ / (t + 1)^p, t = samples seen so far (scikit-learn's "invscaling")
``ReduceOnPlateau``     η ← η·factor when the monitored value has not improved by more than ``tol`` for
                        ``patience`` epochs; optionally stops training at ``min_lr`` (scikit-learn's
                        "adaptive")
======================  ================================================================================
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping


def _number(name: str, value: object, low: float, high: float | None = None, low_open: bool = True,
            high_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite real number; got {value!r}")
    value = float(value)
    if value < low or (low_open and value == low) or (high is not None and (value > high or (high_open and value == high))):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lo}{low}, {'∞' if high is None else high}{hi}; got {value}")
    return value


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    return int(value)


class LRSchedule:
    """Base class: a constant learning rate."""

    stopped = False  # a schedule may end training (ReduceOnPlateau with stop=True)
    lr0: float  # the optimizer's rate, set by start
    lr: float  # the current rate

    def start(self, lr: float) -> None:
        """Called once by ``fit`` with the optimizer's learning rate η₀."""
        self.lr0 = self.lr = float(lr)

    def after_epoch(self, epoch: int, logs: Mapping[str, float], samples_seen: int) -> float:
        """Return the learning rate for the epoch after ``epoch`` (numbered from 1).

        ``logs`` holds what fit logged for the epoch ("loss", "lr", and with validation data "val_loss",
        "val_accuracy", "val_score"); ``samples_seen`` counts the samples trained on since fit began.
        """
        return self.lr

    def _config(self) -> dict[str, object]:
        """The parameters the schedule was made with (what a checkpoint checks on resume)."""
        return {k: v for k, v in vars(self).items() if not k.startswith(("lr", "_")) and k != "stopped"}

    def _checkpoint_state(self) -> dict[str, object]:
        """Everything ``after_epoch`` depends on, after ``start``: the rates, and a plateau's counters."""
        return {**{k: v for k, v in vars(self).items() if k not in self._config()}, "stopped": self.stopped}

    def _restore_checkpoint_state(self, state: Mapping[str, object]) -> None:
        expected = set(self._checkpoint_state())
        if set(state) != expected:
            raise ValueError(f"{type(self).__name__} keeps the state {sorted(expected)}; got {sorted(state)}")
        for key, value in state.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("lr"))
        return f"{type(self).__name__}({args})"


class Constant(LRSchedule):
    """η stays what the optimizer was given."""


class StepDecay(LRSchedule):
    """η = η₀·gamma^⌊epoch / step_size⌋: multiply by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, step_size: int = 10, gamma: float = 0.5) -> None:
        self.step_size = _count("step_size", step_size)
        self.gamma = _number("gamma", gamma, 0, 1, high_open=False)

    def after_epoch(self, epoch: int, logs: Mapping[str, float], samples_seen: int) -> float:
        self.lr = self.lr0 * self.gamma ** (epoch // self.step_size)
        return self.lr


class ExponentialDecay(LRSchedule):
    """η = η₀·gamma^epoch."""

    def __init__(self, gamma: float = 0.95) -> None:
        self.gamma = _number("gamma", gamma, 0, 1, high_open=False)

    def after_epoch(self, epoch: int, logs: Mapping[str, float], samples_seen: int) -> float:
        self.lr = self.lr0 * self.gamma**epoch
        return self.lr


class InverseScaling(LRSchedule):
    """η = η₀ / (t + 1)^power_t with t the number of samples trained on so far (scikit-learn's "invscaling")."""

    def __init__(self, power_t: float = 0.5) -> None:
        self.power_t = _number("power_t", power_t, 0, low_open=False)

    def after_epoch(self, epoch: int, logs: Mapping[str, float], samples_seen: int) -> float:
        self.lr = self.lr0 / (samples_seen + 1) ** self.power_t
        return self.lr


class ReduceOnPlateau(LRSchedule):
    """Multiply η by ``factor`` when ``monitor`` has not improved on its best value by more than ``tol`` for
    ``patience`` epochs in a row, never going below ``min_lr``.

    ``monitor``: "loss" (default), or with validation data "val_loss", "val_accuracy", or "val_score" (fit's
    ``monitor`` callable); losses should fall, accuracy and scores rise. With ``stop=True`` a plateau reached at
    ``min_lr`` ends training (``fit`` reports stop_reason "lr_plateau") — scikit-learn's "adaptive" rate is
    ``ReduceOnPlateau(factor=0.2, patience=n_iter_no_change + 1, tol=tol, min_lr=1e-6, stop=True)``.
    """

    MONITORS = ("loss", "val_loss", "val_accuracy", "val_score")

    def __init__(self, factor: float = 0.2, patience: int = 2, tol: float = 1e-4, min_lr: float = 1e-6,
                 monitor: str = "loss", stop: bool = False) -> None:
        self.factor = _number("factor", factor, 0, 1)
        self.patience = _count("patience", patience)
        self.tol = _number("tol", tol, 0, low_open=False)
        self.min_lr = _number("min_lr", min_lr, 0, low_open=False)
        if monitor not in self.MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(self.MONITORS)}; got {monitor!r}")
        self.monitor = monitor
        if not isinstance(stop, bool):
            raise TypeError(f"stop must be True or False; got {stop!r}")
        self.stop = stop

    def start(self, lr: float) -> None:
        super().start(lr)
        self.stopped = False
        self._best = math.inf
        self._bad = 0

    def after_epoch(self, epoch: int, logs: Mapping[str, float], samples_seen: int) -> float:
        if self.monitor not in logs:
            raise ValueError(f"ReduceOnPlateau monitors {self.monitor!r}, which this fit does not log "
                             "(val_* values need validation data; val_score needs a monitor callable)")
        value = logs[self.monitor] * (1.0 if self.monitor in ("loss", "val_loss") else -1.0)
        # As scikit-learn counts: no improvement unless below the best by more than tol; the best follows any fall.
        self._bad = self._bad + 1 if value > self._best - self.tol else 0
        self._best = min(self._best, value)
        if self._bad >= self.patience:
            self._bad = 0
            if self.stop and self.lr <= self.min_lr * (1 + 1e-9):  # at the floor (allowing for rounding)
                self.stopped = True
            self.lr = max(self.lr * self.factor, self.min_lr)
        return self.lr


SCHEDULES: dict[str, type[LRSchedule]] = {
    "constant": Constant,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "invscaling": InverseScaling,
    "plateau": ReduceOnPlateau,
}


def make_schedule(schedule: str | LRSchedule | None) -> LRSchedule:
    """A schedule from None (constant), a name in SCHEDULES (default parameters) or an LRSchedule."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, LRSchedule):
        return schedule
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown lr_schedule {schedule!r}; valid names: {', '.join(SCHEDULES)}")
        return SCHEDULES[schedule]()
    raise TypeError(f"lr_schedule must be None, a name ({', '.join(SCHEDULES)}) or a pyfastnn.schedules object; "
                    f"got {type(schedule).__name__}")
