import io

import numpy as np
import pytest

from pyfastnn._progress import Progress


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


def test_tty_mode_redraws_with_carriage_return():
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
