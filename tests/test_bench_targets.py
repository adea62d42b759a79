"""`pyfastnn bench --targets` and `bench_train.py --targets`: the smoke run prints every target as a row with
its target column and a number measured for it (or "n/a (why)" when a peer is missing), the targets are judged
by their goals, and the Fashion-MNIST stand-in is what it says. No test looks at a speed."""

import importlib.util
import json
import math
import os
import re

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _bench_targets as bt
from pyfastnn import benchmark
from pyfastnn.cli import main

HEAD = "| # | what | measured | target | met? |"
NUMBER = re.compile(r"\d+(\.\d+)?")


def _table(text):
    """The rows of the targets table in ``text``: [[#, what, measured, target, met?], ...]."""
    lines = text.splitlines()
    start = lines.index(HEAD)
    assert lines[start + 1].startswith("|---:|")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 5, line
        rows.append(cells)
    return rows


def _available():
    """{peer or library: can run here}, as the targets rows see it."""
    states = pf.backends()
    return {"cpp": states["cpp"]["available"], "numba": states["numba"]["available"],
            "torch": importlib.util.find_spec("torch") is not None,
            "sklearn": importlib.util.find_spec("sklearn") is not None}


# Which libraries each goal's number needs.
NEEDS = {
    ("fit-M-256", "of_sgemm"): ("cpp",), ("fit-S-1", "vs_torch"): ("cpp", "torch"),
    ("fit-M-1", "vs_torch"): ("cpp", "torch"), ("step-S-1", "us_per_call"): ("cpp",),
    ("step-S-1", "vs_torch"): ("cpp", "torch"), ("step-M-32", "vs_torch"): ("cpp", "torch"),
    ("fashion", "vs_sklearn"): ("cpp", "sklearn"), ("fashion", "vs_torch"): ("cpp", "torch"),
    ("fashion", "acc_vs_sklearn"): ("cpp", "sklearn"), ("fashion", "acc_vs_torch"): ("cpp", "torch"),
    ("gemm", "n2048"): ("cpp",), ("gemm", "delta_w"): ("cpp",), ("numba-M-1", "vs_torch"): ("numba", "torch"),
    ("gemm-after-numpy", "of_idle"): ("cpp",),
}


def test_every_goal_says_what_it_needs():
    assert set(NEEDS) == {(t.key, g.quantity) for t in bt.TARGETS for g in t.goals}
    assert len({t.key for t in bt.TARGETS}) == len(bt.TARGETS) == 9


def _check_rows(printed, saved, available):
    assert [r[0] for r in printed] == [str(i) for i in range(1, len(bt.TARGETS) + 1)]
    for cells, row, target in zip(printed, saved, bt.TARGETS):
        _n, what, measured, goal_text, met = cells
        assert (what, goal_text) == (target.what, target.target)
        assert row["key"] == target.key and row["measured"] == measured and row["met"] == met
        assert met in ("yes", "no", "n/a")
        assert met == bt.judge(target, row["values"])
        for goal in target.goals:
            value = row["values"][goal.quantity]
            if all(available[lib] for lib in NEEDS[target.key, goal.quantity]):
                assert isinstance(value, float) and math.isfinite(value), (target.key, goal.quantity, value)
            else:
                assert value is None and "n/a (" in measured
        assert NUMBER.search(measured) or "n/a (" in measured


def test_targets_smoke_prints_every_row(tmp_path, capsys):
    assert main(["bench", "--targets", "--smoke", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    printed = _table(out)
    assert printed == _table((tmp_path / "targets.md").read_text(encoding="utf-8"))
    saved = json.loads((tmp_path / "targets.json").read_text(encoding="utf-8"))
    _check_rows(printed, saved["rows"], _available())
    for fact in ("CPU", "threads", "load average (1 / 5 / 15 min)", "sgemm rate"):
        assert fact in saved["facts"]
    assert f"- CPU: {benchmark.cpu_model()}" in out
    assert re.search(r"- sgemm rate: NumPy float32 \d+×\d+×\d+: \d+\.\d GFLOP/s", out)
    assert "Smoke run" in out and "STAND-IN DATA, not Fashion-MNIST" in out
    assert "check ok" in out and "CHECK MISMATCH" not in out
    assert "Fashion-MNIST-shaped run" in err  # progress goes to stderr


def test_bench_train_targets_without_torch(monkeypatch, capsys):
    """A missing peer prints "n/a (torch not installed)" in its rows, not a crash (bench_train.py's front end)."""
    spec = importlib.util.spec_from_file_location(
        "bench_train", os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_train.py"))
    bench_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_train)
    monkeypatch.setattr(benchmark, "import_torch", lambda: (None, "torch is not installed (test)"))
    bench_train.main(["--targets", "--smoke", "--threads", "1"])
    out = capsys.readouterr().out
    printed = _table(out)
    available = {**_available(), "torch": False}
    rows = {t.key: dict(zip(("n", "what", "measured", "target", "met"), cells))
            for t, cells in zip(bt.TARGETS, printed)}
    assert len(rows) == len(bt.TARGETS)
    for key in ("fit-S-1", "fit-M-1", "step-M-32", "numba-M-1"):
        others = [lib for lib in NEEDS[key, "vs_torch"] if lib != "torch"]
        if all(available[lib] for lib in others):
            assert rows[key]["measured"] == "n/a (torch not installed)"
        assert rows[key]["met"] == "n/a"
    if available["cpp"]:
        assert "PyTorch: n/a (torch not installed)" in rows["fashion"]["measured"]
        assert "PyTorch: n/a (torch not installed)" in rows["step-S-1"]["measured"]
    assert "- threads: 1 for every library" in out and "- git: " in out
    for cells in printed:
        assert NUMBER.search(cells[2]) or "n/a (" in cells[2]


@pytest.mark.parametrize(
    "values, verdict",
    [
        ({"us_per_call": 5.0, "vs_torch": 20.0}, "yes"),
        ({"us_per_call": 6.0, "vs_torch": 15.0}, "yes"),   # the thresholds themselves meet the target
        ({"us_per_call": 6.5, "vs_torch": 20.0}, "no"),
        ({"us_per_call": 5.0, "vs_torch": 14.9}, "no"),
        ({"us_per_call": 5.0, "vs_torch": None}, "n/a"),
        ({"us_per_call": 7.0, "vs_torch": None}, "no"),    # a failed goal fails the row whatever is missing
        ({}, "n/a"),
    ],
)
def test_judge(values, verdict):
    step = next(t for t in bt.TARGETS if t.key == "step-S-1")
    assert bt.judge(step, values) == verdict


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--targets", "--shapes", "S"], "--shapes does not apply with --targets"),
        (["--targets", "--peers", "torch"], "--peers does not apply with --targets"),
        (["--epochs", "2", "--smoke", "--no-plots"], "--epochs applies only with --targets"),
    ],
)
def test_targets_bad_arguments(tmp_path, argv, message, capsys):
    assert main(["bench", *argv, "--out", str(tmp_path)]) == 1
    assert message in capsys.readouterr().err


def test_targets_epochs_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--targets", "--epochs", "0"])
    assert "expected a positive integer" in capsys.readouterr().err


def test_fashion_standin():
    x, y = bt.fashion_standin(3000, seed=0)
    assert x.shape == (3000, 784) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0 < x.min() and x.max() < 1
    assert set(np.unique(y)) == set(range(10))
    again = bt.fashion_standin(3000, seed=0)
    np.testing.assert_array_equal(again[0], x)
    np.testing.assert_array_equal(again[1], y)
    # Learnable: a short training beats the most frequent class by a wide margin on held-out rows.
    net = pf.MLP([784, 64, 10], seed=0)
    net.fit(x[:2500], y[:2500], optimizer=pf.Adam(lr=1e-3), batch_size=64, epochs=5, seed=0, progress=False)
    majority = np.bincount(y[2500:]).max() / 500
    assert net.accuracy(x[2500:], y[2500:]) > majority + 0.2


@pytest.mark.parametrize("shape", [None, (8, 16, 24)])
def test_gemm_rates_counts_the_flops_of_its_shape(monkeypatch, shape):
    """Every call "takes" 0.05 s, so the runs have ceil(0.2 / 0.05) = 4 calls and the rate is exactly
    2·m·k·n FLOPs a call over 0.05 s: the FLOP count follows the shape, whatever the number of calls."""
    monkeypatch.setattr(benchmark, "_timed", lambda run, rows, epochs: 0.05 * max(epochs, 1))
    meter = benchmark.Meter(benchmark.Settings(repeat=1, quiet_gap_s=0.0, max_retries=0))
    rates = benchmark.gemm_rates(meter, 32, cpp=pf.backends()["cpp"]["available"], shape=shape)
    m, k, n = shape or (32, 32, 32)
    for median, best in rates.values():
        assert median == pytest.approx(2.0 * m * k * n / 0.05 / 1e9) == best
