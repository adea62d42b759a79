"""Reliability under real use: divergence beyond NaN, hyper-parameters changed mid-training, NaN semantics,
arrays rebound by callbacks, CSV headers, CLI outputs, bounded file reading and clear messages.

Each test reproduces one failure found by a hostile-input audit (numbered as in the audit) and checks the
fixed behaviour, on every backend where the behaviour involves the kernels."""

import copy
import gzip
import io
import json
import os
import pickle
import struct
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _backend, _ref
from pyfastnn.cli import main as cli_main

X, Y = pf.datasets.load_digits()


def digits_net(**kw):
    return pf.MLP([64, 32, 10], seed=0, **kw)


def params(net):
    return [p.copy() for p in net.weights + net.biases]


def same(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a, b))


# ---- 2. divergence is more than NaN/Inf --------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", [pf.SGD(1e6), pf.Adam(1e6)], ids=["sgd", "adam"])
def test_fit_treats_a_loss_explosion_as_divergence(backend_name, optimizer):
    net = digits_net()
    start = params(net)
    with pytest.raises(FloatingPointError, match="diverged in epoch 1") as info:
        net.fit(X, Y, optimizer=copy.deepcopy(optimizer), epochs=5, progress=False)
    message = str(info.value)
    assert "smaller learning rate" in message and "lr=1e+06" in message, message
    assert same(params(net), start), "the weights were not restored to the start of training"


def test_train_step_treats_a_loss_explosion_as_divergence(backend_name):
    net = digits_net()
    opt = pf.SGD(1e6)
    net.train_step(X[:32], Y[:32], optimizer=opt)  # blows the weights up; its loss was measured before
    before = params(net)
    with pytest.raises(FloatingPointError, match="smaller learning rate"):
        net.train_step(X[:32], Y[:32], optimizer=opt)  # its loss shows the explosion: it is not applied
    assert same(params(net), before)


def test_healthy_training_never_counts_as_divergence(backend_name):
    # Warm restarts with a larger rate, unscaled inputs, regression targets far from unit scale: losses go up
    # and down but never explode, so none of these may raise.
    net = digits_net()
    net.fit(X, Y, epochs=5, progress=False)
    net.fit(X, Y, epochs=3, optimizer=pf.SGD(0.5, momentum=0.9), progress=False)
    for _ in range(20):
        net.train_step(X[:64], Y[:64], optimizer=pf.SGD(1.0))
    digits_net().fit(X * 16, Y, epochs=3, optimizer=pf.SGD(0.01), progress=False)
    t = (X @ np.random.default_rng(0).standard_normal(64) * 1000 + 5000)[:, None]
    for scale in (1.0, 1e-6):
        reg = pf.MLP([64, 32, 1], output_activation="linear", seed=0)
        reg.fit(X, t * scale, loss="squared_error", optimizer=pf.Adam(0.1), epochs=5, progress=False)


def test_divergence_names_non_finite_weights_as_the_cause(backend_name):
    net = digits_net()
    net.weights[1][0, 0] = np.nan
    with pytest.raises(FloatingPointError, match=r"weights\[1\] .*NaN") as info:
        net.fit(X, Y, epochs=2, progress=False)
    assert "learning rate" not in str(info.value)
    with pytest.raises(FloatingPointError, match=r"weights\[1\] .*NaN") as info:
        net.train_step(X[:8], Y[:8])
    assert "learning rate" not in str(info.value)

    def poison(epoch, logs):
        net2.biases[0][:] = np.inf

    net2 = digits_net()
    with pytest.raises(FloatingPointError, match=r"epoch 2.*biases\[0\]"):
        net2.fit(X, Y, epochs=3, callbacks=[poison], progress=False)


def test_divergence_names_huge_data_as_the_cause(backend_name):
    net = digits_net()
    with pytest.raises(FloatingPointError, match=r"inputs X reach magnitude 1e\+30"):
        net.fit(X * np.float32(1e30), Y, epochs=2, progress=False)
    reg = pf.MLP([64, 8, 1], output_activation="linear", seed=0)
    with pytest.raises(FloatingPointError, match=r"targets y reach magnitude 1e\+30"):
        reg.fit(X, np.full((len(X), 1), 1e30), loss="squared_error", epochs=3, progress=False)


def test_a_callback_setting_a_bad_learning_rate_is_stopped_at_once(backend_name):
    opt = pf.SGD(0.1)
    net = digits_net()

    def nan_lr(epoch, logs):
        opt.lr = float("nan")

    with pytest.raises(ValueError, match="lr must be finite; got nan"):
        net.fit(X, Y, optimizer=opt, epochs=3, callbacks=[nan_lr], progress=False)
    assert opt.lr == 0.1


# ---- 3. hyper-parameters are checked on assignment ---------------------------------------------------------


@pytest.mark.parametrize(
    "make,name,value,exc,words",
    [
        (pf.SGD, "lr", -0.01, ValueError, "lr must be > 0; got -0.01"),
        (pf.SGD, "lr", "0.01", TypeError, "lr must be a real number; got str '0.01'"),
        (pf.SGD, "lr", float("inf"), ValueError, "lr must be finite"),
        (pf.SGD, "momentum", 1.0, ValueError, "momentum must be < 1"),
        (pf.SGD, "nesterov", "yes", TypeError, "nesterov must be a bool"),
        (pf.SGD, "weight_decay", -1, ValueError, "weight_decay must be >= 0"),
        (pf.Adam, "lr", 0, ValueError, "lr must be > 0"),
        (pf.Adam, "beta1", 1.5, ValueError, "beta1 must be < 1"),
        (pf.Adam, "beta2", -0.1, ValueError, "beta2 must be >= 0"),
        (pf.Adam, "eps", 0.0, ValueError, "eps must be > 0"),
        (pf.Adam, "weight_decay", None, TypeError, "weight_decay must be a real number"),
    ],
)
def test_hyper_parameters_are_checked_on_assignment(make, name, value, exc, words):
    opt = make()
    before = opt.get_config()
    with pytest.raises(exc) as info:
        setattr(opt, name, value)
    assert words in str(info.value)
    assert opt.get_config() == before
    # the constructor says the same
    with pytest.raises(exc) as info:
        make(**{name: value})
    assert words in str(info.value)


def test_nesterov_needs_momentum_on_assignment_too():
    opt = pf.SGD(0.1, momentum=0.9, nesterov=True)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        opt.momentum = 0.0
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        pf.SGD(0.1).nesterov = True


def test_valid_assignments_work_and_keep_the_optimizer_usable(backend_name):
    opt = pf.SGD(0.1)
    net = digits_net()
    net.train_step(X[:16], Y[:16], optimizer=opt)
    opt.lr = np.float32(0.05)
    opt.momentum = 0.9  # from no velocity to velocity: the state follows
    net.train_step(X[:16], Y[:16], optimizer=opt)
    assert type(opt.lr) is float and opt.lr == pytest.approx(0.05)
    assert opt.get_config() == {"name": "SGD", "lr": opt.lr, "momentum": 0.9, "nesterov": False,
                                "weight_decay": 0.0, "sparse_update": "lazy"}
    assert repr(opt).startswith("SGD(lr=0.05")
    for other in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt), copy.copy(opt)):
        assert other.get_config() == opt.get_config()
        with pytest.raises(ValueError):
            other.lr = -1
    adam = pickle.loads(pickle.dumps(pf.Adam(0.01, beta1=0.8)))
    assert adam.beta1 == 0.8
    history = digits_net().fit(X, Y, optimizer=opt, epochs=2, progress=False,
                               callbacks=[lambda epoch, logs: setattr(opt, "lr", 0.01)])
    assert history["lr"] == [pytest.approx(0.05), 0.01]


# ---- 4. NaN semantics are the same everywhere, and non-finite outputs raise --------------------------------


@pytest.mark.parametrize("name", ["step", "sign", "linear", "piecewise_linear", "sigmoid", "tanh", "relu"])
def test_activations_propagate_nan_on_every_backend(backend_name, name):
    z = np.array([[np.nan, -1.0, 0.0, 2.0], [1.0, np.nan, -3.0, 0.25]], dtype=np.float32)
    out = np.empty_like(z)
    _backend.kernels().activation_forward(name, z.copy(), out)
    assert np.array_equal(np.isnan(out), np.isnan(z)), out
    for dtype in (np.float32, np.float64):  # the vectorised bias+relu path of the forward pass too
        net = pf.MLP([2, 4, 3], activation=name, output_activation="linear", dtype=dtype, seed=0)
        outs = [np.empty((2, 4), dtype), np.empty((2, 3), dtype)]
        x = np.array([[np.nan, 1.0], [0.5, -0.5]], dtype=dtype)
        _backend.kernels().forward(net.weights, net.biases, net.activations, x, outs, [None, None])
        assert np.isnan(outs[1][0]).all() and np.isfinite(outs[1][1]).all()


def test_softmax_of_a_row_with_nan_is_nan(backend_name):
    z = np.array([[np.nan, 1.0, 2.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    out = np.empty_like(z)
    _backend.kernels().activation_forward("softmax", z.copy(), out)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_relu_backward_keeps_nan_deltas(backend_name):
    a = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
    delta = np.array([[np.nan, np.nan, 2.0]], dtype=np.float32)
    _backend.kernels().activation_backward("relu", a, None, delta, False)
    assert np.isnan(delta[0, :2]).all() and delta[0, 2] == 0


@pytest.mark.parametrize("act, ste", [("relu", False), ("piecewise_linear", False), ("step", True),
                                      ("sign", True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_piecewise_derivatives_match_the_reference_bit_for_bit(backend_name, act, ste, dtype):
    """delta · σ' with σ' ∈ {0, 1} on rows long enough for whole vectors and a tail (37 columns): NaN and ±inf
    deltas give NaN where σ' = 0, and every other element, signed zeros included, has the reference's bits."""
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 37)).astype(dtype)
    z[0, :8] = 0  # the derivative's boundaries
    a = np.empty_like(z)
    _ref.activation_forward(act, z, a)
    d0 = rng.standard_normal(z.shape).astype(dtype)
    d0[:, ::5] = np.nan
    d0[:, 1::7] = np.inf
    d0[:, 2::7] = -np.inf
    d0[:, 3::11] = -0.0
    want, got = d0.copy(), d0.copy()
    with np.errstate(invalid="ignore"):  # inf · 0
        _ref.activation_backward(act, a, z, want, ste)
        _backend.kernels().activation_backward(act, a, z, got, ste)
    nan = np.isnan(want)
    assert nan.sum() > np.isnan(d0).sum()  # some infinite deltas met σ' = 0
    assert (np.isnan(got) == nan).all()
    bits = np.uint64 if dtype == np.float64 else np.uint32
    np.testing.assert_array_equal(got.view(bits)[~nan], want.view(bits)[~nan])


def test_forward_with_non_finite_weights_raises_naming_them(backend_name):
    net = pf.MLP([64, 32, 2], seed=0)
    net.weights[0][:] = np.nan
    for call in (net.forward, net.predict, net.predict_labels):
        with pytest.raises(FloatingPointError, match=r"weights\[0\] holds NaN"):
            call(X[:3])


@pytest.mark.parametrize("dtype,big", [(np.float32, 3e38), (np.float64, 1e308)])
def test_forward_overflow_raises_naming_the_inputs(backend_name, dtype, big):
    net = pf.MLP([64, 32, 2], seed=0, dtype=dtype)
    x = np.full((2, 64), big, dtype=dtype)
    words = rf"the {np.dtype(dtype).name} network overflowed.*inputs reach magnitude"
    with pytest.raises(FloatingPointError, match=words):
        net.predict_labels(x)
    assert net.predict_labels(X[:2].astype(dtype)).shape == (2,)  # the network is still fine


# ---- 5. arrays rebound by callbacks; layer counts; gemm flags ----------------------------------------------


def test_restore_best_restores_into_rebound_arrays(backend_name):
    net = digits_net()
    x_tr, x_val, y_tr, y_val = pf.datasets.train_test_split(X, Y, test_size=0.3, seed=0)
    seen = {}

    def rebind(epoch, logs):
        seen[epoch] = params(net)
        for l in range(net.n_layers):
            net.weights[l] = net.weights[l].copy()
            net.biases[l] = net.biases[l].copy()

    history = net.fit(x_tr, y_tr, optimizer=pf.SGD(0.5, momentum=0.9), epochs=12, early_stopping=True,
                      patience=3, validation_data=(x_val, y_val), callbacks=[rebind], progress=False, seed=0)
    best = history.best_epoch
    assert best < len(history), "the test needs a run that ends after its best epoch"
    assert same(params(net), seen[best])
    assert net.loss(x_val, y_val) == pytest.approx(min(history["val_loss"]), rel=1e-5)


def test_a_wrong_shape_set_by_a_callback_is_named(backend_name):
    net = digits_net()

    def break_it(epoch, logs):
        net.weights[0] = np.zeros((3, 3), np.float32)

    words = r"weights\[0\] must be a float32 array of shape \(32, 64\).*callback"
    with pytest.raises(ValueError, match=words):
        net.fit(X, Y, epochs=3, callbacks=[break_it], progress=False)


def test_too_few_activations_are_refused(backend_name):
    net = digits_net()
    net.activations = ["relu"]
    with pytest.raises(ValueError, match="acts"):
        net.forward(X[:3])
    outs = [np.empty((3, 32), np.float32), np.empty((3, 10), np.float32)]
    with pytest.raises(ValueError, match="acts"):
        zs = [None, np.empty((3, 10), np.float32)]
        _backend.kernels().forward(net.weights, net.biases, ["relu"], X[:3], outs, zs)


@pytest.mark.parametrize("flag", ["trans_a", "trans_b"])
@pytest.mark.parametrize("value", ["no", 1, None, 0.0])
def test_gemm_flags_must_be_bools(backend_name, flag, value):
    a = np.eye(2, dtype=np.float32)
    b = np.arange(4, dtype=np.float32).reshape(2, 2)
    with pytest.raises(TypeError, match=f"{flag} must be True or False"):
        pf.gemm(a, b, **{flag: value})
    assert np.array_equal(pf.gemm(a, b, **{flag: np.bool_(True)}), a @ (b.T if flag == "trans_b" else b))


# ---- 7. CSV headers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,cell", [("2.O,3,1\n4,5,0\n6,7,1\n8,9,0\n", "'2.O'"),
                                       ('"1,5",2,0\n3,4,1\n5,6,0\n7,8,1\n', "'1,5'")])
def test_a_bad_first_data_row_is_not_taken_for_a_header(tmp_path, text, cell):
    f = tmp_path / "d.csv"
    f.write_text(text)
    words = rf"line 1, column 1: expected a number, found {cell}.*skip_header=True"
    with pytest.raises(ValueError, match=words):
        pf.datasets.load_csv(f)
    X2, y2 = pf.datasets.load_csv(f, skip_header=True)  # what the hint says works when it was a header
    assert X2.shape == (3, 2)


def test_header_rows_are_still_found(tmp_path):
    f = tmp_path / "d.csv"
    for text in ("a,b,label\n1,2,0\n3,4,1\n", '"a","b","label"\n1,2,0\n3,4,1\n', "a,b,3\n1,2,0\n3,4,1\n",
                 "0,1,label\n1,2,0\n3,4,1\n"):
        f.write_text(text)
        x, y = pf.datasets.load_csv(f)
        assert x.shape == (2, 2) and list(y) == [0, 1], text


# ---- 9. the CLI never loses a trained model ----------------------------------------------------------------


def test_cli_checks_output_folders_before_training(tmp_path, capsys):
    model = tmp_path / "ok.npz"
    for argv, option in [(["--plot", str(tmp_path / "no" / "p.png"), "--save", str(model)], "--plot"),
                         (["--save", str(tmp_path / "no" / "m.npz")], "--save"),
                         (["--save", str(tmp_path)], "--save")]:
        assert cli_main(["train", "--epochs", "1", "--quiet", *argv]) == 1
        captured = capsys.readouterr()
        assert option in captured.err and "trained in" not in captured.out, captured.err
    assert not model.exists()


def test_cli_saves_before_plotting(tmp_path, capsys, monkeypatch):
    from pyfastnn import cli

    def failing_plot(*args, **kw):
        raise OSError("disk full while writing the PNG")

    monkeypatch.setattr(cli, "plot_history", failing_plot)
    monkeypatch.setattr(cli, "_matplotlib", lambda: None)
    model = tmp_path / "ok.npz"
    assert cli_main(["train", "--epochs", "1", "--quiet", "--plot", str(tmp_path / "p.png"),
                     "--save", str(model)]) == 1
    assert "disk full" in capsys.readouterr().err
    assert pf.load(model).layer_sizes == [64, 256, 10]


# ---- 12. bounded reads -------------------------------------------------------------------------------------


def _npy_header(shape, descr="<f4"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_load_ignores_extra_members_without_reading_them(tmp_path):
    net = pf.MLP([4, 3], seed=0)
    path = tmp_path / "m.npz"
    net.save(path)
    with zipfile.ZipFile(path, "a") as z:  # declares 80 GB, holds 16 bytes
        z.writestr("junk.npy", _npy_header((100000, 100000), "<f8") + b"\0" * 16)
    loaded = pf.load(path)
    assert same(params(loaded), params(net))


def test_load_refuses_a_forged_huge_array_with_value_error(tmp_path):
    sizes = [1000000, 1000000]
    header = {"format": "pyfastnn.MLP", "format_version": 1, "pyfastnn_version": "0", "layer_sizes": sizes,
              "activations": ["linear"], "dtype": "float32", "init": "auto", "straight_through": False,
              "sha256": "0"}
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as z:
        buf = io.BytesIO()
        np.save(buf, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
        z.writestr("header.npy", buf.getvalue())
        z.writestr("W0.npy", _npy_header((1000000, 1000000)) + b"\0" * 64)
        z.writestr("b0.npy", _npy_header((1000000,)) + b"\0" * 64)
    with pytest.raises(ValueError, match="W0"):
        pf.load(path)


def _idx(shape, payload, code=0x08):
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload


def test_gzip_idx_stops_reading_at_the_declared_size(tmp_path):
    path = tmp_path / "bomb-images-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(_idx((10,), bytes(10)))
        chunk = bytes(1 << 20)
        for _ in range(64):
            f.write(chunk)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="more than the header says"):
            pf.datasets.load_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB were allocated to read a 10-byte array"
    ok = tmp_path / "ok.gz"
    ok.write_bytes(gzip.compress(_idx((2, 3), bytes(range(6)))))
    assert pf.datasets.load_idx(ok).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_gzip_idx_declaring_more_than_gzip_can_hold_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(_idx((60000, 60000, 60000), bytes(100))))
    with pytest.raises(ValueError, match=r"declares .* bytes"):
        pf.datasets.load_idx(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_non_regular_files_fail_fast(run_python):
    # In a child with a memory limit and a timeout: an unbounded read must not take the machine down.
    code = """
        import os, resource, tempfile, pyfastnn as pf
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        fifo = os.path.join(tempfile.mkdtemp(), "fifo")
        os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
        for call, path in ((pf.datasets.load_idx, "/dev/zero"), (pf.datasets.load_csv, "/dev/zero"),
                           (pf.load, "/dev/zero"), (pf.datasets.load_idx, fifo)):
            try:
                call(path)
            except ValueError as exc:
                print(type(exc).__name__, exc)
    """
    done = run_python(code, timeout=60, PYTHONPATH=os.path.dirname(os.path.dirname(pf.__file__)))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and all("not a regular file" in line for line in lines), done.stdout


# ---- 13. clear messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value,words", [(1e-46, "round to 0 in float32"), (1e300, "overflows float32")])
def test_sample_weights_out_of_the_dtype_range(backend_name, value, words):
    net = digits_net()
    for call in (lambda: net.train_step(X[:4], Y[:4], sample_weight=[value] * 4),
                 lambda: net.fit(X[:4], Y[:4], sample_weight=[value] * 4, epochs=1, progress=False)):
        with pytest.raises(ValueError, match="sample_weight") as info:
            call()
        assert words in str(info.value) and "sw" not in str(info.value).replace("sample_weight", "")


def test_inputs_beyond_the_float32_range_say_so():
    net = digits_net()
    with pytest.raises(ValueError, match=r"X holds values up to 1e\+39, beyond the float32 range"):
        net.forward(np.full((2, 64), 1e39))
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at sample 1, feature 3\)"):
        x = np.zeros((2, 64))
        x[1, 3] = np.nan
        net.forward(x)


def test_numpy_backend_names_unknown_activations_and_missing_pre_activations():
    with pf.use_backend("numpy"):
        k = _backend.kernels()
        z = np.zeros((2, 3), np.float32)
        with pytest.raises(ValueError, match="unknown activation 'nope'"):
            k.activation_forward("nope", z, z.copy())
        with pytest.raises(ValueError, match="unknown activation 'nope'"):
            k.activation_backward("nope", z, z, z.copy(), False)
        y = np.zeros((2, 3), np.float32)
        with pytest.raises(ValueError, match="unknown loss 'nope'"):
            k.loss_value("nope", "linear", z, z, y)
        with pytest.raises(ValueError, match="z"):
            k.loss_value("binary_cross_entropy", "sigmoid", z, None, y)
        with pytest.raises(ValueError, match="z"):
            k.activation_backward("step", z, None, z.copy(), True)


def test_model_file_messages(tmp_path, monkeypatch):
    noise = tmp_path / "noise"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="not a pyfastnn model file") as info:
        pf.load(noise)
    assert "pickle" not in str(info.value)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        pf.load(tmp_path)
    net = pf.MLP([3, 2], seed=0)
    net.save(os.fsencode(tmp_path / "bytes.npz"))
    assert same(params(pf.load(os.fsencode(tmp_path / "bytes.npz"))), params(net))
    with pytest.raises(TypeError, match="path must be"):
        net.save(3)

    def denied(*args, **kw):
        raise PermissionError(13, "Permission denied")

    from pyfastnn import io as pf_io

    monkeypatch.setattr(pf_io, "open", denied, raising=False)
    with pytest.raises(PermissionError, match="cannot read") as info:
        pf.load(tmp_path / "bytes.npz")
    assert "not a pyfastnn model file" not in str(info.value)


def test_cli_option_errors(capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["train", "--batch-size", "abc"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--batch-size" in err and "'abc'" in err and "usage" in err


def test_cli_out_of_memory_is_a_clear_error(capsys, monkeypatch):
    from pyfastnn import cli

    def no_memory(*args, **kw):
        raise MemoryError("Unable to allocate 47.7 GiB for an array with shape (100000000, 64)")

    monkeypatch.setattr(cli, "MLP", no_memory)
    assert cli_main(["train", "--layers", "100000000", "--epochs", "1", "--quiet", "--no-save"]) == 1
    err = capsys.readouterr().err
    assert "not enough memory" in err and "[64, 100000000, 10]" in err and "Traceback" not in err


def test_fit_with_progress_and_no_stderr(monkeypatch):
    monkeypatch.setattr(sys, "stderr", None)
    history = digits_net().fit(X, Y, epochs=1, progress=True)
    assert len(history) == 1


def test_load_reads_deflated_and_fortran_order_members(tmp_path):
    net = pf.MLP([4, 5, 3], seed=0)
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["W0"] = np.asfortranarray(arrays["W0"])
    np.savez_compressed(tmp_path / "c.npz", **arrays)
    assert same(params(pf.load(tmp_path / "c.npz")), params(net))
