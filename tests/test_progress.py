import io
import os
import select
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

try:  # POSIX only
    import fcntl
    import pty
    import termios
except ImportError:
    fcntl = pty = termios = None

import pyfastnn as pf
from pyfastnn import _backend, _ref
from pyfastnn._backend import BACKENDS
from pyfastnn._progress import Progress, terminal_columns


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_plain_mode_one_line_per_epoch():
    out = io.StringIO()
    p = Progress(30, stream=out)
    assert p.mode == "lines"
    p.update(1, {"loss": 0.5, "val_loss": np.float32(0.25), "val_acc": 0.9})
    p.update(12, {"loss": 0.123456789, "time": 1.234})
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].startswith("epoch  1/30")
    assert "loss 0.500000" in lines[0] and "val_loss 0.250000" in lines[0] and "val_acc 0.900000" in lines[0]
    # keys keep their insertion order
    assert lines[0].index("val_loss") < lines[0].index("val_acc")
    assert lines[1].startswith("epoch 12/30") and "loss 0.123457" in lines[1]
    assert lines[1].endswith("time 1.23s")


def test_compact_numbers():
    out = io.StringIO()
    p = Progress(None, stream=out, mode="lines")
    p.update(3, {"lr": 1e-5, "big": 2.5e7, "n": np.int64(7), "ok": True, "inf": float("inf"), "time": 125})
    line = out.getvalue().strip()
    assert line.startswith("epoch 3  ")  # unknown total: no "/total"
    assert "lr 1.0000e-05" in line and "big 2.5000e+07" in line
    assert "n 7 " in line and "ok True" in line and "inf inf" in line
    assert line.endswith("time 2m05s")


def test_tty_mode_redraws_with_carriage_return(no_columns):
    out = TTY()
    with Progress(4, stream=out) as p:
        assert p.mode == "bar"
        p.update(1, {"loss": 0.123456, "val_acc": 0.97, "time": 1.2})
        p.update(4, {"loss": 0.1})
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    first, second = text.split("\r")[1:]
    assert first == "epoch 1/4 [#####---------------] loss 0.1235 val_acc 0.9700 1.2s"
    assert second.startswith("epoch 4/4 [####################] loss 0.1000 ")
    # the shorter second line pads over what is left of the first
    assert len(second.rstrip("\n")) >= len(first)


def test_disabled_prints_nothing():
    out = TTY()
    p = Progress(10, stream=out, enabled=False)
    p.update(1, {"loss": 1.0})
    p.close()
    assert out.getvalue() == ""


def test_close_is_idempotent_and_lines_mode_forced():
    out = TTY()
    p = Progress(2, stream=out, mode="lines")
    p.update(1, {"loss": 1})
    p.close()
    p.close()
    assert out.getvalue() == "epoch 1/2  loss 1  time " + out.getvalue().split("time ")[1]
    assert "\r" not in out.getvalue() and out.getvalue().count("\n") == 1


def test_default_stream_is_stderr(capsys):
    p = Progress(1)
    p.update(1, {"loss": 0.5})
    p.close()
    captured = capsys.readouterr()
    assert captured.out == "" and "loss 0.500000" in captured.err


def test_argument_errors():
    with pytest.raises(ValueError, match="mode"):
        Progress(3, mode="fancy")
    with pytest.raises(ValueError, match="positive int or None, got 0"):
        Progress(0)
    with pytest.raises(TypeError, match="total_epochs"):
        Progress(2.5)
    p = Progress(3, stream=io.StringIO())
    with pytest.raises(ValueError, match="epoch"):
        p.update(-1, {})
    with pytest.raises(TypeError, match="mapping"):
        p.update(1, [("loss", 1.0)])


# ---- the terminal's width ----------------------------------------------------------------------------------


@pytest.fixture
def no_columns(monkeypatch):
    """No COLUMNS in the environment (a test run from a terminal may have it)."""
    monkeypatch.delenv("COLUMNS", raising=False)


def _redraws(text):
    """The lines a bar drew: what follows each \\r, without the final newline."""
    return [part.rstrip("\n") for part in text.split("\r")[1:]]


def _printable_lines(text):
    return all(line.isprintable() for line in text.split("\n"))


def test_columns_is_honoured_and_narrow_lines_shed_parts(monkeypatch):
    logs = {"loss": 0.123456, "lr": 0.1, "val_loss": 0.25, "val_accuracy": 0.97, "time": 1.2}
    values = "loss 0.1235 lr 0.1000 val_loss 0.2500 val_accuracy 0.9700 1.2s"
    for columns, want in [
        (200, "epoch 3/4 [###############-----] " + values),
        (86, "epoch 3/4 [########--] " + values),  # a narrower bar
        (80, "epoch 3/4 " + values),  # the values before the bar
        (60, "epoch 3/4 loss 0.1235 lr 0.1000 val_loss 0.2500 1.2s"),  # then values from the end
        (20, "epoch 3/4 1.2s"),
        (6, "epoch"),
    ]:
        monkeypatch.setenv("COLUMNS", str(columns))
        out = TTY()
        with Progress(4, stream=out) as p:
            p.update(3, logs)
        (line,) = _redraws(out.getvalue())
        assert line == want and len(line) < columns
        assert out.getvalue().endswith("\n")


def test_a_bad_columns_falls_back_to_the_terminal_or_80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "wide")
    assert terminal_columns(io.StringIO()) == 80  # no terminal behind a StringIO
    monkeypatch.setenv("COLUMNS", "0")
    assert terminal_columns(io.StringIO()) == 80
    monkeypatch.setenv("COLUMNS", "132")
    assert terminal_columns(io.StringIO()) == 132


def _pty_progress(columns):
    """Draw a bar on a real pseudo-terminal sized ``columns`` wide (0: never sized, as a fresh pty or some CI
    runners give); returns what the terminal received and the size the pty reports."""
    master, slave = pty.openpty()
    try:
        if columns is not None:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        reported = os.get_terminal_size(slave).columns
        with open(slave, "w", closefd=False) as stream, Progress(5, stream=stream) as p:
            assert p.mode == "bar"
            p.within_epoch(1, 300, 1000)
            p.update(1, {"loss": 0.5, "val_loss": 0.25, "val_accuracy": 0.875, "time": 0.5})
            p.within_epoch(2, 10, 1000)
        received = b""
        while select.select([master], [], [], 0.2)[0]:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            received += chunk
    finally:
        os.close(master)
        os.close(slave)
    return received.decode().replace("\r\n", "\n"), reported  # the pty's output processing turns \n into \r\n


@pytest.mark.skipif(pty is None, reason="no pty module on this platform")
def test_a_pty_of_0_columns_gets_80(no_columns):
    text, reported = _pty_progress(0)
    assert reported == 0
    lines = _redraws(text)
    assert lines[0].startswith("epoch 1/5 [#-------------------] 300/1000 ") and lines[0].endswith("s")
    assert lines[1] == "epoch 1/5 [###-----------] loss 0.5000 val_loss 0.2500 val_accuracy 0.8750 0.5s"
    assert lines[2].startswith("epoch 2/5 [####----------------] 10/1000 ")
    assert all(len(line) <= 79 for line in lines) and text.endswith("\n")


@pytest.mark.skipif(pty is None, reason="no pty module on this platform")
def test_a_pty_of_40_columns(no_columns):
    text, reported = _pty_progress(40)
    assert reported == 40
    lines = _redraws(text)
    assert lines[0].startswith("epoch 1/5 [") and "300/1000" in lines[0]
    assert lines[1].startswith("epoch 1/5 ") and "loss 0.5000" in lines[1]
    assert all(len(line) <= 39 for line in lines) and text.endswith("\n")


def test_not_a_tty_plain_lines_only(no_columns):
    read, write = os.pipe()
    with open(read) as reader, open(write, "w") as stream:
        p = Progress(3, stream=stream)
        assert p.mode == "lines" and not p.shows_within_epoch
        p.within_epoch(1, 5, 10)  # nothing: a log gets one line per epoch
        p.update(1, {"loss": 0.5, "note\x1b[31m": "a\nb", "time": 0.25})
        p.within_epoch(2, 5, 10)
        p.update(2, {"loss": 0.25})
        p.close()
        stream.close()
        text = reader.read()
    lines = text.split("\n")
    assert len(lines) == 3 and lines[2] == "" and _printable_lines(text)
    assert lines[0] == "epoch 1/3  loss 0.500000  note?[31m a?b  time 0.25s"
    assert lines[1].startswith("epoch 2/3  loss 0.250000  time ")


def test_within_epoch_draws_the_overall_fraction(no_columns):
    out = TTY()
    p = Progress(4, stream=out)
    assert p.shows_within_epoch
    p.within_epoch(3, 250, 1000)  # 2.25 of 4 epochs: 11.25 of 20 marks
    p.close()
    p.close()  # once only
    (line,) = _redraws(out.getvalue())
    assert line.startswith("epoch 3/4 [###########---------] 250/1000 ") and out.getvalue().endswith("s\n")
    out = TTY()
    with Progress(None, stream=out) as p:  # unknown total: the bar shows the epoch's own fraction
        p.within_epoch(7, 500, 1000)
    assert _redraws(out.getvalue())[0].startswith("epoch 7 [##########----------] 500/1000 ")


def test_close_without_a_redraw_writes_nothing():
    out = TTY()
    Progress(3, stream=out).close()
    assert out.getvalue() == ""


def test_within_epoch_argument_errors():
    p = Progress(3, stream=TTY())
    with pytest.raises(TypeError, match="rows_done must be an int"):
        p.within_epoch(1, 2.5, 10)
    with pytest.raises(TypeError, match="rows_total must be an int"):
        p.within_epoch(1, 2, None)
    with pytest.raises(ValueError, match="got 11 of 10"):
        p.within_epoch(1, 11, 10)
    with pytest.raises(ValueError, match="epoch"):
        p.within_epoch(-1, 1, 10)


# ---- progress within an epoch: the kernels' progress callable, on every backend ----------------------------

_LONG = {}  # backend → rows for an epoch of about 2 s (measured once per backend)
_SIZES = [16, 256, 256, 10]
_BATCH = 2


def _epoch(backend, n, progress, seed=0):
    """One shuffled epoch of train_epoch on ``backend`` over n rows (a fresh network from ``seed``); returns
    (the kernel's result, the trained parameters, seconds)."""
    kern = _backend.kernels(backend)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, _SIZES[0])).astype(np.float32)
    y = np.eye(_SIZES[-1], dtype=np.float32)[rng.integers(0, _SIZES[-1], n)]
    net = pf.MLP(_SIZES, seed=seed)
    outs = [np.empty((_BATCH, k), np.float32) for k in _SIZES[1:]]
    zs = [None] * (len(_SIZES) - 2) + [np.empty((_BATCH, _SIZES[-1]), np.float32)]
    deltas = [np.empty((_BATCH, k), np.float32) for k in _SIZES[1:]]
    dws, dbs = [np.empty_like(w) for w in net.weights], [np.empty_like(b) for b in net.biases]
    xbuf, ybuf = np.empty((_BATCH, _SIZES[0]), np.float32), np.empty((_BATCH, _SIZES[-1]), np.float32)
    spec = pf.Adam(1e-3).native_spec(net.weights + net.biases)
    start = time.monotonic()
    result = kern.train_epoch(net.weights, net.biases, net.activations, "cross_entropy", x, y,
                              rng.permutation(n), _BATCH, outs, zs, deltas, dws, dbs, xbuf, ybuf, False, spec,
                              progress=progress)
    return result, net.weights + net.biases, time.monotonic() - start


def _long_epoch_rows(backend):
    """Rows that make an epoch last about 2 s on this machine (the backends' speeds differ by 100×): at
    least 3 progress reports even if the machine gets twice as fast meanwhile."""
    if backend not in _LONG:
        if backend == "numba":
            _backend.kernels("numba").compile_all()
        n = 128
        while True:
            seconds = _epoch(backend, n, None)[2]
            if seconds > 0.3 or n >= 1 << 21:
                break
            n *= 4
        _LONG[backend] = min(int(n * 2.0 / seconds), 1 << 22)
    return _LONG[backend]


def _available(backend):
    info = pf.backends()[backend]
    if not info["available"]:
        pytest.skip(f"{backend}: {info['reason']}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_epoch_reports_progress_within_the_epoch(backend):
    _available(backend)
    n = _long_epoch_rows(backend)
    calls = []
    result, params, seconds = _epoch(backend, n, lambda rows: calls.append((time.monotonic(), rows)))
    times, rows = [t for t, _ in calls], [r for _, r in calls]
    # Several reports within the one epoch, the rows gone through so far: increasing, whole batches, below n.
    assert len(calls) >= 3, f"{len(calls)} progress calls in an epoch of {seconds:.2f} s"
    assert all(isinstance(r, int) for r in rows)
    assert all(0 < a < b < n for a, b in zip(rows, rows[1:])) and rows[-1] < n
    assert all(r % _BATCH == 0 for r in rows)
    # At most every PROGRESS_INTERVAL (the compiled core's clock is also CLOCK_MONOTONIC); a little slack for
    # the clocks' reading in two places.
    gaps = np.diff(times)
    assert gaps.min() >= _ref.PROGRESS_INTERVAL - 0.01, gaps
    assert len(calls) <= seconds / _ref.PROGRESS_INTERVAL + 1
    # Reporting changes nothing the epoch computes.
    plain, plain_params, _ = _epoch(backend, n, None)
    assert result == plain and result[1] == n
    assert all(np.array_equal(a, b) for a, b in zip(params, plain_params))


class _Stop(Exception):
    pass


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_exception_from_progress_ends_the_epoch(backend):
    _available(backend)
    n = _long_epoch_rows(backend)
    seen = []

    def stop(rows):
        seen.append(rows)
        raise _Stop(rows)

    start = time.monotonic()
    with pytest.raises(_Stop):
        _epoch(backend, n, stop)
    assert len(seen) == 1 and 0 < seen[0] < n
    assert time.monotonic() - start < 1.5  # at the first report (0.2 s), not at the end of the epoch (2 s)


@pytest.mark.parametrize("backend", BACKENDS)
def test_progress_must_be_callable(backend):
    _available(backend)
    with pytest.raises(TypeError, match="progress must be None or a callable progress"):
        _epoch(backend, 8, "every batch")


def _fit_with_progress(monkeypatch, stderr):
    """fit on a terminal / elsewhere, its kernel wrapped to record the progress argument and report half the
    epoch through it; returns (what the kernel was given each epoch, what stderr received)."""
    kernels = _backend.kernels()
    native = kernels.train_epoch
    given = []

    def recording(*args, progress=None, **kwargs):
        given.append(progress)
        if progress is not None:
            progress(50)
        return native(*args, progress=progress, **kwargs)

    monkeypatch.setattr(kernels, "train_epoch", recording)
    monkeypatch.setattr("sys.stderr", stderr)
    x, y = pf.datasets.load_digits()
    pf.MLP([64, 16, 10], seed=0).fit(x[:100], y[:100], epochs=2, batch_size=10)
    return given, stderr.getvalue()


def test_fit_draws_within_epochs_on_a_terminal(monkeypatch, no_columns):
    given, text = _fit_with_progress(monkeypatch, TTY())
    assert len(given) == 2 and all(callable(p) for p in given)
    lines = _redraws(text)
    assert [line.split("] ")[1].split()[0] for line in lines] == ["50/100", "loss", "50/100", "loss"]
    assert lines[0].startswith("epoch 1/2 [#####---------------] 50/100 ")  # 0.5 of 2 epochs
    assert lines[2].startswith("epoch 2/2 [###############-----] 50/100 ")
    assert text.endswith("\n") and text.count("\n") == 1


def test_fit_elsewhere_passes_no_progress(monkeypatch):
    given, text = _fit_with_progress(monkeypatch, io.StringIO())
    assert given == [None, None]
    assert len(text.splitlines()) == 2 and _printable_lines(text)


def _cli_train(tmp_path, on_pty, scale=1):
    """``pyfastnn train`` on an epoch of about a second or more (batch 1; ``scale`` times longer), its output
    on a fresh pseudo-terminal (0 columns: never sized) or on a pipe; returns the output and the training
    rows."""
    backend = pf.get_backend()
    n = scale * {"numpy": 2_500, "numba": 10_000}.get(backend, 100_000)
    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, X=rng.standard_normal((n, 16)).astype(np.float32), y=rng.integers(0, 3, n))
    argv = [sys.executable, "-c", "import sys; from pyfastnn.cli import main; sys.exit(main(sys.argv[1:]))",
            "train", "--data", str(data), "--layers", "64", "--batch-size", "1", "--epochs", "1",
            "--test-size", "0.2", "--backend", backend, "--no-save"]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if not on_pty:
        done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr, n - n // 5
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        slave = None
        received = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            received += chunk
        assert proc.wait(timeout=300) == 0, received.decode(errors="replace")
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    return received.decode().replace("\r\n", "\n"), n - n // 5


@pytest.mark.skipif(pty is None, reason="no pty module on this platform")
def test_cli_train_shows_progress_within_the_epoch(tmp_path):
    # The epoch's speed depends on the machine and its load: a longer epoch when one was too short to report.
    for scale in (1, 4, 16):
        text, rows = _cli_train(tmp_path, on_pty=True, scale=scale)
        lines = _redraws(text)
        within = [line for line in lines if line.startswith("epoch 1/1 [") and f"/{rows} " in line]
        if within:
            break
    assert within, text
    done = [int(line.split("] ")[1].split("/")[0]) for line in within]
    assert done == sorted(done) and all(0 < d < rows for d in done)
    # The epoch's own line last (80 columns: its values leave no room for the bar), then a fresh line.
    end = lines[-1].split("\n")
    assert end[0].startswith("epoch 1/1 loss ") and "val_accuracy" in end[0]
    assert end[1].startswith("trained in")
    assert all(len(line.split("\n")[0]) <= 79 for line in lines)


def test_cli_train_elsewhere_writes_plain_lines(tmp_path):
    text, _ = _cli_train(tmp_path, on_pty=False)
    assert "\r" not in text and _printable_lines(text)
    assert any(line.startswith("epoch 1/1  loss ") for line in text.splitlines())
