"""The ``pyfastnn`` command: ``train`` (the README's main job) and ``info``."""

import json

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn.cli import main


def test_train_saves_a_model_that_takes_raw_pixels(tmp_path, capsys):
    path = tmp_path / "model.npz"
    assert main(["train", "--epochs", "3", "--quiet", "--save", str(path), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy:")[1].split()[0])
    assert accuracy > 0.85
    net = pf.load(path)
    x, y = pf.datasets.load_digits()
    _, x_test, _, y_test = pf.datasets.train_test_split(x, y, test_size=0.25, seed=1)
    # The standardization was folded into layer 1: the saved network reproduces the printed accuracy on raw data.
    assert net.accuracy(x_test, y_test) == pytest.approx(accuracy, abs=1e-4)


def test_train_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    assert main(["train", "--epochs", "2", "--quiet", "--no-save", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "curves written" in capsys.readouterr().out


def test_train_on_a_csv_with_full_batch_gd(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    labels = np.where(x[:, 0] > 0, "pos", "neg")
    csv = tmp_path / "data.csv"
    csv.write_text("a,b,c,label\n" + "".join(f"{r[0]},{r[1]},{r[2]},{l}\n" for r, l in zip(x, labels)))
    code = main(["train", "--data", str(csv), "--label-column", "label", "--layers", "8", "--batch-size", "full",
                 "--epochs", "50", "--lr", "0.5", "--quiet", "--no-save"])
    assert code == 0
    assert float(capsys.readouterr().out.split("test accuracy:")[1].split()[0]) > 0.8


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--data", "/no/such/file.csv"], "error"),
        (["train", "--test-size", "1.5", "--epochs", "1"], "test_size"),
    ],
)
def test_train_reports_bad_input_without_a_traceback(argv, message, capsys):
    assert main(argv + ["--quiet", "--no-save"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_option_values_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--layers", "0"])
    assert info.value.code == 2 and "hidden layer sizes" in capsys.readouterr().err


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"pyfastnn {pf.__version__}" in out and "backend:" in out


def test_info_json_reports_the_running_configuration(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # stdout holds the JSON object and nothing else
    assert set(report) == {"version", "backend", "backends", "threads", "cpu_info"}
    assert report["version"] == pf.__version__
    assert report["backend"] == pf.get_backend()
    assert report["backends"] == pf.backends()
    assert report["threads"] == pf.get_num_threads()
    assert report["cpu_info"] == json.loads(json.dumps(pf.cpu_info()))
    assert isinstance(report["cpu_info"]["available"], bool)


def test_info_json_follows_the_environment(run_python):
    code = """
        import sys
        from pyfastnn.cli import main
        sys.exit(main(["info", "--json"]))
    """
    result = run_python(code, PYFASTNN_BACKEND="numpy", PYFASTNN_NUM_THREADS="1")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"] == "numpy" and report["threads"] == 1
    assert report["backends"]["numpy"] == {"available": True, "reason": ""}
    for entry in report["backends"].values():
        assert entry["available"] == (entry["reason"] == "")


def test_info_rejects_unknown_options_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["info", "--jsn"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "usage: pyfastnn" in err and "--jsn" in err
