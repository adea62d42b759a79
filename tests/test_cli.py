"""The ``pyfastnn`` command: ``train`` (the README's main job) and ``info``."""

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
