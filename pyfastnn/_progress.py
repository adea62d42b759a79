"""A small progress reporter for training epochs (no dependencies).

On a terminal it redraws one line with a bar::

    epoch 12/30 [########------------] loss 0.1234 val_acc 0.9700 1.2s

Anywhere else (a log file, a pipe, a notebook cell capturing text) it writes one plain line per epoch::

    epoch 12/30  loss 0.123400  val_acc 0.970000  time 1.23s
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = ["Progress"]

_MODES = ("auto", "bar", "lines")
_BAR_WIDTH = 20


def _fmt_value(value: Any, digits: int) -> str:
    """Compact text for one logged value: ints as ints, floats with ``digits`` decimals, or in
    scientific notation (``digits - 2`` decimals) below 1e-3 and from 1e6 on, where fixed notation
    would print mostly zeros or too many digits."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()  # NumPy scalars and 0-d arrays
        except (ValueError, TypeError):
            pass
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        if v != 0.0 and not (1e-3 <= abs(v) < 1e6):
            return f"{v:.{max(digits - 2, 1)}e}"
        return f"{v:.{digits}f}"
    return str(value)


def _fmt_seconds(seconds: Any, digits: int) -> str:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    if not math.isfinite(s):
        return str(s)
    if s >= 3600:
        h, rem = divmod(int(s), 3600)
        return f"{h}h{rem // 60:02d}m"
    if s >= 60:
        m, rem = divmod(s, 60)
        return f"{int(m)}m{int(rem):02d}s"
    return f"{s:.{digits}f}s"


class Progress:
    """Report training progress once per epoch.

    Parameters
    ----------
    total_epochs : int or None
        Number of epochs planned; None when unknown (no bar and no "/total" is shown).
    stream : file-like, optional
        Where to write; default ``sys.stderr`` (looked up when the reporter is created). When that is None
        too (pythonw, some services and notebooks detach it), nothing is written.
    enabled : bool, default True
        False makes every method a no-op.
    mode : {"auto", "bar", "lines"}, default "auto"
        "bar" redraws a single line with ``\\r``; "lines" writes one line per epoch; "auto" picks "bar"
        when ``stream.isatty()`` is true, else "lines".

    Notes
    -----
    ``update(epoch, logs)`` shows the items of ``logs`` in insertion order. A ``"time"`` item is taken as
    seconds (e.g. the time elapsed since training started) and shown last with a unit; without one the
    reporter shows the seconds since it was created. Use as a context manager or call ``close()`` so the
    terminal line is finished.
    """

    def __init__(
        self,
        total_epochs: int | None,
        stream: TextIO | None = None,
        enabled: bool = True,
        mode: str = "auto",
    ) -> None:
        if total_epochs is not None:
            if not isinstance(total_epochs, numbers.Integral) or isinstance(total_epochs, bool):
                raise TypeError(f"total_epochs must be a positive int or None, got {total_epochs!r}")
            if total_epochs < 1:
                raise ValueError(f"total_epochs must be a positive int or None, got {total_epochs}")
            total_epochs = int(total_epochs)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {list(_MODES)}, got {mode!r}")
        self.total_epochs = total_epochs
        self.stream = sys.stderr if stream is None else stream
        self.enabled = bool(enabled) and self.stream is not None
        if self.enabled and not callable(getattr(self.stream, "write", None)):
            raise TypeError(f"stream must have a write() method, got {type(self.stream).__name__}")
        if mode == "auto":
            mode = "bar" if self._isatty() else "lines"
        self.mode = mode
        self._start = time.perf_counter()
        self._last_len = 0  # length of the line currently drawn in bar mode, 0 when none
        self._closed = False

    def _isatty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty()) if callable(isatty) else False
        except (ValueError, OSError):  # e.g. a closed file
            return False

    def _columns(self) -> int | None:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return None

    def update(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Report that ``epoch`` (counted from 1) has finished with the values in ``logs``.

        Parameters
        ----------
        epoch : int
            The epoch just finished, 1 for the first.
        logs : mapping of str to number, optional
            Values to show, e.g. ``{"loss": 0.12, "val_acc": 0.97}``.
        """
        if not self.enabled:
            return
        if not isinstance(epoch, numbers.Integral) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        if logs is None:
            logs = {}
        elif not isinstance(logs, Mapping):
            raise TypeError(f"logs must be a mapping of names to values, got {type(logs).__name__}")
        epoch = int(epoch)
        seconds = logs.get("time", time.perf_counter() - self._start)
        items = [(str(k), v) for k, v in logs.items() if k != "time"]
        if self.mode == "bar":
            self._draw_bar(epoch, items, seconds)
        else:
            self._write_line(epoch, items, seconds)
        self._closed = False

    def _epoch_text(self, epoch: int) -> str:
        if self.total_epochs is None:
            return f"epoch {epoch}"
        width = len(str(self.total_epochs))
        return f"epoch {epoch:>{width}}/{self.total_epochs}"

    def _write_line(self, epoch: int, items, seconds: Any) -> None:
        parts = [self._epoch_text(epoch)]
        parts += [f"{k} {_fmt_value(v, 6)}" for k, v in items]
        parts.append(f"time {_fmt_seconds(seconds, 2)}")
        self.stream.write("  ".join(parts) + "\n")
        self._flush()

    def _draw_bar(self, epoch: int, items, seconds: Any) -> None:
        parts = [self._epoch_text(epoch)]
        if self.total_epochs is not None:
            filled = min(_BAR_WIDTH, round(_BAR_WIDTH * epoch / self.total_epochs))
            parts.append("[" + "#" * filled + "-" * (_BAR_WIDTH - filled) + "]")
        parts += [f"{k} {_fmt_value(v, 4)}" for k, v in items]
        parts.append(_fmt_seconds(seconds, 1))
        line = " ".join(parts)
        cols = self._columns()
        if cols is not None and len(line) >= cols:
            line = line[: max(cols - 1, 1)]  # a wrapped line could not be redrawn in place by \r
        pad = " " * max(self._last_len - len(line), 0)  # wipe what is left of a longer previous line
        self.stream.write("\r" + line + pad)
        self._last_len = len(line)
        self._flush()

    def _flush(self) -> None:
        flush = getattr(self.stream, "flush", None)
        if callable(flush):
            flush()

    def close(self) -> None:
        """Finish the report: end the bar's line. Safe to call more than once."""
        if not self.enabled or self._closed:
            return
        self._closed = True
        if self.mode == "bar" and self._last_len:
            self.stream.write("\n")
            self._last_len = 0
            self._flush()

    def __enter__(self):  # returns self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
