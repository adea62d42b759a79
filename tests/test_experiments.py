"""``pyfastnn experiment``: every experiment runs (quick sizes), writes a valid PNG and returns numbers that
must hold whatever the machine's speed. Timing-based claims are reported by the experiments, never asserted
here; the verdicts' logic is tested on numbers made up to hold and to fail."""

import math
import sys

import numpy as np
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
    targets = result["compositional"]["targets"]
    assert [t["k"] for t in targets][-1] is None and len(targets) >= 2  # some t^k, then the tree
    for t in targets:
        assert t["exact_deep_error"] <= experiments._EXACT_LIMIT
        deep = [r for r in t["rows"] if r["family"] == "deep"]
        shallow = [r for r in t["rows"] if r["family"] == "shallow"]
        assert deep and len(shallow) >= len(deep)
        for d, s in zip(deep, shallow):  # every deep network has a shallow one with as many parameters
            assert abs(d["params"] - s["params"]) <= 0.02 * d["params"] + 2, (d["sizes"], s["sizes"])
            assert len(s["sizes"]) == 3 and len(d["sizes"]) > 3
        for r in t["rows"]:
            assert r["params"] == experiments._n_params(r["sizes"])
            assert all(math.isfinite(e) and e >= 0 for e in r["train"] + r["test"])
    parts = {"sawtooth, exact constructions", "compositional targets, trained", "digits"}
    assert set(result["verdicts"]) == parts
    assert result["held"] == all(result["verdicts"].values())


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
    lines = result["summary"].splitlines()
    assert lines[-1] == f"plot: {png}"
    parts = result.get("verdicts") or {None: result["held"]}
    verdicts = lines[-1 - len(parts):-1]  # the verdicts, one per judged part, then the plot's path
    for line, (part, held) in zip(verdicts, parts.items()):
        where = f" ({part})" if part else ""
        assert line.startswith(f"claim held on this run{where}: " + ("YES" if held else "NO")), line
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


# ---- deep-vs-shallow: the exact constructions and the verdicts' logic --------------------------------------


@pytest.mark.parametrize("k", range(1, 9))
def test_the_tent_constructions_are_exact(k):
    # the dyadic grid holds every kink and peak of t^k, the random points everything between
    grid = np.linspace(0.0, 1.0, 2**12 + 1)
    x = np.concatenate([grid, np.random.default_rng(k).uniform(0.0, 1.0, 20000)])[:, None]
    truth = experiments._tent(x, k)
    assert truth.min() == 0.0 and truth.max() == 1.0
    deep = experiments._tent_network(k)
    assert deep.layer_sizes == [1] + [2] * k + [1] and deep.n_parameters == 6 * k + 1
    shallow = experiments._tent_shallow_network(k)
    assert shallow.layer_sizes == [1, 2**k, 1] and shallow.n_parameters == 3 * 2**k + 1
    for net in (deep, shallow):
        assert net.dtype == np.float64
        assert np.max(np.abs(net.forward(x) - truth)) <= experiments._EXACT_LIMIT
    # t^k is a sawtooth: 2^k linear pieces, i.e. 2^k - 1 inner points where the slope flips sign
    grid = np.linspace(0.0, 1.0, 2**k * 64 + 1)
    slopes = np.sign(np.diff(experiments._tent(grid, k)))
    assert np.count_nonzero(slopes[1:] != slopes[:-1]) == 2**k - 1


def test_a_tent_construction_with_a_wrong_weight_is_not_exact():
    # the check the experiment relies on can fail
    x = np.linspace(0.0, 1.0, 1001)[:, None]
    net = experiments._tent_network(4)
    net.weights[2][0, 1] = -3.99
    assert np.max(np.abs(net.forward(x) - experiments._tent(x, 4))) > 1e-3


@pytest.mark.parametrize("n_inputs", [2, 4, 8, 16])
def test_the_abs_tree_construction_is_exact(n_inputs):
    x = np.random.default_rng(n_inputs).uniform(0.0, 1.0, (5000, n_inputs))
    net = experiments._abs_tree_network(n_inputs)
    assert net.layer_sizes[-1] == 1 and len(net.layer_sizes) == 2 + int(math.log2(n_inputs))
    assert np.max(np.abs(net.forward(x) - experiments._abs_tree(x))) <= experiments._EXACT_LIMIT
    if n_inputs == 8:
        assert net.n_parameters == 121
        a = np.array([[0.9, 0.1, 0.6, 0.3, 0.2, 0.7, 0.4, 0.4]])
        assert experiments._abs_tree(a)[0, 0] == pytest.approx(abs(abs(0.8 - 0.3) - abs(0.5 - 0.0)))


def test_params_to_reach():
    reach = experiments._params_to_reach
    assert reach([(10, 0.1), (100, 0.001)], 0.01) == pytest.approx((10**1.5, 10**1.5))  # log-log halfway
    assert reach([(100, 0.001), (10, 0.3)], 0.3) == (0.0, 10.0)  # the smallest budget reaches it
    assert reach([(10, 0.3), (100, 0.2)], 0.01) == (100.0, math.inf)  # none does
    assert reach([(10, 0.3), (100, 0.0)], 0.01)[0] < 100  # error 0 is no problem for the logarithms


def test_depth_factor():
    factor = experiments._depth_factor
    assert factor((100.0, 100.0), (400.0, 400.0)) == (4.0, 4.0)
    assert factor((100.0, 100.0), (1000.0, math.inf)) == (10.0, math.inf)  # shallow never: at least 10x
    assert factor((1000.0, math.inf), (100.0, 100.0)) == (0.0, 0.1)  # deep never: at most 0.1x
    assert factor((1000.0, math.inf), (1000.0, math.inf)) is None
    assert experiments._factor_text((10.0, math.inf)) == ">= 10x"
    assert experiments._factor_text((0.0, 0.1)) == "<= 0.1x"


def _target(name, deep_exact, shallow_exact, deep_points, shallow_points):
    t = {"name": name, "exact_deep_params": deep_exact, "exact_shallow_params": shallow_exact,
         "deep_params_to_tolerance": experiments._params_to_reach(deep_points, 0.01),
         "shallow_params_to_tolerance": experiments._params_to_reach(shallow_points, 0.01)}
    t["factor"] = experiments._depth_factor(t["deep_params_to_tolerance"], t["shallow_params_to_tolerance"])
    return t


def test_the_trained_verdict_follows_the_numbers():
    verdict = experiments._trained_verdict
    deep_better = [(100, 0.2), (400, 0.001)]
    shallow_worse = [(100, 0.25), (400, 0.1), (1600, 0.005)]
    held, reason = verdict([_target("t^4", 25, 49, deep_better, shallow_worse),
                            _target("tree", 121, math.inf, deep_better, shallow_worse)], 0.01)
    assert held and "Depth won on 2 of the 2" in reason
    # the same budgets with the errors swapped: now the shallow family needs fewer parameters
    held, reason = verdict([_target("t^4", 25, 49, shallow_worse, deep_better),
                            _target("tree", 121, math.inf, deep_better, shallow_worse)], 0.01)
    assert not held and "Depth won on 1 of the 2" in reason
    # k = 2, where one hidden layer is exact with as few parameters, is reported but not judged
    held, _ = verdict([_target("t^2", 13, 13, shallow_worse, deep_better),
                       _target("t^4", 25, 49, deep_better, shallow_worse)], 0.01)
    assert held
    # no judged target reached by either family: nothing shows that depth won
    held, reason = verdict([_target("t^6", 37, 193, [(100, 0.2)], [(100, 0.2)])], 0.01)
    assert not held and "neither family reached it" in reason


def test_the_exact_verdict_follows_the_numbers():
    tents = [{"k": k, "exact_deep_params": 6 * k + 1, "exact_shallow_params": 3 * 2**k + 1,
              "exact_deep_error": 0.0, "exact_shallow_error": 2e-16} for k in (2, 3, 4)]
    held, reason = experiments._exact_verdict(tents)
    assert held and "k=4: 49 vs 25 (2.0x)" in reason
    tents[1]["exact_deep_error"] = 1e-3  # a construction that is not exact
    assert not experiments._exact_verdict(tents)[0]


def test_the_digits_verdict_follows_the_numbers():
    def row(budget, deep, shallow):
        winner = "deep" if deep > shallow else ("shallow" if shallow > deep else "tie")
        return {"budget": budget, "deep": {"mean": deep}, "shallow": {"mean": shallow}, "winner": winner}

    held, reason = experiments._digits_verdict([row(2000, 0.955, 0.973), row(8000, 0.97, 0.98)])
    assert not held and "at 0 of 2" in reason and "2k: 0.955 vs 0.973" in reason
    assert experiments._digits_verdict([row(2000, 0.98, 0.973), row(8000, 0.99, 0.98)])[0]
    assert not experiments._digits_verdict([row(2000, 0.98, 0.973), row(8000, 0.97, 0.98)])[0]


def test_cli_prints_every_verdict_of_deep_vs_shallow(tmp_path, capsys, matplotlib):
    code = cli.main(["experiment", "deep-vs-shallow", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    for part in ("sawtooth, exact constructions", "compositional targets, trained", "digits"):
        assert f"claim held on this run ({part}): " in out
    assert "claim held on this run (sawtooth, exact constructions): YES" in out  # exact in float64


def test_cli_all_names_each_judged_part(tmp_path, capsys, monkeypatch, matplotlib):
    def plain(ctx):
        fig, _ = experiments._figure()
        return fig, [experiments._verdict(True, "plain")], True, {}

    def parts(ctx):
        fig, _ = experiments._figure()
        verdicts = {"one part": True, "another part": False}
        lines = [experiments._verdict(held, part, part) for part, held in verdicts.items()]
        return fig, lines, False, {"verdicts": verdicts}

    monkeypatch.setattr(experiments, "EXPERIMENTS", {"plain": ("a plain claim", plain),
                                                     "parts": ("a claim in parts", parts)})
    assert cli.main(["experiment", "all", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "claim held on this run (another part): NO — another part" in out
    assert out.splitlines()[-1] == ("claims on this run: plain held; parts held (one part), did NOT hold "
                                    "(another part)")
