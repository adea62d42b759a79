"""Distributed data-parallel training over MPI: programs run under ``mpiexec -n 2`` (and ``-n 3``) as
subprocesses, each with a timeout so that a hang fails the test instead of the CI job.

Skipped when mpi4py or mpiexec is missing, unless PYFASTNN_REQUIRE_MPI=1 (CI sets it): then that is a
failure, so the suite cannot pass by skipping."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import pyfastnn as pf

# The children import the pyfastnn this test imports (the source tree's or the installed one, with its core).
PACKAGE_PARENT = Path(pf.__file__).resolve().parent.parent
TMP = tempfile.gettempdir()  # outside the source tree
JOB = Path(__file__).resolve().parent / "_distributed_job.py"

_missing = []
try:
    import mpi4py  # noqa: F401
except ImportError:
    _missing.append("mpi4py")
if shutil.which("mpiexec") is None:
    _missing.append("mpiexec")
if _missing:
    if os.environ.get("PYFASTNN_REQUIRE_MPI") == "1":
        raise RuntimeError(f"PYFASTNN_REQUIRE_MPI=1 but {' and '.join(_missing)} not found: pip install "
                           "'pyfastnn[mpi]'")
    pytest.skip(f"distributed tests need {' and '.join(_missing)} (pip install 'pyfastnn[mpi]')",
                allow_module_level=True)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # Open MPI refuses to run as root without these (CI containers run as root).
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("PYFASTNN_NUM_THREADS", "1")  # N ranks on a few cores: one thread each
    return env


def mpirun(n, *command, timeout=240):
    """Run ``command`` on n ranks; returns the CompletedProcess (a hang past ``timeout`` fails the test)."""
    args = ["mpiexec", "-n", str(n), "--oversubscribe", *command]
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=TMP)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(args)} did not finish within {timeout} s:\n{exc.stdout}\n{exc.stderr}")


def job(n, mode, timeout=240):
    proc = mpirun(n, sys.executable, str(JOB), mode, timeout=timeout)
    return proc


def results(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(found) == 1, proc.stdout + proc.stderr
    return found[0]


@pytest.mark.parametrize("ranks", [2, 3])
def test_n_ranks_equal_one_process_with_n_times_the_batch(ranks):
    # float64, 3 epochs: N ranks with batch b on interleaved shards (53 rows: a short last step, and with 3
    # ranks one rank without rows in it) against one process with batch N·b on the same rows in the same
    # order.
    out = results(job(ranks, "oracle"))
    assert set(out) == {"sgd", "momentum", "adam"}
    for name, r in out.items():
        assert r["weights"] <= 1e-12, (name, r)
        assert r["loss"] <= 1e-12, (name, r)
        assert r["moved"] > 1e-3, (name, r)  # training changed the weights: the comparison is not vacuous
        assert len(set(r["digests"])) == 1, (name, r["digests"])  # the replicas are bit-identical


def test_sparse_input_trains_with_a_dense_first_layer_gradient():
    out = results(job(2, "oracle_sparse"))
    assert out["sgd"]["weights"] <= 1e-12 and out["sgd"]["loss"] <= 1e-12, out
    assert len(set(out["sgd"]["digests"])) == 1


def test_replicas_stay_identical_with_uneven_shuffled_weighted_shards():
    out = results(job(3, "replicas"))
    assert len(set(out["digests"])) == 1, out["digests"]
    assert out["same_history"] and out["same_logs"], out
    assert {"loss", "val_loss", "val_accuracy", "lr"} <= set(out["keys"])
    assert len(out["epochs"]) >= 1


def test_estimator_fit_with_comm_equals_one_process_and_stays_picklable():
    out = results(job(2, "estimator"))
    assert out["weights"] <= 1e-12 and out["loss"] <= 1e-12, out
    assert out["classes"] == ["a", "b", "c"] and len(set(out["digests"])) == 1
    assert out["pickled"] and out["cloned"]


def test_a_rank_that_raises_ends_the_job_within_30_s():
    start = time.monotonic()
    proc = job(2, "raises_mid_training", timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert "fails on purpose in epoch 2" in proc.stderr, proc.stderr
    assert "RESULT" not in proc.stdout
    assert elapsed < 30, elapsed


def test_a_killed_rank_ends_the_job_within_30_s():
    start = time.monotonic()
    proc = job(2, "killed_mid_training", timeout=60)
    assert proc.returncode != 0 and "RESULT" not in proc.stdout
    assert time.monotonic() - start < 30


def test_a_diverging_rank_makes_every_rank_raise_in_the_same_epoch():
    proc = job(2, "diverges", timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("RANK"))
    assert len(lines) == 2, proc.stdout
    # Whichever epoch it is (it depends on where the shuffle puts the bad row), it is the same on every rank.
    epochs = {re.search(r"FloatingPointError: training diverged in epoch (\d+)", line).group(1) for line in lines}
    assert len(epochs) == 1, lines


def test_an_error_before_training_raises_on_every_rank():
    proc = job(2, "fails_before_training", timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("RANK"))
    assert len(lines) == 2 and all("ValueError" in line for line in lines), proc.stdout
    # Rank 1 raises its own error; rank 0 a ValueError naming rank 1 and that error.
    assert "expects 7" in lines[1] and lines[1].startswith("RANK 1"), proc.stdout
    assert "rank 1" in lines[0] and "expects 7" in lines[0] and lines[0].startswith("RANK 0"), proc.stdout


def test_a_mismatch_between_ranks_is_reported_on_every_rank_before_training():
    proc = job(2, "mismatch", timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("RANK"))
    assert len(lines) == 2, proc.stdout
    for line in lines:
        assert "ValueError" in line and "layer_sizes" in line and "optimizer" in line, line
        assert "[7, 8, 3]" in line and "[7, 9, 3]" in line, line


def test_a_distributed_run_resumed_from_its_checkpoint_ends_like_the_uninterrupted_run(tmp_path):
    # 3 ranks, uneven shuffled shards, seed=None, early stopping's validation split per rank, Adam, float64:
    # the checkpoint of epoch 2, resumed to epoch 5, gives the run's parameters bit for bit on every rank.
    out = results(mpirun(3, sys.executable, str(JOB), "resume_equals_whole", str(tmp_path)))
    assert out["equal"] == [True] * 3 and len(set(out["digests"])) == 1, out
    assert out["history"] == [True] * 3 and len(out["val_loss"]) == 5, out
    # The same file resumed by 2 ranks: the shards differ, every rank says so.
    proc = mpirun(2, sys.executable, str(JOB), "resume_with_other_ranks", str(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("RANK"))
    assert len(lines) == 2 and all("ValueError" in line and "ranks: checkpoint 3, this fit 2" in line
                                   for line in lines), proc.stdout


def test_a_job_killed_mid_run_resumes_from_its_checkpoint(tmp_path):
    start = time.monotonic()
    proc = mpirun(2, sys.executable, str(JOB), "killed_while_checkpointing", str(tmp_path), timeout=60)
    assert proc.returncode != 0 and "RESULT" not in proc.stdout
    assert time.monotonic() - start < 30
    out = results(mpirun(2, sys.executable, str(JOB), "resumed_after_the_kill", str(tmp_path)))
    assert out == {"equal": [True, True], "history": [True, True], "resumed_after": 2}, out


def test_a_checkpoint_rank_0_cannot_write_raises_on_every_rank(tmp_path):
    proc = mpirun(2, sys.executable, str(JOB), "checkpoint_write_fails", str(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("RANK"))
    assert len(lines) == 2, proc.stdout
    assert lines[0].startswith("RANK 0 FileNotFoundError"), lines
    assert lines[1].startswith("RANK 1 RuntimeError") and "rank 0 could not write the checkpoint" in lines[1]


def test_cli_distributed_trains_the_digits_like_one_process(tmp_path):
    args = ["-m", "pyfastnn.cli", "train", "--epochs", "15", "--quiet", "--seed", "0"]
    one = subprocess.run([sys.executable, *args, "--no-save"], capture_output=True, text=True, timeout=240,
                         env=_env(), cwd=TMP)
    assert one.returncode == 0, one.stderr
    model = tmp_path / "model.npz"
    two = mpirun(2, sys.executable, *args, "--distributed", "--save", str(model))
    assert two.returncode == 0, two.stdout + two.stderr

    def accuracy(out):
        found = [line for line in out.splitlines() if line.startswith("test accuracy:")]
        assert len(found) == 1, out  # printed once: by rank 0
        return float(found[0].split(":")[1])

    assert accuracy(two.stdout) >= accuracy(one.stdout) - 0.03, (one.stdout, two.stdout)
    assert accuracy(two.stdout) > 0.9
    net = pf.load(model)  # saved by rank 0, taking raw inputs like a single process's model
    x, y = pf.datasets.load_digits()
    assert net.accuracy(x, y) > 0.9


def test_cli_distributed_reads_per_rank_files(tmp_path):
    # Rank 1's file holds no digit 9: the classes are the union of the ranks' labels.
    x, y = pf.datasets.load_digits()
    even = np.arange(len(y)) % 2 == 0
    rows = [np.flatnonzero(even | (y == 9)), np.flatnonzero(~even & (y != 9))]
    for rank, part in enumerate(rows):
        np.savetxt(tmp_path / f"part-{rank}.csv", np.column_stack([x[part], y[part]]), delimiter=",",
                   fmt="%g")
    model = tmp_path / "model.npz"
    proc = mpirun(2, sys.executable, "-m", "pyfastnn.cli", "train", "--distributed", "--quiet", "--epochs",
                  "15", "--data", str(tmp_path / "part-{rank}.csv"), "--save", str(model))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "10 classes" in proc.stdout
    net = pf.load(model)
    assert net.classes_.tolist() == list(range(10))
    assert np.mean(net.classes_[net.predict_labels(x)] == y) > 0.9  # raw inputs: the folded standardization


def test_cli_distributed_outside_mpiexec_is_one_rank(tmp_path):
    # Under plain python, COMM_WORLD has one process: --distributed then trains as a single process would.
    command = [sys.executable, "-m", "pyfastnn.cli", "train", "--epochs", "3", "--quiet", "--distributed",
               "--no-save"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, env=_env(), cwd=TMP)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout


def test_bad_arguments_are_refused_in_process():
    from mpi4py import MPI

    from pyfastnn.distributed import abort_on_error, shard_rows

    x, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    net = pf.MLP([3, 2], seed=0)
    with pytest.raises(TypeError, match="comm must be an mpi4py intracommunicator"):
        net.fit(x, y, comm="world", progress=False)
    with pytest.raises(TypeError, match="check_replicas"):
        net.fit(x, y, comm=MPI.COMM_SELF, check_replicas="yes", progress=False)
    with pytest.raises(ValueError, match="rank must lie"):
        shard_rows(10, 2, 2)
    with pytest.raises(ValueError, match="size must be an int"):
        shard_rows(10, 0, 0)
    with pytest.raises(TypeError, match="exit_code"):
        abort_on_error(exit_code="1")
    rows = [shard_rows(11, r, 3, seed=4) for r in range(3)]
    assert sorted(np.concatenate(rows).tolist()) == list(range(11))  # a partition of the rows
    assert [len(r) for r in rows] == [4, 4, 3]


def test_one_rank_communicator_trains_like_no_communicator():
    from mpi4py import MPI

    x, y = np.random.default_rng(0).standard_normal((40, 5)), np.arange(40) % 3
    a, b = pf.MLP([5, 4, 3], dtype=np.float64, seed=2), pf.MLP([5, 4, 3], dtype=np.float64, seed=2)
    a.fit(x, y, batch_size=8, epochs=2, shuffle=False, progress=False)
    b.fit(x, y, batch_size=8, epochs=2, shuffle=False, comm=MPI.COMM_SELF, progress=False)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-14)


def test_a_distributed_epoch_reports_progress_within_the_epoch(monkeypatch):
    # The reporter's callable (given only where a bar is drawn: a terminal, rank 0) gets this rank's rows done,
    # here after every step (the 0.2 s interval set to 0).
    from mpi4py import MPI

    from pyfastnn import _ref, train

    calls = []
    monkeypatch.setattr(_ref, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(train, "_within_epoch", lambda reporter, epoch, n: lambda rows: calls.append((epoch, rows)))
    x, y = np.random.default_rng(0).standard_normal((45, 5)), np.arange(45) % 3
    pf.MLP([5, 4, 3], seed=2).fit(x, y, batch_size=10, epochs=2, comm=MPI.COMM_SELF, progress=False)
    assert calls == [(e, r) for e in (1, 2) for r in (10, 20, 30, 40, 45)]


def test_abort_on_error_lets_errors_through_in_a_one_process_job():
    from mpi4py import MPI

    from pyfastnn.distributed import abort_on_error

    @abort_on_error(MPI.COMM_SELF)
    def fails():
        raise KeyError("the error itself")

    with pytest.raises(KeyError, match="the error itself"):
        fails()
    with abort_on_error(MPI.COMM_SELF):
        pass  # a block without an error is left alone
