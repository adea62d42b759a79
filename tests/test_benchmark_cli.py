"""`pyfastnn bench`: the smoke run writes its report and plots, bad options fail clearly, and the peers compute
the same update as pyfastnn (so the benchmark compares like with like). No test looks at a speed."""

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _peers, benchmark
from pyfastnn.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_bench_smoke_writes_report_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the plots need matplotlib")
    assert main(["bench", "--smoke", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Smoke run" in report
    assert "- machine: " in report and "- pyfastnn ISA: " in report and "- BLAS: " in report
    assert "- command: `pyfastnn bench --smoke --out " in report
    for name in ("S", "M"):
        assert f"## {name} = {benchmark.SMOKE_SHAPES[name]}" in report
    assert "| batch | cpp fit |" in report or not pf.backends()["cpp"]["available"]
    assert "| batch |" in report and "check ok" in report
    assert "NumPy sgemm" in report
    # The report is printed too; progress goes to stderr, a line per cell.
    assert "| batch |" in out
    assert "[6/6] M B=32:" in err
    for png in ("throughput.png", "gflops.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000


def test_bench_env_smoke_without_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYFASTNN_BENCH_SMOKE", "1")
    # Both pinning variables set or cleared here, whatever the machine's environment: the warning names exactly
    # the ones set. They are read only for the warning (NumPy is loaded already).
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    argv = ["bench", "--no-plots", "--out", str(tmp_path / "new" / "dir"), "--shapes", "s", "--batches", "4",
            "--threads", "1", "--peers", "hand NumPy,numpy-be"]
    assert main(argv) == 0
    report = (tmp_path / "new" / "dir" / "report.md").read_text(encoding="utf-8")
    assert "Smoke run" in report and "PYFASTNN_BENCH_SMOKE=1 pyfastnn bench --no-plots" in report
    assert "| batch | numpy-be | hand NumPy |" in report  # the order of PEERS, whatever the order given
    assert "| 4 |" in report and "threads: 1 for every library" in report
    assert not (tmp_path / "new" / "dir" / "throughput.png").exists()
    assert "OPENBLAS_CORETYPE=Haswell set: it pins" in report
    assert "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYFASTNN_BENCH_SMOKE=1 pyfastnn bench" in report
    assert "OPENBLAS_CORETYPE=Haswell set: it pins" in capsys.readouterr().err


@pytest.mark.parametrize(
    "env, named",
    [
        ({}, None),
        ({"OPENBLAS_CORETYPE": "Haswell"}, "OPENBLAS_CORETYPE=Haswell set: "),
        ({"OPENBLAS_L2_SIZE": "512"}, "OPENBLAS_L2_SIZE=512 set: "),
        ({"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"},
         "OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE=512 set: "),
    ],
)
def test_pinning_warning_names_the_variables_set(monkeypatch, env, named):
    for name in benchmark.PINNING_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    warning = benchmark.pinning_warning("pyfastnn bench")
    if named is None:
        assert warning is None
    else:
        assert warning.startswith(named)
        assert warning.endswith("`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pyfastnn bench`.")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--shapes", "X"], "unknown shape 'X'; valid: S, M, L"),
        (["--shapes", ","], "expected comma-separated shapes"),
        (["--batches", "0"], "batch sizes must be >= 1"),
        (["--batches", "8,x"], "expected comma-separated batch sizes"),
        (["--threads", "0"], "expected a positive integer"),
        (["--peers", "jax"], "unknown peer 'jax'"),
        (["--quick", "--smoke"], "not allowed with argument"),
    ],
)
def test_bench_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", *argv])
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert "pyfastnn bench: error:" in err and message in err


def test_bench_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["bench", "--smoke", "--no-plots", "--out", str(target)]) == 1
    assert "pyfastnn bench: error:" in capsys.readouterr().err


def _problem(sizes, batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch)
    return x, y


@pytest.mark.parametrize("batch", [1, 6])
def test_hand_numpy_step_matches_numpy_backend(batch):
    sizes, lr = [13, 9, 7, 5], 0.1
    net = pf.MLP(sizes, seed=3)
    hand = _peers.NumpyMLP(net.weights, net.biases, max_batch=batch)  # copies: the same initial weights
    x, y = _problem(sizes, batch)
    with pf.use_backend("numpy"):
        loss_pf = net.train_step(x, y, loss="cross_entropy", optimizer=pf.SGD(lr=lr))
    loss_hand = hand.train_step(x, y, lr)
    assert loss_hand == pytest.approx(loss_pf, rel=1e-5)
    for mine, ref in zip(hand.weights + hand.biases, net.weights + net.biases):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-5)
    moved = max(float(np.abs(w - w0).max()) for w, w0 in zip(net.weights, pf.MLP(sizes, seed=3).weights))
    assert moved > 1e-3  # the step did change the weights, so the comparison means something


@pytest.mark.parametrize("peer", ["torch", "sklearn"])
def test_library_peers_match_hand_numpy(peer):
    pytest.importorskip({"torch": "torch", "sklearn": "sklearn.neural_network"}[peer])
    sizes, batch, lr = [13, 9, 7, 5], 4, 0.1
    net = pf.MLP(sizes, seed=3)
    x, y = _problem(sizes, 3 * batch, seed=1)
    hand = _peers.NumpyMLP(net.weights, net.biases, max_batch=batch)
    hand_loss = hand.train_epoch(x, y, batch, lr)
    if peer == "torch":
        tp = _peers.TorchMLP(net.weights, net.biases, lr)
        loss = tp.train_epoch(*tp.tensors(x, y), batch)
        weights, biases = tp.weights()
    else:
        sk = _peers.SklearnMLP(net.weights, net.biases, lr, batch)
        loss = sk.train_epoch(x, y)
        weights, biases = sk.weights()
    assert loss == pytest.approx(hand_loss, rel=1e-5)
    for mine, ref in zip(weights + biases, hand.weights + hand.biases):
        np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-5)
