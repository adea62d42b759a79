"""``pyfastnn experiment``: every experiment runs (quick sizes), writes a valid PNG and returns numbers that must
hold whatever the machine's speed. Timing-based claims are reported by the experiments, never asserted here."""

import math
import sys

import pytest

from pyfastnn import cli, experiments

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def matplotlib():
    return pytest.importorskip("matplotlib")


def _check_matmat(result):
    assert result["batches"] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024]
    for key in ("forward_samples_per_s", "train_samples_per_s"):
        rates = result[key]
        assert len(rates) == len(result["batches"])
        assert all(math.isfinite(r) and r > 0 for r in rates), (key, rates)


def _check_gd_sgd_minibatch(result):
    methods = result["methods"]
    assert set(methods) == {"full-batch GD", "per-sample SGD", "mini-batch SGD (32)"}
    for label, r in methods.items():
        losses = r["loss"]
        assert len(losses) == result["epochs"] + 1
        assert all(math.isfinite(v) for v in losses), label
        assert losses[-1] < losses[0], (label, losses)
        seconds = r["seconds"]
        assert seconds[0] == 0 and all(b >= a for a, b in zip(seconds, seconds[1:])), (label, seconds)
        assert r["lr"] in experiments._LR_GRID


def _check_deep_vs_shallow(result):
    assert len(result["rows"]) >= 2
    for row in result["rows"]:
        shallow, deep = row["shallow"], row["deep"]
        assert len(shallow["sizes"]) == 3 and len(deep["sizes"]) == 2 + experiments._DEPTH
        assert abs(shallow["params"] - deep["params"]) <= 0.1 * max(shallow["params"], deep["params"]), row
        assert abs(shallow["params"] - row["budget"]) <= 0.1 * row["budget"], row
        for kind in (shallow, deep):
            assert 0 <= kind["mean"] <= 1
        assert row["winner"] in ("deep", "shallow", "tie")


def _check_linear_collapse(result):
    assert result["rel_error"] < 1e-10
    assert result["rank"] <= result["min_width"]
    assert result["held"]


def _check_approximation(result):
    assert result["widths"][0] == 1
    assert result["max_error"][-1] < result["max_error"][0]
    assert result["rms_error"][-1] < result["rms_error"][0]


def _check_one_hot_words(result):
    assert result["accuracy"] > 0.7  # the bag of words learns sentiment even in the quick run
    assert result["vocabulary"] > 500
    assert 0.5 < result["agreement"] <= 1
    pushed = set(result["to_negative"]) | set(result["to_positive"])
    assert len(pushed) == len(result["to_negative"]) + len(result["to_positive"])  # no word on both sides
    # The strongest words are the ones any reader would pick (the data is 50/50, so these are learnt, not priors).
    assert {"bad", "worst", "poor", "awful", "terrible"} & set(result["to_negative"])
    assert {"great", "excellent", "love", "nice", "good"} & set(result["to_positive"])


CHECKS = {
    "matmat": _check_matmat,
    "gd-sgd-minibatch": _check_gd_sgd_minibatch,
    "deep-vs-shallow": _check_deep_vs_shallow,
    "linear-collapse": _check_linear_collapse,
    "approximation": _check_approximation,
    "one-hot-words": _check_one_hot_words,
}


def test_every_experiment_is_tested():
    assert set(CHECKS) == set(experiments.EXPERIMENTS)


@pytest.mark.parametrize("name", list(CHECKS))
def test_quick_run(name, tmp_path, matplotlib):
    out = tmp_path / "plots"  # not there yet: run_experiment creates it
    result = experiments.run_experiment(name, out, quick=True, seed=0, progress=False)
    png = out / f"{name}.png"
    assert result["png"] == str(png)
    data = png.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_SIGNATURE)
    assert result["name"] == name and result["quick"] is True and result["seed"] == 0
    assert isinstance(result["held"], bool)
    assert result["settings"]["backend"] and result["settings"]["threads"] >= 1
    last = result["summary"].splitlines()[-2]  # the verdict, then the plot's path
    assert last.startswith("claim held on this run: " + ("YES" if result["held"] else "NO"))
    CHECKS[name](result)


def test_cli_runs_an_experiment(tmp_path, capsys, matplotlib):
    code = cli.main(["experiment", "linear-collapse", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "claim held on this run: YES" in out
    assert (tmp_path / "linear-collapse.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("argv", [["experiment"], ["experiment", "list"]])
def test_cli_lists_the_experiments(argv, capsys):
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    for name in experiments.EXPERIMENTS:
        assert name in out


def test_cli_unknown_experiment(tmp_path, capsys):
    code = cli.main(["experiment", "no-such-claim", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0
    assert "no-such-claim" in err and "linear-collapse" in err
    assert not any(tmp_path.iterdir())


def test_cli_rejects_a_negative_seed(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["experiment", "linear-collapse", "--seed", "-1"])
    assert exc.value.code != 0
    assert "--seed" in capsys.readouterr().err


def test_run_experiment_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="valid names"):
        experiments.run_experiment("no-such-claim", tmp_path)
    with pytest.raises(ValueError, match="seed"):
        experiments.run_experiment("linear-collapse", tmp_path, seed=-1)


def test_without_matplotlib_the_message_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes "import matplotlib" fail
    with pytest.raises(ImportError, match="pip install matplotlib"):
        experiments.run_experiment("linear-collapse", tmp_path, quick=True, progress=False)
    code = cli.main(["experiment", "linear-collapse", "--quick", "--out", str(tmp_path)])
    assert code == 1
    assert "pip install matplotlib" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_importing_the_module_does_not_import_matplotlib(run_python):
    done = run_python("import sys, pyfastnn.experiments; print('matplotlib' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
