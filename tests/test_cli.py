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
                 "--optimizer", "sgd", "--epochs", "50", "--lr", "0.5", "--quiet", "--no-save"])
    assert code == 0
    assert float(capsys.readouterr().out.split("test accuracy:")[1].split()[0]) > 0.8


def _accuracy(out):
    return float(out.split("test accuracy:")[1].split()[0])


def _named_csv(path, header=True, labels=("setosa", "versicolor", "virginica")):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 3))
    y = np.asarray(labels)[np.argmax(x @ np.array([[3.0, 0, -3], [0, 3, -3], [1, 1, 1]]), axis=1)]
    rows = "".join(f"{a:.4f},{b:.4f},{c:.4f},{label}\n" for (a, b, c), label in zip(x, y))
    path.write_text(("sepal,petal,stem,species\n" if header else "") + rows)
    return x, y


@pytest.mark.parametrize("label_column", ["species", "-1"])
def test_train_saves_the_label_names_and_the_header(tmp_path, capsys, label_column):
    csv, model = tmp_path / "iris.csv", tmp_path / "model.npz"
    x, y = _named_csv(csv)
    assert main(["train", "--data", str(csv), "--label-column", label_column, "--layers", "16",
                 "--epochs", "30", "--lr", "0.01", "--quiet", "--save", str(model)]) == 0
    out = capsys.readouterr().out
    assert "net.classes_[net.predict_labels(X)]" in out and "['setosa', 'versicolor', 'virginica']" in out
    net = pf.load(model)
    assert net.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert net.feature_names_.tolist() == ["sepal", "petal", "stem"]
    predicted = net.classes_[net.predict_labels(x.astype(np.float32))]  # the names, from raw inputs
    assert predicted.dtype.kind == "U" and (predicted == y).mean() > 0.8


def test_train_without_a_header_saves_numeric_labels_and_no_names(tmp_path, capsys):
    csv, model = tmp_path / "data.txt", tmp_path / "model.npz"
    x, y = _named_csv(csv, header=False, labels=(3, 5, 11))
    csv.write_text(csv.read_text().replace(",", "\t"))  # .txt: the delimiter is sniffed
    assert main(["train", "--data", str(csv), "--layers", "16", "--epochs", "30", "--lr", "0.01", "--quiet",
                 "--save", str(model)]) == 0
    net = pf.load(model)
    assert net.classes_.tolist() == [3, 5, 11] and net.feature_names_ is None
    assert (net.classes_[net.predict_labels(x.astype(np.float32))] == y).mean() > 0.8


def test_train_on_an_npz_saves_its_labels(tmp_path, capsys):
    data, model = tmp_path / "data.npz", tmp_path / "model.npz"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 4)).astype(np.float32)
    np.savez(data, X=x, y=np.where(x[:, 0] > 0, 7, -1))
    assert main(["train", "--data", str(data), "--epochs", "5", "--quiet", "--save", str(model)]) == 0
    net = pf.load(model)
    assert net.classes_.tolist() == [-1, 7] and net.feature_names_ is None


def test_labels_with_a_csv_are_refused(tmp_path, capsys):
    csv = tmp_path / "data.csv"
    _named_csv(csv)
    assert main(["train", "--data", str(csv), "--labels", str(csv), "--quiet", "--no-save"]) == 1
    assert "--labels is for a scipy.sparse .npz" in capsys.readouterr().err


def test_train_prints_the_defaults_it_chose(capsys):
    assert main(["train", "--epochs", "1", "--quiet", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "defaults: --layers 256 --optimizer adam --lr 0.001 --weight-decay 0.001\n" in out
    assert "Adam(lr=0.001" in out
    assert main(["train", "--epochs", "1", "--quiet", "--no-save", "--optimizer", "sgd",
                 "--layers", "8"]) == 0
    out = capsys.readouterr().out
    assert "defaults: --lr 0.05 --weight-decay 0.001\n" in out and "SGD(lr=0.05, momentum=0.9" in out


def test_text_defaults_are_unchanged():
    from pyfastnn.cli import _TRAIN_DEFAULTS

    assert _TRAIN_DEFAULTS[True] == {"layers": [64], "optimizer": "adam", "weight_decay": 0.0, "epochs": 5}


def _epoch_losses(err):
    """The training loss of each epoch, from the progress lines on standard error."""
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    return [float(line.split(" loss ")[1].split()[0]) for line in lines]


def test_defaults_train_wide_pixels_where_the_old_ones_diverged(tmp_path, capsys):
    # MNIST-like: 784 uint8 pixels, many almost never lit, so standardizing them gives values in the hundreds;
    # the labels are a random linear map of the pixels.
    n, d = 5000, 784
    rng = np.random.default_rng(0)
    lit = rng.random((n, d)) < rng.beta(0.3, 1.5, d)
    x = np.where(lit, rng.integers(1, 256, (n, d)), 0).astype(np.uint8)
    y = np.argmax((x - x.mean(axis=0)) / 255 @ rng.standard_normal((d, 10)), axis=1)
    data = tmp_path / "wide.npz"
    np.savez(data, X=x, y=y)
    argv = ["train", "--data", str(data), "--epochs", "4", "--no-save"]

    assert main(argv + ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"]) == 0  # the old defaults
    old = _epoch_losses(capsys.readouterr().err)
    assert len(old) == 4 and all(b > a for a, b in zip(old, old[1:])) and old[-1] > 10 * old[0]

    assert main(argv) == 0
    out, err = capsys.readouterr()
    new = _epoch_losses(err)
    assert len(new) == 4 and all(b < a for a, b in zip(new, new[1:])) and new[-1] < 0.5 * new[0]
    assert _accuracy(out) > 0.45  # 10 classes: chance is 0.1; logistic regression reaches ~0.6


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
