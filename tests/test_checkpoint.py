"""Checkpoints (issue #12, item 4): a fit interrupted after any epoch — by an exception, by Ctrl-C inside an
epoch, by SIGKILL — and resumed from its checkpoint ends bit for bit as the uninterrupted fit: weights,
optimizer state, History. A checkpoint that does not match the run, or a damaged file, is refused with a
ValueError."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _backend, _checkpoint
from pyfastnn.schedules import InverseScaling, ReduceOnPlateau, StepDecay

RNG = np.random.default_rng(7)
X = RNG.standard_normal((157, 6))  # 157 rows: the last batch of an epoch is short
LABELS = RNG.integers(0, 3, 157)


class Interrupted(Exception):
    pass


def _optimizer(kind):
    return {"sgd": lambda: pf.SGD(lr=0.05), "momentum": lambda: pf.SGD(lr=0.05, momentum=0.9, nesterov=True),
            "adam": lambda: pf.Adam(lr=0.01)}[kind]()


def _run(kind="adam", dtype=np.float64, *, interrupt_after=None, seed=3, epochs=7, net_seed=1, **kwargs):
    """(net, optimizer, history) of a fit; with ``interrupt_after=k`` a callback raises in epoch k + 1 (after
    the checkpoint of epoch k was written) and (net, optimizer, None) is returned."""
    net = pf.MLP([6, 9, 3], dtype=dtype, seed=net_seed)
    optimizer = _optimizer(kind)
    callbacks = list(kwargs.pop("callbacks", ()))
    callbacks += kwargs.pop("make_callbacks", lambda net, optimizer: [])(net, optimizer)
    if interrupt_after is not None:
        def interrupt(epoch, logs):
            if epoch == interrupt_after + 1:
                raise Interrupted
        callbacks.append(interrupt)
    try:
        history = net.fit(kwargs.pop("x", X), kwargs.pop("y", LABELS), optimizer=optimizer, epochs=epochs,
                          batch_size=16, seed=seed, shuffle=True, progress=False, callbacks=callbacks,
                          **kwargs)
    except Interrupted:
        return net, optimizer, None
    return net, optimizer, history


def _assert_same_run(a, b):
    """Two (net, optimizer, history) ended identically: parameters, optimizer state and hyper-parameters,
    History (all but the timings)."""
    (net_a, opt_a, h_a), (net_b, opt_b, h_b) = a, b
    for p, q in zip(net_a.weights + net_a.biases, net_b.weights + net_b.biases):
        assert p.dtype == q.dtype and np.array_equal(p, q), "the parameters differ"
    state_a, step_a = opt_a._checkpoint_state(net_a.weights + net_a.biases)
    state_b, step_b = opt_b._checkpoint_state(net_b.weights + net_b.biases)
    assert step_a == step_b and len(state_a) == len(state_b)
    assert state_a or (type(opt_a) is pf.SGD and opt_a.momentum == 0)  # only plain SGD keeps no state
    assert all(np.array_equal(s, t) for s, t in zip(state_a, state_b)), "the optimizer's state differs"
    assert opt_a.get_config() == opt_b.get_config()
    assert h_a.epochs == h_b.epochs
    assert set(h_a.history) == set(h_b.history)
    for key in h_a.history:
        if key != "time":
            assert h_a[key] == h_b[key], f"History[{key!r}] differs"
    assert (h_a.stop_reason, h_a.best_epoch) == (h_b.stop_reason, h_b.best_epoch)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_resumed_run_equals_the_uninterrupted_one(backend_name, kind, tmp_path):
    path = tmp_path / "run.npz"
    whole = _run(kind)
    for k in (1, 4):
        path.unlink(missing_ok=True)
        net, _, history = _run(kind, checkpoint=path, interrupt_after=k)
        assert history is None and path.exists()
        assert _checkpoint.load_checkpoint(path).epoch == k
        _assert_same_run(whole, _run(kind, checkpoint=path, resume=True))


def test_float32_and_sample_weights(backend_name, tmp_path):
    weights = np.random.default_rng(1).uniform(0, 2, X.shape[0])
    whole = _run("adam", np.float32, sample_weight=weights)
    _run("adam", np.float32, checkpoint=tmp_path / "c", interrupt_after=3, sample_weight=weights)
    resumed = _run("adam", np.float32, checkpoint=tmp_path / "c", resume=True, sample_weight=weights)
    _assert_same_run(whole, resumed)


def test_ctrl_c_inside_an_epoch_then_resume(backend_name, tmp_path, monkeypatch):
    """KeyboardInterrupt in the middle of epoch 4 (after the kernel moved the weights): the checkpoint holds
    epoch 3, and the resumed run redoes epoch 4 from there."""
    whole = _run("momentum")
    kernels = _backend.kernels()
    calls = []

    class Interrupting:
        def __getattr__(self, name):
            return getattr(kernels, name)

        def train_epoch(self, *args, **kwargs):
            calls.append(1)
            result = kernels.train_epoch(*args, **kwargs)
            if len(calls) == 4:
                raise KeyboardInterrupt
            return result

    monkeypatch.setattr("pyfastnn.train._backend.kernels", lambda: Interrupting())
    with pytest.raises(KeyboardInterrupt):
        _run("momentum", checkpoint=tmp_path / "c.npz")
    monkeypatch.undo()
    assert _checkpoint.load_checkpoint(tmp_path / "c.npz").epoch == 3
    _assert_same_run(whole, _run("momentum", checkpoint=tmp_path / "c.npz", resume=True))


def test_callbacks_that_change_the_optimizer_or_replace_arrays(backend_name, tmp_path):
    """A callback's changes between epochs are part of the run: a new rate or momentum (kept in the
    checkpoint), a parameter array replaced by a copy (the optimizer's state then starts afresh, in the
    resumed run as in the uninterrupted one)."""
    def make(net, optimizer):
        def change(epoch, logs):
            if epoch == 2:
                optimizer.lr, optimizer.momentum = 0.02, 0.5
            if epoch == 3:
                net.weights[1] = net.weights[1].copy()
        return [change]

    path = tmp_path / "c.npz"
    whole = _run("momentum", make_callbacks=make)
    for k in (2, 3, 4):
        path.unlink(missing_ok=True)
        _run("momentum", make_callbacks=make, checkpoint=path, interrupt_after=k)
        resumed = _run("momentum", make_callbacks=make, checkpoint=path, resume=True)
        assert resumed[1].lr == 0.02 and resumed[1].momentum == 0.5
        _assert_same_run(whole, resumed)


def test_sparse_input(backend_name, tmp_path):
    """A CSR X trains W1 as an embedding table with lazy Adam updates: resumed, the same."""
    import scipy.sparse

    x = scipy.sparse.random(157, 6, density=0.4, format="csr", random_state=3)
    path = tmp_path / "c.npz"
    whole = _run("adam", x=x)
    _run("adam", x=x, checkpoint=path, interrupt_after=3)
    _assert_same_run(whole, _run("adam", x=x, checkpoint=path, resume=True))


def test_checkpoint_every(tmp_path):
    path = tmp_path / "c.npz"
    whole = _run("adam")
    _run("adam", checkpoint=path, checkpoint_every=3, interrupt_after=5)
    assert _checkpoint.load_checkpoint(path).epoch == 3  # the last multiple of 3
    _assert_same_run(whole, _run("adam", checkpoint=path, checkpoint_every=3, resume=True))
    assert _checkpoint.load_checkpoint(path).epoch == 7  # and the last epoch


@pytest.mark.parametrize("schedule", [lambda: StepDecay(2, 0.5), lambda: InverseScaling(0.3),
                                      lambda: ReduceOnPlateau(factor=0.5, patience=1, tol=0.05)])
def test_with_an_lr_schedule(backend_name, schedule, tmp_path):
    path = tmp_path / "c.npz"
    whole = _run("momentum", lr_schedule=schedule(), epochs=8)
    assert len(set(whole[2]["lr"])) > 1  # the rate did change
    for k in (2, 5):
        path.unlink(missing_ok=True)
        _run("momentum", lr_schedule=schedule(), epochs=8, checkpoint=path, interrupt_after=k)
        resumed = _run("momentum", lr_schedule=schedule(), epochs=8, checkpoint=path, resume=True)
        _assert_same_run(whole, resumed)
        assert resumed[1].lr == 0.05  # the optimizer's own rate again after fit, as without a resume


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_with_early_stopping(backend_name, monitor, tmp_path):
    """The validation split, the stopper's counters and the best weights come back; the resumed fit is given
    another seed, which only a fresh start would use."""
    path = tmp_path / "c.npz"
    options = dict(early_stopping=True, patience=2, monitor=monitor, epochs=60, validation_fraction=0.2)
    whole = _run("adam", **options)
    assert whole[2].stop_reason == "early_stopping" and whole[2].best_epoch < len(whole[2]) - 1
    for k in (whole[2].best_epoch, len(whole[2]) - 1):  # at the best epoch, and past it
        path.unlink(missing_ok=True)
        _run("adam", **options, checkpoint=path, interrupt_after=k)
        checkpoint = _checkpoint.load_checkpoint(path)
        assert checkpoint.header["has_best"] and checkpoint.validation_rows.shape == (32,)
        _assert_same_run(whole, _run("adam", **options, checkpoint=path, resume=True, seed=99))


def test_a_finished_run_is_not_trained_further(tmp_path):
    path = tmp_path / "c.npz"
    options = dict(early_stopping=True, patience=2, epochs=60, checkpoint=path)
    whole = _run("adam", **options)
    seen = []
    again = _run("adam", **options, resume=True, callbacks=[lambda epoch, logs: seen.append(epoch)])
    assert seen == []
    _assert_same_run(whole, again)  # the best epoch's weights, restored again


def test_more_epochs_continue_a_completed_run(tmp_path):
    """A run of 4 epochs resumed with epochs=7 ends as a run of 7."""
    path = tmp_path / "c.npz"
    _run("adam", epochs=4, checkpoint=path)
    _assert_same_run(_run("adam", epochs=7), _run("adam", epochs=7, checkpoint=path, resume=True))
    with pytest.raises(ValueError, match="past epochs=5"):
        _run("adam", epochs=5, checkpoint=path, resume=True)


def test_resume_without_a_file_starts_afresh(tmp_path):
    path = tmp_path / "c.npz"
    _assert_same_run(_run("adam"), _run("adam", checkpoint=path, resume=True))
    assert _checkpoint.load_checkpoint(path).epoch == 7


def test_the_history_time_continues(tmp_path):
    path = tmp_path / "c.npz"
    _run("adam", checkpoint=path, interrupt_after=3)
    history = _run("adam", checkpoint=path, resume=True)[2]
    assert np.all(np.diff(history["time"]) > 0)


@pytest.mark.parametrize("change, message", [
    (dict(dtype=np.float32), "network dtype: checkpoint 'float64', this fit 'float32'"),
    (dict(kind="momentum"), "fit optimizer: checkpoint 'Adam', this fit 'SGD'"),
    (dict(y=LABELS[:100], x=X[:100]), "fit n_samples: checkpoint 157, this fit 100"),
    (dict(batch_size=8), "fit batch_size: checkpoint 16, this fit 8"),
    (dict(loss="squared_error", y=np.eye(3)[LABELS]), "fit loss: checkpoint 'cross_entropy'"),
    (dict(lr_schedule=StepDecay(3)), "fit lr_schedule: checkpoint None"),
    (dict(sizes=[6, 10, 3]), "network layer_sizes: checkpoint [6, 9, 3], this fit [6, 10, 3]"),
])
def test_a_checkpoint_of_another_run_is_refused(tmp_path, change, message):
    path = tmp_path / "c.npz"
    _run("adam", checkpoint=path, interrupt_after=2)
    before = path.read_bytes()
    kind = change.pop("kind", "adam")
    net = pf.MLP(change.pop("sizes", [6, 9, 3]), dtype=change.pop("dtype", np.float64), seed=5)
    weights = [a.copy() for a in net.weights + net.biases]
    options = dict(optimizer=_optimizer(kind), epochs=7, batch_size=16, seed=3, progress=False)
    options.update(change)
    with pytest.raises(ValueError, match="is of another run") as info:
        net.fit(options.pop("x", X), options.pop("y", LABELS), checkpoint=path, resume=True, **options)
    assert message in str(info.value)
    assert all(np.array_equal(a, b) for a, b in zip(weights, net.weights + net.biases))  # untouched
    assert path.read_bytes() == before


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(checkpoint_every=0), ValueError, "checkpoint_every must be >= 1; got 0"),
    (dict(checkpoint_every=1.5), TypeError, "checkpoint_every must be a positive int"),
    (dict(resume="yes"), TypeError, "resume must be True or False"),
    (dict(checkpoint=None, resume=True), ValueError, "resume=True needs checkpoint="),
    (dict(checkpoint=3), TypeError, "checkpoint must be None or a file path"),
    (dict(checkpoint="/no/such/folder/c.npz"), FileNotFoundError, "does not exist"),
])
def test_bad_arguments(tmp_path, kwargs, error, message):
    net = pf.MLP([6, 3], seed=0)
    kwargs.setdefault("checkpoint", tmp_path / "c.npz")
    with pytest.raises(error, match=message):
        net.fit(X, LABELS, epochs=2, progress=False, **kwargs)
    with pytest.raises(IsADirectoryError):
        net.fit(X, LABELS, epochs=2, progress=False, checkpoint=tmp_path)


def test_a_schedule_a_checkpoint_cannot_record_is_refused_before_training(tmp_path):
    class Odd(StepDecay):
        def __init__(self):
            super().__init__()
            self.table = object()

    net = pf.MLP([6, 3], seed=0)
    with pytest.raises(TypeError, match="cannot record"):
        net.fit(X, LABELS, epochs=2, progress=False, lr_schedule=Odd(), checkpoint=tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()


def test_the_file_is_plain_arrays_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    old = os.umask(0o027)
    try:
        _run("adam", checkpoint=path, interrupt_after=2)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o640
    with np.load(path, allow_pickle=False) as f:  # no pickled objects anywhere
        members = {name: f[name] for name in f.files}
    header = json.loads(members["header"].tobytes())
    assert (header["format"], header["format_version"], header["epoch"]) == ("pyfastnn.checkpoint", 1, 2)
    assert members["history"].shape == (2, 3)  # loss, lr, time
    before = path.read_bytes()

    def failing(file, **arrays):  # the disk fills up half way through the next write
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pyfastnn.io.np.savez", failing)
    with pytest.raises(OSError, match="No space"):
        _run("adam", checkpoint=path, resume=True)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["c.npz"]  # no temporary left


def test_a_model_file_or_a_newer_format_is_refused(tmp_path):
    model = tmp_path / "model.npz"
    pf.MLP([6, 3]).save(model)
    with pytest.raises(ValueError, match="not a pyfastnn checkpoint .format 'pyfastnn.MLP'"):
        _checkpoint.load_checkpoint(model)
    path = tmp_path / "c.npz"
    _run("sgd", checkpoint=path, epochs=2)
    with np.load(path) as f:
        members = {name: f[name] for name in f.files}
    header = json.loads(members["header"].tobytes())
    header["format_version"] = 2
    members["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **members)
    with pytest.raises(ValueError, match="checkpoint format version 2; this pyfastnn reads versions up to 1"):
        _run("sgd", checkpoint=path, epochs=2, resume=True)
    with pytest.raises(FileNotFoundError, match="no such pyfastnn checkpoint"):
        _checkpoint.load_checkpoint(tmp_path / "none.npz")


def test_an_edited_checkpoint_fails_its_checksum(tmp_path):
    """A change that keeps the file a valid archive (a different epoch count in the header, a changed
    weight) is caught by the checksum."""
    path = tmp_path / "c.npz"
    _run("adam", checkpoint=path, interrupt_after=3)
    with np.load(path) as f:
        members = {name: f[name] for name in f.files}
    for edit in ("epoch", "weight"):
        changed = dict(members)
        header = json.loads(members["header"].tobytes())
        if edit == "epoch":
            header["stopper"]["bad"] += 1
        else:
            changed["W0"] = members["W0"].copy()
            changed["W0"][0, 0] += 1e-12
        changed["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        np.savez(path, **changed)
        with pytest.raises(ValueError, match="does not match its checksum"):
            _checkpoint.load_checkpoint(path)


def test_a_forged_header_with_a_matching_checksum_is_a_value_error(tmp_path):
    path = tmp_path / "c.npz"
    _run("adam", checkpoint=path, interrupt_after=3)
    with np.load(path) as f:
        members = {name: f[name] for name in f.files}
    for forge in ({"samples_seen": -1}, {"stop_reason": "bored"}, {"best_epoch": 99}, {"elapsed": "soon"},
                  {"history_keys": 5}, {"network": None}):
        header = json.loads(members["header"].tobytes())
        header.pop("sha256")
        header.update(forge)
        arrays = {k: v for k, v in members.items() if k != "header"}
        try:
            header["sha256"] = _checkpoint._digest(header, arrays.values())
        except TypeError:
            pass
        np.savez(path, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
        with pytest.raises(ValueError, match="invalid checkpoint"):
            _checkpoint.load_checkpoint(path)


ADAM = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "sparse_update": "lazy"}


@pytest.mark.parametrize("forge", [
    {"rng": {"bit_generator": "MT19937", "state": {"key": [1, 2], "pos": 0}}},
    {"optimizer": {"name": "Adam", "config": {**ADAM, "lr": -1.0}, "n_state": 8, "step": 3}},  # a bad value
    {"optimizer": {"name": "Adam", "config": {"lr": 0.01}, "n_state": 8, "step": 3}},  # names missing
    {"optimizer": {"name": "Adam", "config": ADAM, "n_state": 2, "step": 3}},  # Adam keeps 8 arrays here
])
def test_a_forged_state_is_refused_before_anything_changes(tmp_path, forge):
    path = tmp_path / "c.npz"
    _run("adam", checkpoint=path, interrupt_after=3)
    with np.load(path) as f:
        members = {name: f[name] for name in f.files}
    header = json.loads(members.pop("header").tobytes())
    header.pop("sha256")
    header.update(forge)
    n_state = header["optimizer"]["n_state"]
    arrays = {k: a for k, a in members.items() if not k.startswith("state") or int(k[5:]) < n_state}
    header["sha256"] = _checkpoint._digest(header, arrays.values())
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    net = pf.MLP([6, 9, 3], dtype=np.float64, seed=1)
    optimizer = pf.Adam(lr=0.01)
    weights = [a.copy() for a in net.weights + net.biases]
    with pytest.raises(ValueError, match="invalid checkpoint header"):
        net.fit(X, LABELS, optimizer=optimizer, epochs=7, batch_size=16, seed=3, progress=False,
                checkpoint=path, resume=True)
    assert all(np.array_equal(a, b) for a, b in zip(weights, net.weights + net.biases))
    assert optimizer.lr == 0.01 and optimizer._state is None


def test_damaged_checkpoints_load_unchanged_or_refuse(tmp_path):
    pytest.importorskip("hypothesis")
    from _fuzz import FUZZ, outcome
    from hypothesis import given
    from hypothesis import strategies as st
    from test_fuzz_files import damaged

    path = tmp_path / "c.npz"
    _run("momentum", checkpoint=path, early_stopping=True, epochs=3, interrupt_after=2)
    raw = path.read_bytes()
    good = _checkpoint.load_checkpoint(path)

    @FUZZ
    @given(data=st.data())
    def check(data):
        kind, bad = data.draw(damaged(raw))
        path.write_bytes(bad)
        got_kind, got = outcome(lambda: _checkpoint.load_checkpoint(path), allowed=(ValueError, MemoryError),
                                what=f"load_checkpoint ({kind})")
        if kind == "none":
            assert got_kind == "ok", got
        if got_kind == "ok":
            assert got.header == good.header and got.arrays.keys() == good.arrays.keys()
            assert all(np.array_equal(got.arrays[k], good.arrays[k]) for k in good.arrays)

    check()


def test_truncated_checkpoints_are_value_errors(tmp_path):
    path = tmp_path / "c.npz"
    _run("adam", checkpoint=path, interrupt_after=2)
    raw = path.read_bytes()
    for size in (0, 1, 100, len(raw) // 2, len(raw) - 1):
        path.write_bytes(raw[:size])
        with pytest.raises(ValueError, match="pyfastnn checkpoint|checksum"):
            _run("adam", checkpoint=path, resume=True)


CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    import pyfastnn as pf

    mode, path, out = sys.argv[1:4]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3000, 20))
    y = rng.integers(0, 4, 3000)
    net = pf.MLP([20, 64, 4], dtype=np.float64, seed=1)
    optimizer = pf.SGD(lr=0.02, momentum=0.9)

    def slow(epoch, logs):
        print(epoch, flush=True)
        time.sleep(0.02)  # time for the parent to kill it mid-run

    options = dict(checkpoint=path, resume=True) if mode != "whole" else {}
    history = net.fit(x, y, optimizer=optimizer, epochs=40, batch_size=32, seed=5, progress=False,
                      callbacks=[slow] if mode == "killed" else [],
                      lr_schedule=pf.schedules.StepDecay(7, 0.7), **options)
    np.savez(out, *net.weights, *net.biases, *optimizer.state_arrays(), loss=np.array(history["loss"]))
""")


def _child(mode, path, out, **popen):
    env = dict(os.environ, PYFASTNN_BACKEND=pf.get_backend(), PYFASTNN_NUM_THREADS="2")
    # Outside the source tree, so that the child imports the installed package, as the tests do.
    return subprocess.Popen([sys.executable, "-c", CHILD, mode, str(path), str(out)], env=env,
                            cwd=tempfile.gettempdir(), **popen)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")
def test_a_process_killed_mid_run_resumes_to_the_same_end(tmp_path):
    """SIGKILL at some moment of a run (an epoch or a checkpoint's write may be half done): the checkpoint on
    disk is a complete one, and a new process resuming from it ends with the uninterrupted run's weights,
    momentum and losses."""
    path = tmp_path / "c.npz"
    whole = _child("whole", path, tmp_path / "whole.npz", stdout=subprocess.DEVNULL)
    killed = _child("killed", path, tmp_path / "killed.npz", stdout=subprocess.PIPE, text=True)
    try:
        for line in killed.stdout:
            if int(line) == 9:
                break
        time.sleep(0.037)  # while epoch 9's checkpoint is written, or in epoch 10, or writing its checkpoint
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(30) == -signal.SIGKILL
    finally:
        killed.kill()
        killed.stdout.close()
    done = _checkpoint.load_checkpoint(path).epoch
    assert 8 <= done < 40  # a complete checkpoint, whatever the kill interrupted
    resumed = _child("resume", path, tmp_path / "resumed.npz")
    assert resumed.wait(300) == 0 and whole.wait(300) == 0
    with np.load(tmp_path / "whole.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        assert a.files == b.files and len(a.files) == 1 + 4 + 4
        for name in a.files:
            assert np.array_equal(a[name], b[name]), name


def test_the_command_line_resumes_a_run(tmp_path, capsys):
    """``pyfastnn train --checkpoint PATH``: 3 epochs, then ``--resume`` to 5, saves the model a straight run
    of 5 epochs saves; a checkpoint of other arguments, or --resume alone, is an error (exit status 1)."""
    from pyfastnn.cli import main

    common = ["train", "--layers", "16", "--quiet", "--seed", "2"]
    check = str(tmp_path / "run.npz")
    assert main(common + ["--epochs", "3", "--checkpoint", check, "--save", str(tmp_path / "a.npz")]) == 0
    resume = ["--checkpoint", check, "--resume"]
    assert main(common + ["--epochs", "5", *resume, "--save", str(tmp_path / "b.npz")]) == 0
    assert "(resumed after epoch 3)" in capsys.readouterr().out
    assert main(common + ["--epochs", "5", "--save", str(tmp_path / "c.npz")]) == 0
    resumed, straight = pf.load(tmp_path / "b.npz"), pf.load(tmp_path / "c.npz")
    for p, q in zip(resumed.weights + resumed.biases, straight.weights + straight.biases):
        assert np.array_equal(p, q)
    capsys.readouterr()
    assert main(common + ["--epochs", "6", *resume, "--batch-size", "8", "--no-save"]) == 1
    assert "fit batch_size: checkpoint 32, this fit 8" in capsys.readouterr().err
    assert main(common + ["--resume", "--no-save"]) == 1
    assert "--resume needs --checkpoint PATH" in capsys.readouterr().err


@pytest.mark.parametrize("estimator, options", [
    ("MLPClassifier", dict(solver="sgd", learning_rate="adaptive", n_iter_no_change=1, tol=0.05)),
    ("MLPClassifier", dict(solver="adam", early_stopping=True, n_iter_no_change=3, validation_fraction=0.2)),
    ("MLPRegressor", dict(solver="adam")),
])
def test_the_estimators_resume_a_run(tmp_path, estimator, options):
    """fit(X, y, checkpoint=, resume=) of the scikit-learn estimators: the resumed estimator's weights and
    fitted attributes are the uninterrupted one's."""
    pytest.importorskip("sklearn")
    import warnings

    def interrupt(epoch, logs):
        if epoch == 4:
            raise Interrupted

    def make(callbacks=None):
        cls = getattr(pf, estimator)
        return cls(hidden_layer_sizes=(8,), max_iter=12, batch_size=16, random_state=0, callbacks=callbacks,
                   **options)

    y = LABELS if estimator == "MLPClassifier" else X @ np.arange(6.0)
    path = tmp_path / "c.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after max_iter
        whole = make().fit(X, y)
        with pytest.raises(Interrupted):
            make([interrupt]).fit(X, y, checkpoint=path)
        resumed = make().fit(X, y, checkpoint=path, resume=True)
    for p, q in zip(whole.coefs_ + whole.intercepts_, resumed.coefs_ + resumed.intercepts_):
        assert np.array_equal(p, q)
    assert whole.loss_curve_ == resumed.loss_curve_
    assert (whole.n_iter_, whole.t_) == (resumed.n_iter_, resumed.t_)
    assert whole.history_.stop_reason == resumed.history_.stop_reason
    if options.get("early_stopping"):
        assert whole.validation_scores_ == resumed.validation_scores_
        with pytest.raises(ValueError, match="needs an int random_state"):
            pf.MLPClassifier(early_stopping=True).fit(X, y, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="solver='lbfgs' has none"):
        getattr(pf, estimator)(solver="lbfgs").fit(X, y, checkpoint=path)


def test_a_one_rank_distributed_run_resumes_like_the_uninterrupted_one(tmp_path):
    """comm=COMM_SELF goes through the distributed path (rank 0 writes, the shards and the shuffling seed are
    recorded) in this process; the many-rank runs are in tests/test_distributed.py."""
    MPI = pytest.importorskip("mpi4py.MPI")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    options = dict(optimizer=pf.Adam(lr=0.01), batch_size=7, progress=False, comm=MPI.COMM_SELF,
                   early_stopping=True, validation_fraction=0.25, patience=50)

    def train(path, epochs, **more):
        net = pf.MLP([3, 4, 2], output_activation="softmax", seed=0, dtype=np.float64)
        return net, net.fit(x, y, epochs=epochs, checkpoint=path, **options, **more)

    def keep(epoch, logs):  # callbacks run before the epoch's checkpoint: the file holds epoch 2 here
        if epoch == 3:
            shutil.copy(tmp_path / "whole.npz", tmp_path / "part.npz")
        return False

    # seed=None: the interrupted run is this run's copy (a new run would draw another seed and split).
    whole, whole_history = train(tmp_path / "whole.npz", 5, callbacks=[keep])
    saved = _checkpoint.load_checkpoint(tmp_path / "part.npz")
    assert saved.epoch == 2 and saved.replica_seed is not None  # seed=None: the drawn one is recorded
    run = saved.header["run"]
    assert (run["ranks"], run["rank_samples"], run["rank_validation"]) == (1, [60], [15])
    resumed, history = train(tmp_path / "part.npz", 5, resume=True)
    for a, b in zip(resumed.weights + resumed.biases, whole.weights + whole.biases):
        np.testing.assert_array_equal(a, b)
    assert history["loss"] == whole_history["loss"] and history["val_loss"] == whole_history["val_loss"]
    # A single-process checkpoint is not one of this run's.
    single = tmp_path / "single.npz"
    pf.MLP([3, 4, 2], output_activation="softmax", seed=0, dtype=np.float64).fit(
        x, y, epochs=1, checkpoint=single, **{**options, "comm": None})
    with pytest.raises(ValueError, match="rank_samples"):
        train(single, 5, resume=True)
