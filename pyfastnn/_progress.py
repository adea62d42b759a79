"""A small progress reporter for training (no dependencies).

On a terminal it redraws one line with a bar, also within an epoch (rows done so far)::

    epoch 12/30 [########------------] loss 0.1234 val_acc 0.9700 1.2s
    epoch 13/30 [########------------] 27000/60000 1.5s

Anywhere else (a log file, a pipe, CI, a notebook cell capturing text) it writes one plain line per epoch,
with no control characters::

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

__all__ = ["Progress", "terminal_columns"]

_MODES = ("auto", "bar", "lines")
_BAR_WIDTH = 20  # the bar's width when the terminal has room for it
_MIN_BAR_WIDTH = 5  # narrower than this the bar says nothing: it is left out
_DEFAULT_COLUMNS = 80


def terminal_columns(stream: Any) -> int:
    """The width of the terminal ``stream`` writes to, as ``shutil.get_terminal_size`` decides it.

    ``COLUMNS`` when it holds a positive int, else the size of the terminal behind ``stream.fileno()``; when
    that is unknown or 0 (a pseudo-terminal nobody sized, a pipe), 80.
    """
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError, TypeError):  # no fileno, a closed file, not a terminal
        columns = 0
    return columns if columns > 0 else _DEFAULT_COLUMNS


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
    return _printable(str(value))


def _printable(text: str) -> str:
    """``text`` with control characters (a newline or escape in a logged value) shown as '?', so a line stays
    one line and a log stays plain text."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _fmt_seconds(seconds: Any, digits: int) -> str:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return _printable(str(seconds))
    if not math.isfinite(s):
        return str(s)
    if s >= 3600:
        h, rem = divmod(int(s), 3600)
        return f"{h}h{rem // 60:02d}m"
    if s >= 60:
        m, rem = divmod(s, 60)
        return f"{int(m)}m{int(rem):02d}s"
    return f"{s:.{digits}f}s"


def _fit_line(head: str, fraction: float | None, items: list[str], tail: str, limit: int) -> str:
    """One line of at most ``limit`` characters: ``head``, a bar filled to ``fraction`` (None: no bar), the
    ``items`` and ``tail``. A narrow terminal shrinks the bar first, then leaves it out, then drops items from
    the end, then the tail; the head is cut only when nothing else is left."""
    items = list(items)
    while True:
        text = " ".join([head, *items, tail])
        room = limit - len(text) - 3  # a space and the brackets
        if fraction is not None and room >= _MIN_BAR_WIDTH:
            width = min(_BAR_WIDTH, room)
            filled = min(width, max(0, round(width * fraction)))
            bar = "[" + "#" * filled + "-" * (width - filled) + "]"
            return " ".join([head, bar, *items, tail])
        if len(text) <= limit:
            return text
        if items:
            items.pop()
        elif tail:
            tail = ""
        else:
            return head[:limit]


class Progress:
    """Report training progress: once per epoch, and on a terminal also within an epoch.

    Parameters
    ----------
    total_epochs : int or None
        Number of epochs planned; None when unknown (no "/total" is shown, and the bar only within an epoch).
    stream : file-like, optional
        Where to write; default ``sys.stderr`` (looked up when the reporter is created). When that is None
        too (pythonw, some services and notebooks detach it), nothing is written.
    enabled : bool, default True
        False makes every method a no-op.
    mode : {"auto", "bar", "lines"}, default "auto"
        "bar" redraws a single line with ``\\r``, fitted to the terminal's width (:func:`terminal_columns`);
        "lines" writes one plain line per epoch; "auto" picks "bar" when ``stream.isatty()`` is true, else
        "lines".

    Notes
    -----
    ``update(epoch, logs)`` shows the items of ``logs`` in insertion order. A ``"time"`` item is taken as
    seconds (e.g. the time elapsed since training started) and shown last with a unit; without one the
    reporter shows the seconds since it was created. ``within_epoch(epoch, rows_done, rows_total)`` redraws
    the bar during an epoch (bar mode only: a log gets one line per epoch). Use as a context manager or call
    ``close()`` so that the cursor ends on a fresh line.
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

    @property
    def shows_within_epoch(self) -> bool:
        """Whether :meth:`within_epoch` draws anything (an enabled bar); when not, a caller can skip the
        work."""
        return self.enabled and self.mode == "bar"

    def _isatty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty()) if callable(isatty) else False
        except (ValueError, OSError):  # e.g. a closed file
            return False

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
        epoch = self._check_epoch(epoch)
        if logs is None:
            logs = {}
        elif not isinstance(logs, Mapping):
            raise TypeError(f"logs must be a mapping of names to values, got {type(logs).__name__}")
        seconds = logs.get("time", time.perf_counter() - self._start)
        items = [(_printable(str(k)), v) for k, v in logs.items() if k != "time"]
        if self.mode == "bar":
            fraction = None if self.total_epochs is None else epoch / self.total_epochs
            texts = [f"{k} {_fmt_value(v, 4)}" for k, v in items]
            self._draw(epoch, fraction, texts, _fmt_seconds(seconds, 1))
        else:
            parts = [self._epoch_text(epoch)]
            parts += [f"{k} {_fmt_value(v, 6)}" for k, v in items]
            parts.append(f"time {_fmt_seconds(seconds, 2)}")
            self.stream.write("  ".join(parts) + "\n")
            self._flush()

    def within_epoch(self, epoch: int, rows_done: int, rows_total: int) -> None:
        """Report that epoch ``epoch`` (from 1) has gone through ``rows_done`` of its ``rows_total`` rows.

        Redraws the bar (overall progress, this epoch's fraction included) in bar mode; does nothing in lines
        mode, where each epoch gets its one line from :meth:`update`.

        Parameters
        ----------
        epoch : int
            The epoch running, 1 for the first.
        rows_done : int
            Rows of the epoch done so far, 0 to ``rows_total``.
        rows_total : int
            Rows in the epoch, at least 1.
        """
        if not self.shows_within_epoch:
            return
        epoch = self._check_epoch(epoch)
        for name, value in (("rows_done", rows_done), ("rows_total", rows_total)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if not 0 <= rows_done <= rows_total or rows_total < 1:
            raise ValueError(
                f"need 0 <= rows_done <= rows_total and rows_total >= 1; got {rows_done} of {rows_total}")
        part = rows_done / rows_total
        fraction = part if self.total_epochs is None else (epoch - 1 + part) / self.total_epochs
        seconds = time.perf_counter() - self._start
        self._draw(epoch, fraction, [f"{rows_done}/{rows_total}"], _fmt_seconds(seconds, 1))

    @staticmethod
    def _check_epoch(epoch: Any) -> int:
        if not isinstance(epoch, numbers.Integral) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        return int(epoch)

    def _epoch_text(self, epoch: int) -> str:
        if self.total_epochs is None:
            return f"epoch {epoch}"
        width = len(str(self.total_epochs))
        return f"epoch {epoch:>{width}}/{self.total_epochs}"

    def _draw(self, epoch: int, fraction: float | None, items: list[str], tail: str) -> None:
        # One column short of the width: a line that fills the last column wraps on some terminals, and a
        # wrapped line cannot be redrawn in place by \r.
        limit = max(terminal_columns(self.stream) - 1, 1)
        line = _fit_line(self._epoch_text(epoch), fraction, items, tail, limit)
        pad = " " * max(min(self._last_len, limit) - len(line), 0)  # wipe what is left of a longer line
        self.stream.write("\r" + line + pad)
        self._last_len = len(line)
        self._flush()

    def _flush(self) -> None:
        flush = getattr(self.stream, "flush", None)
        if callable(flush):
            flush()

    def close(self) -> None:
        """Finish the report: end the bar's line, so that the cursor is on a fresh line. Safe to call more
        than once."""
        if self.enabled and self.mode == "bar" and self._last_len:
            self.stream.write("\n")
            self._last_len = 0
            self._flush()

    def __enter__(self):  # returns self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
