"""pf.load / MLP.save: exact round trips, and clear errors for every file that is not a pyfastnn model."""

import json
import os
import pathlib
import zipfile

import numpy as np
import pytest

import pyfastnn as pf
import pyfastnn.io

RNG = np.random.default_rng(7)


def trained_net(sizes, dtype, **kw):
    """A network whose weights and biases are no longer their initial values (biases non-zero)."""
    net = pf.MLP(sizes, dtype=dtype, seed=1, **kw)
    for p in net.weights + net.biases:
        p += RNG.standard_normal(p.shape).astype(dtype) * 0.1
    return net


NETS = {
    "0-hidden": ([4, 3], {}),
    "1-hidden": ([4, 5, 3], {"activation": "tanh"}),
    "3-hidden": ([4, 6, 5, 3, 1], {}),
    "per-layer": (
        [4, 6, 5, 3, 2],
        {
            "activation": ["relu", "sigmoid", "piecewise_linear"],
            "output_activation": "linear",
            "init": "glorot",
        },
    ),
    "step-ste": ([4, 5, 1], {"activation": "step", "output_activation": "sign", "straight_through": True}),
}


def assert_same_network(a, b):
    assert type(b) is pf.MLP
    assert b.layer_sizes == a.layer_sizes
    assert b.activations == a.activations
    assert b.dtype == a.dtype
    assert b.init == a.init
    assert b.straight_through == a.straight_through
    assert len(b.weights) == len(a.weights) and len(b.biases) == len(a.biases)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        assert q.dtype == p.dtype and q.shape == p.shape
        assert q.tobytes() == p.tobytes()  # bit-identical
        assert q.flags.c_contiguous and q.flags.writeable


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(NETS))
def test_round_trip_is_exact(tmp_path, dtype, name):
    sizes, kw = NETS[name]
    net = trained_net(sizes, dtype, **kw)
    path = tmp_path / "model.pfnn"
    net.save(path)
    back = pf.load(path)
    assert_same_network(net, back)
    x = RNG.standard_normal((7, sizes[0]))
    assert back.forward(x).tobytes() == net.forward(x).tobytes()
    # The loaded network is independent of the original and trains.
    y = RNG.standard_normal((7, sizes[-1])) if back.output_activation == "linear" else None
    if y is not None:
        back.train_step(x, y)
        assert back.weights[0].tobytes() != net.weights[0].tobytes()


def test_round_trip_via_module_function_and_str_path(tmp_path):
    net = trained_net([3, 4, 2], np.float32)
    path = str(tmp_path / "m")
    pyfastnn.io.save(net, path)
    assert pyfastnn.io.load is pf.load
    assert_same_network(net, pyfastnn.io.load(path))


@pytest.mark.parametrize("name", ["model", "model.bin", "model.npz", "dir.with.dots/model"])
def test_file_is_written_at_exactly_the_given_path(tmp_path, name):
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    trained_net([3, 2], np.float64).save(path)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [name]  # no ".npz" appended, no temporary file left behind
    assert zipfile.is_zipfile(path)


def test_save_overwrites(tmp_path):
    path = tmp_path / "m"
    trained_net([3, 2], np.float32).save(path)
    second = trained_net([5, 4, 1], np.float64)
    second.save(path)
    assert_same_network(second, pf.load(path))


def test_load_missing_file(tmp_path):
    path = tmp_path / "nothing-here"
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        pf.load(path)


def _saved(tmp_path, dtype=np.float32):
    path = tmp_path / "model"
    trained_net([4, 5, 3], dtype).save(path)
    return path


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_load_truncated_file(tmp_path, fraction):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match="not a pyfastnn model file"):
        pf.load(path)


def test_load_random_bytes(tmp_path):
    path = tmp_path / "noise"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="not a pyfastnn model file"):
        pf.load(path)


def test_load_random_bytes_behind_a_zip_signature(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(
        b"PK\x03\x04" + np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    )
    with pytest.raises(ValueError, match="not a pyfastnn model file"):
        pf.load(path)


def test_load_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("layer_sizes = [4, 5, 3]\nthis is not a model\n")
    with pytest.raises(ValueError, match="not a pyfastnn model file"):
        pf.load(path)


def test_load_foreign_npz(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones((3, 3)), labels=np.arange(3))
    with pytest.raises(ValueError, match="no header") as info:
        pf.load(path)
    assert "labels" in str(info.value) and "weights" in str(info.value)


def test_load_npy_file(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(10.0))
    with pytest.raises(ValueError, match="not a pyfastnn model file"):
        pf.load(path)


def test_load_zip_with_a_non_npy_header_member(tmp_path):
    path = tmp_path / "fake.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("header.npy", b'{"format": "pyfastnn.MLP"}')
    with pytest.raises(ValueError, match="not a pyfastnn model file"):
        pf.load(path)


def _arrays(path):
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _header(arrays):
    return json.loads(arrays["header"].tobytes().decode("utf-8"))


def _with_header(arrays, header):
    out = dict(arrays)
    out["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    return out


def _write(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_rewritten_unchanged_file_still_loads(tmp_path):
    # The control for the tampering tests: reading and rewriting the arrays as they are is fine.
    path = _saved(tmp_path)
    original = pf.load(path)
    _write(path, _arrays(path))
    assert_same_network(original, pf.load(path))


@pytest.mark.parametrize("name", ["W0", "b1", "W1"])
def test_tampered_array_fails_the_checksum(tmp_path, name):
    path = _saved(tmp_path)
    arrays = _arrays(path)
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] += np.float32(0.5)
    _write(path, arrays)
    with pytest.raises(ValueError, match="checksum"):
        pf.load(path)


def test_swapped_arrays_fail_the_checksum(tmp_path):
    path = tmp_path / "m"
    trained_net([3, 3, 3, 3], np.float64).save(path)
    arrays = _arrays(path)
    arrays["W0"], arrays["W1"] = arrays["W1"], arrays["W0"]
    _write(path, arrays)
    with pytest.raises(ValueError, match="checksum"):
        pf.load(path)


@pytest.mark.parametrize("version", [3, 99])
def test_future_format_version(tmp_path, version):
    path = _saved(tmp_path)
    arrays = _arrays(path)
    header = _header(arrays)
    assert header["format_version"] == 1  # a plain network is written in the oldest version that holds it
    header["format_version"] = version
    _write(path, _with_header(arrays, header))
    with pytest.raises(ValueError, match="version") as info:
        pf.load(path)
    assert str(version) in str(info.value) and "up to 2" in str(info.value)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"format_version": 0}, ["version"]),
        ({"format_version": "1"}, ["version"]),
        ({"format": "something.else"}, ["not a pyfastnn model file", "something.else"]),
        ({"layer_sizes": [4, 6, 3]}, ["W0", "(6, 4)", "(5, 4)"]),
        ({"layer_sizes": [4, 5]}, ["invalid model header", "need 1 activations; got 2"]),
        ({"layer_sizes": [4, 0, 3]}, ["invalid model header"]),
        ({"layer_sizes": "abc"}, ["invalid model header"]),
        ({"activations": ["relu", "gelu"]}, ["invalid model header", "gelu"]),
        ({"activations": ["softmax", "softmax"]}, ["invalid model header", "softmax"]),
        ({"dtype": "float16"}, ["invalid model header", "float16"]),
        ({"dtype": "float64"}, ["W0", "float64", "float32"]),
    ],
)
def test_bad_header_fields(tmp_path, change, words):
    path = _saved(tmp_path)
    arrays = _arrays(path)
    header = _header(arrays)
    header.update(change)
    _write(path, _with_header(arrays, header))
    with pytest.raises(ValueError) as info:
        pf.load(path)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"


@pytest.mark.parametrize("field", ["layer_sizes", "activations", "dtype"])
def test_missing_header_field(tmp_path, field):
    path = _saved(tmp_path)
    arrays = _arrays(path)
    header = _header(arrays)
    del header[field]
    _write(path, _with_header(arrays, header))
    with pytest.raises(ValueError, match=field):
        pf.load(path)


def test_header_with_empty_activations(tmp_path):
    path = _saved(tmp_path)
    arrays = _arrays(path)
    header = _header(arrays)
    header["activations"] = []
    _write(path, _with_header(arrays, header))
    with pytest.raises(ValueError, match="activations"):
        pf.load(path)


@pytest.mark.parametrize("header", [b"\xff\xfe\x00garbage", b"[1, 2, 3]", b"not json"])
def test_unreadable_header(tmp_path, header):
    path = _saved(tmp_path)
    arrays = _arrays(path)
    arrays["header"] = np.frombuffer(header, dtype=np.uint8)
    _write(path, arrays)
    with pytest.raises(ValueError, match="unreadable header"):
        pf.load(path)


def test_missing_array(tmp_path):
    path = _saved(tmp_path)
    arrays = _arrays(path)
    del arrays["b1"]
    _write(path, arrays)
    with pytest.raises(ValueError, match="b1.*missing"):
        pf.load(path)


def test_pickled_array_is_refused(tmp_path):
    path = _saved(tmp_path)
    arrays = _arrays(path)
    arrays["W0"] = np.array([{"evil": 1}], dtype=object)
    _write(path, arrays)
    with pytest.raises(ValueError):
        pf.load(path)


def test_save_checks_the_parameters_first(tmp_path):
    net = trained_net([3, 4, 2], np.float32)
    net.weights[1] = np.zeros((3, 3), np.float32)
    path = tmp_path / "m"
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        net.save(path)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_earlier_file(tmp_path):
    path = tmp_path / "m"
    good = trained_net([3, 4, 2], np.float32)
    good.save(path)
    bad = good.copy()
    bad.biases[0] = np.zeros(9, np.float32)
    with pytest.raises(ValueError):
        bad.save(path)
    assert_same_network(good, pf.load(path))
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_save_into_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        trained_net([3, 2], np.float32).save(tmp_path / "no" / "such" / "dir" / "m")


def test_pathlike_accepted(tmp_path):
    net = trained_net([3, 2], np.float32)
    path = pathlib.PurePath(tmp_path / "p")
    net.save(path)
    assert_same_network(net, pf.load(path))


# ---- class labels and feature names in the header ---------------------------------------------------------


@pytest.mark.parametrize(
    "sizes, classes",
    [
        ([3, 4, 3], ["cat", "dog", "émeu"]),  # names, non-ASCII included
        ([3, 4, 3], np.array([3, 5, 11])),  # numbers that are not 0..k-1
        ([3, 4, 3], [0.5, 1.5, -2.0]),
        ([3, 4, 1], ["no", "yes"]),  # a single thresholded output gives two labels
    ],
)
def test_classes_and_feature_names_round_trip(tmp_path, sizes, classes):
    net = trained_net(sizes, np.float32)
    net.classes_ = classes
    net.feature_names_ = ["height", "width", "depth"]
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = pf.load(path)
    assert_same_network(net, loaded)
    assert isinstance(loaded.classes_, np.ndarray)
    assert loaded.classes_.tolist() == np.asarray(classes).tolist()
    assert loaded.feature_names_.tolist() == ["height", "width", "depth"]
    x = RNG.standard_normal((20, 3)).astype(np.float32)
    expected = np.asarray(classes)[net.predict_labels(x)]
    assert np.array_equal(loaded.classes_[loaded.predict_labels(x)], expected)
    # Optional keys, so the file stays version 1: older readers load the same network and ignore them.
    assert _header(_arrays(path))["format_version"] == 1


def test_a_network_without_labels_saves_no_keys_and_loads_none(tmp_path):
    path = _saved(tmp_path)
    header = _header(_arrays(path))
    assert "classes" not in header and "feature_names" not in header
    net = pf.load(path)
    assert net.classes_ is None and net.feature_names_ is None
    header.update(classes=None, feature_names=None)  # null keys mean unknown too
    _write(path, _with_header(_arrays(path), header))
    net = pf.load(path)
    assert net.classes_ is None and net.feature_names_ is None


def test_unknown_header_keys_are_ignored(tmp_path):
    # What lets optional keys go without a version bump: the reader ignores keys it does not know.
    path = _saved(tmp_path)
    original = pf.load(path)
    header = _header(_arrays(path))
    header["added_by_a_later_version"] = {"anything": [1, 2]}
    _write(path, _with_header(_arrays(path), header))
    assert_same_network(original, pf.load(path))


@pytest.mark.parametrize(
    "attribute, value, error, words",
    [
        ("classes_", ["a", "b"], ValueError, "net.classes_ must hold 3 entries"),
        ("classes_", ["a", 1, 2], TypeError, "a mix of strings and numbers"),
        ("classes_", [1.0, float("nan"), 2.0], TypeError, "got nan"),
        ("classes_", [1, None, 2], TypeError, "got None"),
        ("classes_", ["a", "b", "a"], ValueError, "distinct"),
        ("classes_", "abc", TypeError, "sequence of 3 labels; got str"),
        ("classes_", 3, TypeError, "got int"),
        ("classes_", np.array([["a", "b", "c"]]), TypeError, "got ndarray"),
        ("feature_names_", ["x", "y"], ValueError, "net.feature_names_ must hold 4 entries"),
        ("feature_names_", [1, 2, 3, 4], TypeError, "net.feature_names_ must be strings; got 1"),
    ],
)
def test_bad_labels_are_refused_before_writing(tmp_path, attribute, value, error, words):
    net = trained_net([4, 5, 3], np.float32)
    setattr(net, attribute, value)
    with pytest.raises(error, match=words):
        net.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []  # neither the model nor a temporary file


@pytest.mark.parametrize(
    "change, words",
    [
        ({"classes": ["a", "b"]}, "classes must hold 3 entries"),
        ({"classes": ["a", 1, "c"]}, "classes must be all strings or all finite numbers"),
        ({"classes": [1, 1, 2]}, "distinct"),
        ({"classes": {"a": 1}}, "classes must hold 3 entries"),
        ({"classes": "abc"}, "sequence of 3 labels"),
        ({"feature_names": ["a", "b", "c"]}, "feature_names must hold 4 entries"),
        ({"feature_names": [[1], "b", "c", "d"]}, "feature_names must be strings"),
    ],
)
def test_bad_labels_in_a_file_are_invalid_headers(tmp_path, change, words):
    path = _saved(tmp_path)
    arrays = _arrays(path)
    header = _header(arrays)
    header.update(change)
    _write(path, _with_header(arrays, header))
    with pytest.raises(ValueError, match="invalid model header") as info:
        pf.load(path)
    assert words in str(info.value) and str(path) in str(info.value)


def test_a_header_longer_than_load_reads_is_refused_on_save(tmp_path):
    net = pf.MLP([3000, 2], seed=0)
    net.feature_names_ = [f"{i:0400d}" for i in range(3000)]  # 1.2 MB of names
    with pytest.raises(ValueError, match="net.feature_names_ = None"):
        net.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []
    net.feature_names_ = [f"pixel{i}" for i in range(3000)]
    net.save(tmp_path / "model.npz")
    assert pf.load(tmp_path / "model.npz").feature_names_[-1] == "pixel2999"


def test_labels_survive_copy_and_pickle_and_old_pickles_get_none():
    import pickle

    net = pf.MLP([2, 3], seed=0)
    net.classes_ = np.array(["a", "b", "c"])
    for other in (net.copy(), net.astype(np.float64), pickle.loads(pickle.dumps(net))):
        assert other.classes_.tolist() == ["a", "b", "c"] and other.feature_names_ is None
    old = net.__getstate__()
    del old["classes_"]  # the state of a network pickled before the attribute existed
    revived = object.__new__(pf.MLP)
    revived.__setstate__(old)
    assert revived.classes_ is None and revived.feature_names_ is None


# ---- permissions -------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o027])
def test_model_files_get_the_umask_permissions(tmp_path, umask):
    path = tmp_path / "model.npz"
    previous = os.umask(umask)
    try:
        pf.MLP([3, 2], seed=0).save(path)
        first = os.stat(path).st_mode & 0o777
        pf.MLP([3, 2], seed=1).save(path)  # replacing a file: the new one gets the same permissions
        second = os.stat(path).st_mode & 0o777
    finally:
        os.umask(previous)
    assert first == second == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["model.npz"]  # the temporary file was renamed, not left behind
