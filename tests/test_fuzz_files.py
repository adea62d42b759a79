"""Property-based fuzzing of the file readers (issue #13, "Beyond the fixes"): pf.load, pf.datasets.load_csv,
load_idx and load_data on valid files (a saved model, a CSV, an IDX file, gzipped or not, an .npz) that were
then damaged — truncated, a byte flipped, bytes inserted or deleted, a range zeroed.

Each call raises a clear ValueError (MemoryError and TypeError count as clear too, tests/_fuzz.py), or
returns: a model equal to the saved one in every array and every recorded label (a damaged model must never
load as a different one), or data of the documented shapes and dtypes (a damaged data file may hold other
numbers: these formats carry no checksum). An undamaged file reads back exactly what was written.
"""

import gzip

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from _fuzz import FUZZ, outcome
from hypothesis import given
from hypothesis import strategies as st

import pyfastnn as pf

DAMAGES = ["none", "truncate", "flip", "flip", "insert", "delete", "zeros"]


@st.composite
def damaged(draw, raw):
    """``raw`` (bytes) with one kind of damage at a drawn position (the same bytes for "none")."""
    kind = draw(st.sampled_from(DAMAGES))
    if kind == "none" or not raw:
        return kind, raw
    # Positions anywhere, or near the end (a zip's central directory, a gzip trailer) or the start (headers).
    at = draw(
        st.one_of(
            st.integers(0, len(raw) - 1),
            st.integers(max(len(raw) - 120, 0), len(raw) - 1),
            st.integers(0, min(len(raw) - 1, 200)),
        )
    )
    length = draw(st.integers(1, 16))
    if kind == "truncate":
        return kind, raw[:at]
    if kind == "flip":
        b = bytearray(raw)
        b[at] ^= draw(st.integers(1, 255))
        return kind, bytes(b)
    if kind == "insert":
        return kind, raw[:at] + draw(st.binary(min_size=1, max_size=16)) + raw[at:]
    if kind == "delete":
        return kind, raw[:at] + raw[at + length :]
    return kind, raw[:at] + bytes(min(length, len(raw) - at)) + raw[at + length :]


# ---- pf.load -----------------------------------------------------------------------------------------------


def _models():
    """Networks to save: plain, float64 with numeric classes, and one whose JSON header (400 feature names)
    is longer than the zip reader's first read, so that its checksum is verified only when it is read to the
    end."""
    plain = pf.MLP([3, 4, 2], seed=0)
    labelled = pf.MLP([2, 3], dtype=np.float64, activation="tanh", output_activation="softmax", seed=1)
    labelled.classes_ = np.array([10, 20, 30])
    named = pf.MLP([400, 2], seed=2)
    named.feature_names_ = np.array([f"feature_{i:03d}" for i in range(400)])
    named.classes_ = np.array(["cat", "dog"])
    return [plain, labelled, named]


MODELS = _models()


def _same_network(a, b):
    return (
        a.layer_sizes == b.layer_sizes
        and a.activations == b.activations
        and a.dtype == b.dtype
        and a.straight_through == b.straight_through
        and all(np.array_equal(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases))
        and all(
            (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
            for x, y in ((a.classes_, b.classes_), (a.feature_names_, b.feature_names_))
        )
    )


@FUZZ
@given(which=st.sampled_from(range(len(MODELS))), data=st.data())
def test_load_of_a_damaged_model_is_the_model_or_refuses(tmp_path, which, data):
    net = MODELS[which]
    path = tmp_path / "model.npz"
    net.save(path)
    kind, raw = data.draw(damaged(path.read_bytes()))
    path.write_bytes(raw)
    got_kind, got = outcome(
        lambda: pf.load(path), allowed=(ValueError, MemoryError), what=f"pf.load ({kind})"
    )
    if kind == "none":
        assert got_kind == "ok", got
    if got_kind == "ok":
        assert _same_network(got, net), f"a damaged file ({kind}) loaded as a different network"


# ---- load_csv ----------------------------------------------------------------------------------------------


@st.composite
def csv_files(draw):
    """(text, X, labels): rows of numbers and a label column, with or without a header line."""
    rows, feats = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    X = np.round(np.random.default_rng(draw(st.integers(0, 999))).standard_normal((rows, feats)), 3)
    labels = draw(st.sampled_from(["ints", "names"]))
    y = [str(i % 3) if labels == "ints" else ["cat", "dog", "eel"][i % 3] for i in range(rows)]
    lines = [",".join(f"f{j}" for j in range(feats)) + ",label"] if draw(st.booleans()) else []
    lines += [",".join(repr(float(v)) for v in X[i]) + "," + y[i] for i in range(rows)]
    return "\n".join(lines) + "\n", X, y


def _check_data(X, y, dtype=np.float32):
    assert isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype == dtype and np.all(np.isfinite(X))
    assert isinstance(y, np.ndarray) and y.ndim == 1 and y.shape[0] == X.shape[0] and X.shape[0] > 0


@FUZZ
@given(csv=csv_files(), gzipped=st.booleans(), data=st.data())
def test_load_csv_of_a_damaged_file_reads_or_refuses(tmp_path, csv, gzipped, data):
    text, X, labels = csv
    raw = text.encode()
    kind, raw = data.draw(damaged(gzip.compress(raw, mtime=0) if gzipped else raw))
    path = tmp_path / "data.csv"
    path.write_bytes(raw)
    got_kind, got = outcome(
        lambda: pf.datasets.load_csv(path, return_classes=True), what=f"load_csv ({kind})"
    )
    if kind == "none":
        assert got_kind == "ok", got
        gx, gy, classes = got
        np.testing.assert_array_equal(gx, X.astype(np.float32))
        names = [str(v) for v in gy] if classes is None else [classes[i] for i in gy]
        assert names == labels
    if got_kind == "ok":
        _check_data(*got[:2])


# ---- load_idx and load_data --------------------------------------------------------------------------------

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_bytes(array, code):
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(IDX_TYPES[code]).tobytes()


@st.composite
def idx_arrays(draw):
    code = draw(st.sampled_from(sorted(IDX_TYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    values = np.random.default_rng(draw(st.integers(0, 999))).integers(0, 100, shape)
    return values.astype(np.dtype(IDX_TYPES[code]).newbyteorder("=")), code


@FUZZ
@given(idx=idx_arrays(), gzipped=st.booleans(), data=st.data())
def test_load_idx_of_a_damaged_file_reads_or_refuses(tmp_path, idx, gzipped, data):
    array, code = idx
    raw = _idx_bytes(array, code)
    kind, raw = data.draw(damaged(gzip.compress(raw, mtime=0) if gzipped else raw))
    path = tmp_path / "data-idx"
    path.write_bytes(raw)
    got_kind, got = outcome(lambda: pf.datasets.load_idx(path), what=f"load_idx ({kind})")
    if kind == "none":
        assert got_kind == "ok", got
        assert got.dtype == array.dtype and got.shape == array.shape and np.array_equal(got, array)
    if got_kind == "ok":
        assert isinstance(got, np.ndarray) and got.dtype.isnative and got.dtype.kind in "iuf"


@FUZZ
@given(
    fmt=st.sampled_from(["csv", "idx", "npz", "txt"]),
    target=st.sampled_from(["data", "labels"]),
    data=st.data(),
)
def test_load_data_of_a_damaged_file_reads_or_refuses(tmp_path, fmt, target, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 999)))
    rows = data.draw(st.integers(1, 4))
    X, y = rng.integers(0, 255, (rows, 2, 2)).astype(np.uint8), rng.integers(0, 10, rows).astype(np.uint8)
    if fmt == "idx":
        main = tmp_path / "train-images-idx3-ubyte"
        other = tmp_path / "train-labels-idx1-ubyte"
        files = {"data": (main, _idx_bytes(X, 0x08)), "labels": (other, _idx_bytes(y, 0x08))}
    elif fmt == "npz":
        main = tmp_path / "data.npz"
        np.savez(main, X=X, y=y)
        files = {"data": (main, main.read_bytes())}
    else:
        main = tmp_path / f"data.{fmt}"
        text = "".join(",".join(str(v) for v in X[i].ravel()) + f",{y[i]}\n" for i in range(rows))
        files = {"data": (main, text.encode())}
    damaged_file = target if target in files else "data"
    kind = "none"
    for name, (path, raw) in files.items():
        if name == damaged_file:
            kind, raw = data.draw(damaged(raw))
        path.write_bytes(raw)
    got_kind, got = outcome(lambda: pf.datasets.load_data(main), what=f"load_data {fmt}")
    if got_kind == "ok":
        gx, gy = got
        _check_data(gx, gy)
        if kind == "none":
            np.testing.assert_allclose(gx * (255 if fmt == "idx" else 1), X.reshape(rows, -1), rtol=1e-6)
            np.testing.assert_array_equal(gy, y)
    else:
        assert kind != "none", f"an undamaged {fmt} file was refused: {got}"


# ---- what the fuzzer found (each failed before its fix) ----------------------------------------------------


def _central_directory_version_set_to(raw, version):
    b = bytearray(raw)
    at = b.index(b"PK\x01\x02")  # the first central directory record; byte 6 = the version needed to extract
    b[at + 6] = version
    return bytes(b)


def test_a_member_flagged_encrypted_is_a_value_error(tmp_path):
    # zipfile raises RuntimeError ("password required") for a member whose encryption flag is set.
    path = tmp_path / "model.npz"
    MODELS[0].save(path)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"PK\x01\x02") + 8] |= 1  # bit 0 of the general purpose flags: encrypted
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a pyfastnn model file .*encrypted"):
        pf.load(path)


def test_an_unknown_zip_version_is_a_value_error(tmp_path):
    # zipfile raises NotImplementedError("zip file version 10.9"), which escaped pf.load and load_data.
    path = tmp_path / "model.npz"
    MODELS[0].save(path)
    path.write_bytes(_central_directory_version_set_to(path.read_bytes(), 109))
    with pytest.raises(ValueError, match="not a pyfastnn model file .*zip file version 10.9"):
        pf.load(path)
    data = tmp_path / "data.npz"
    np.savez(data, X=np.zeros((2, 2)), y=np.zeros(2))
    data.write_bytes(_central_directory_version_set_to(data.read_bytes(), 109))
    with pytest.raises(ValueError, match="not a readable .npz file .*zip file version 10.9"):
        pf.datasets.load_data(data)


def test_an_npz_member_that_is_not_npy_is_a_value_error(tmp_path):
    # np.load returns the raw bytes of a member without the .npy magic: load_data then raised AttributeError.
    import io
    import zipfile

    path = tmp_path / "data.npz"
    y = io.BytesIO()
    np.save(y, np.zeros(2))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", b"not an array")
        archive.writestr("y.npy", y.getvalue())
    with pytest.raises(ValueError, match="member 'X' is not a .npy array"):
        pf.datasets.load_data(path)


def test_a_damaged_long_model_header_is_a_value_error(tmp_path):
    # A JSON header longer than zipfile's first read (400 feature names) has its CRC checked on the last read,
    # where BadZipFile escaped pf.load.
    path = tmp_path / "model.npz"
    MODELS[2].save(path)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"feature_399")] ^= 0x20
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a pyfastnn model file .*Bad CRC-32 for file 'header.npy'"):
        pf.load(path)


def test_a_garbled_npy_header_is_a_value_error(tmp_path):
    # One more byte in the header member's .npy header length: NumPy's header parser then raised
    # tokenize.TokenError ("EOF in multi-line statement"), which escaped pf.load.
    path = tmp_path / "model.npz"
    MODELS[2].save(path)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"\x93NUMPY\x01\x00") + 8  # the little-endian length of the .npy header
    raw[at] += 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a pyfastnn model file .*member header"):
        pf.load(path)


def test_a_csv_whose_second_line_is_shorter_is_a_value_error(tmp_path):
    # The header guess read the second line's label cell, past its end: IndexError.
    path = tmp_path / "data.csv"
    path.write_text("0.126,-0.132,cat\n0\n")
    with pytest.raises(ValueError, match="line 2 has 1 column"):
        pf.datasets.load_csv(path)
