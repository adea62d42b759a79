import gzip
import hashlib
import io
import itertools
import struct

import numpy as np
import pytest

from pyfastnn import datasets
from pyfastnn.datasets import (
    load_csv,
    load_data,
    load_digits,
    load_idx,
    load_idx_pair,
    one_hot,
    train_test_split,
)

DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"

# Written independently of the loader: type code per dtype, from the IDX description.
IDX_CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def idx_bytes(a):
    a = np.asarray(a)
    header = bytes([0, 0, IDX_CODES[a.dtype.type], a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path, a, compress=False):
    data = idx_bytes(a)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# ------------------------------------------------------------------------------------------------ digits


def test_load_digits_shape_range_labels_dtype():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.array_equal(np.unique(y), np.arange(10))
    assert np.bincount(y).min() >= 170  # roughly balanced: 174..183 per digit
    # scaled values are counts / 16
    assert np.allclose(X * 16, np.round(X * 16))


def test_load_digits_unscaled_matches_hash():
    X, y = load_digits(dtype=np.uint8, scale=False)
    assert X.dtype == np.uint8 and X.max() == 16
    assert hashlib.sha256(X.tobytes() + y.astype(np.uint8).tobytes()).hexdigest() == DIGITS_SHA256
    X64, _ = load_digits(dtype=np.float64)
    assert X64.dtype == np.float64
    assert np.array_equal(X64 * 16, X.astype(np.float64))


def test_load_digits_argument_errors():
    with pytest.raises(TypeError, match="floating dtype"):
        load_digits(dtype=np.int32)  # scale=True needs floats
    with pytest.raises(TypeError, match="True or False"):
        load_digits(scale="yes")


def _npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"this is not a zip file", "not a readable .npz"),
        (_npz_bytes(A=np.zeros(3)), r"expected arrays 'X' and 'y', found \['A'\]"),
        (_npz_bytes(X=np.zeros((10, 64), np.uint8), y=np.zeros(10, np.uint8)), "expected X uint8"),
    ],
)
def test_load_digits_damaged_file(monkeypatch, raw, message):
    monkeypatch.setattr(datasets, "_digits_bytes", lambda: (raw, "digits.npz"))
    with pytest.raises(ValueError, match=message):
        load_digits()


def test_load_digits_checksum(monkeypatch):
    X, y = load_digits(dtype=np.uint8, scale=False)
    X = X.copy()
    X[5, 5] ^= 1  # one flipped bit, same shapes and dtypes
    raw = _npz_bytes(X=X, y=y.astype(np.uint8))
    monkeypatch.setattr(datasets, "_digits_bytes", lambda: (raw, "digits.npz"))
    with pytest.raises(ValueError, match="corrupted"):
        load_digits()


# ------------------------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=(5, 3, 4), endpoint=True).astype(dtype)
    else:
        a = rng.standard_normal((5, 3, 4)).astype(dtype)
    # gzip is detected by content: the name says nothing either way
    path = write_idx(tmp_path / "data.bin", a, compress)
    b = load_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == a.shape
    assert np.array_equal(a, b)
    b[0, 0, 0] = 0  # writable


def test_idx_one_dim_and_pathlike_str(tmp_path):
    a = np.arange(7, dtype=np.uint8)
    path = write_idx(tmp_path / "labels-idx1-ubyte", a)
    assert np.array_equal(load_idx(str(path)), a)


def test_idx_truncated(tmp_path):
    a = np.zeros((10, 28, 28), np.uint8)
    data = idx_bytes(a)
    (tmp_path / "t").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="expected 7840 bytes of data.*found 7740") as info:
        load_idx(tmp_path / "t")
    assert "t" in str(info.value)
    (tmp_path / "h").write_bytes(data[:10])  # cut inside the dimension list
    with pytest.raises(ValueError, match="truncated IDX header"):
        load_idx(tmp_path / "h")
    (tmp_path / "x").write_bytes(data + b"\0")
    with pytest.raises(ValueError, match="more than the header says"):
        load_idx(tmp_path / "x")


def test_idx_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    (tmp_path / "t.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot be decompressed"):
        load_idx(tmp_path / "t.gz")


def test_idx_foreign_files(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ValueError, match=r"a\.png: not an IDX file: first two bytes are 0x89 0x50"):
        load_idx(tmp_path / "a.png")
    (tmp_path / "b").write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(ValueError, match="unknown IDX type code 0x07"):
        load_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"\0\0")
    with pytest.raises(ValueError, match="shorter than the 4-byte magic"):
        load_idx(tmp_path / "c")
    with pytest.raises(TypeError, match="file path"):
        load_idx(123)


def test_idx_pair(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 9], np.uint8)
    ip = write_idx(tmp_path / "imgs", images, compress=True)
    lp = write_idx(tmp_path / "labs", labels)
    X, y = load_idx_pair(ip, lp)
    assert X.shape == (6, 12) and X.dtype == np.float32
    assert y.dtype == np.int64 and np.array_equal(y, labels)
    assert np.allclose(X, images.reshape(6, 12) / 255.0)
    X2, _ = load_idx_pair(ip, lp, dtype=np.float64, scale=False)
    assert X2.dtype == np.float64 and np.array_equal(X2, images.reshape(6, 12))


def test_idx_pair_errors(tmp_path):
    ip = write_idx(tmp_path / "imgs", np.zeros((5, 2, 2), np.uint8))
    lp = write_idx(tmp_path / "labs", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="5 images in .*but 4 labels"):
        load_idx_pair(ip, lp)
    with pytest.raises(ValueError, match="labels file must be 1-D"):
        load_idx_pair(ip, ip)
    fp = write_idx(tmp_path / "flabs", np.array([0.0, 1.5, 2, 3, 4], np.float32))
    with pytest.raises(ValueError, match="labels must be integers, found 1.5 at index 1"):
        load_idx_pair(ip, fp)


# ------------------------------------------------------------------------------------------------ CSV


def test_csv_no_header_label_last(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("1,2,0\n3.5,4,1\n\n5,6,1\n")  # the blank line is skipped
    X, y = load_csv(f)
    assert X.dtype == np.float32 and np.array_equal(X, [[1, 2], [3.5, 4], [5, 6]])
    assert y.dtype == np.int64 and np.array_equal(y, [0, 1, 1])


def test_csv_header_auto_and_label_name(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("label,a,b\n7,1,2\n8,3,4\n")
    X, y = load_csv(f, label_column="label")
    assert np.array_equal(X, [[1, 2], [3, 4]]) and np.array_equal(y, [7, 8])
    X, y = load_csv(f, label_column=0)  # header found by "auto"
    assert np.array_equal(y, [7, 8])
    # header with numeric feature names: recognised by its non-numeric label cell
    g = tmp_path / "g.csv"
    g.write_text("0,1,target\n1,2,0\n3,4,1\n")
    X, y = load_csv(g)
    assert X.shape == (2, 2) and np.array_equal(y, [0, 1])
    with pytest.raises(ValueError, match=r"'nope' is not in the header.*\['label', 'a', 'b'\]"):
        load_csv(f, label_column="nope")
    with pytest.raises(ValueError, match="skip_header=False"):
        load_csv(f, label_column="label", skip_header=False)


def test_csv_skip_header_explicit(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("1,2,3\n4,5,6\n")
    X, y = load_csv(f, skip_header=True)
    assert X.shape == (1, 2) and np.array_equal(y, [6])
    X, y = load_csv(f, skip_header=False)
    assert X.shape == (2, 2)


def test_csv_string_labels(tmp_path):
    f = tmp_path / "iris.csv"
    f.write_text("5.1,3.5,setosa\n6.2,2.9,versicolor\n5.0,3.4,setosa\n7.7,3.0,virginica\n")
    X, y, classes = load_csv(f, return_classes=True)
    assert list(classes) == ["setosa", "versicolor", "virginica"]
    assert y.dtype == np.int64 and np.array_equal(y, [0, 1, 0, 2])
    assert np.allclose(X[:, 0], [5.1, 6.2, 5.0, 7.7])
    # a non-numeric label column is not required to be last
    g = tmp_path / "first.csv"
    g.write_text("b,1,2\na,3,4\n")
    X, y, classes = load_csv(g, label_column=0, return_classes=True)
    assert list(classes) == ["a", "b"] and np.array_equal(y, [1, 0]) and np.array_equal(X, [[1, 2], [3, 4]])
    # numeric labels have no class names
    h = tmp_path / "num.csv"
    h.write_text("1,2,3\n4,5,6\n")
    _, y, none = load_csv(h, return_classes=True)
    assert none is None and np.array_equal(y, [3, 6])


def test_csv_float_targets_and_tabs(tmp_path):
    f = tmp_path / "r.tsv"
    f.write_text("x1\tx2\ty\n1\t2\t0.5\n3\t4\t1.25\n")
    X, y = load_csv(f, delimiter="\t", dtype=np.float64)
    assert y.dtype == np.float64 and np.array_equal(y, [0.5, 1.25])
    assert np.array_equal(X, [[1, 2], [3, 4]])


def test_csv_quoted_and_blank_lines_agree(tmp_path):
    # quoted fields go through the cell-by-cell parser, the rest through NumPy's: same result
    plain = tmp_path / "plain.csv"
    plain.write_text("x,y,label\n1,2,cat\n3,4,dog\n5,6,cat\n")
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('"x","y","label"\n"1",2,"cat"\n   \n3,"4",dog\n5,6,"cat"\n')
    header_only_quoted = tmp_path / "hq.csv"
    header_only_quoted.write_text('"x","y","label"\n1,2,cat\n3,4,dog\n5,6,cat\n')
    ref = load_csv(plain, label_column="label", return_classes=True)
    for f in [quoted, header_only_quoted]:
        got = load_csv(f, label_column="label", return_classes=True)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
        assert list(got[2]) == list(ref[2]) == ["cat", "dog"]
    assert np.array_equal(ref[1], [0, 1, 0])


def test_csv_errors_name_the_line(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("a,b,label\n1,2,0\n1,x,1\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 3, column 2: expected a number, found 'x'"):
        load_csv(f)
    f.write_text("1,2,0\n1,2\n")
    with pytest.raises(ValueError, match="line 2 has 2 columns, expected 3"):
        load_csv(f)
    f.write_text("1,2,0\n1,nan,1\n")
    with pytest.raises(ValueError, match="line 2, column 2: expected a finite number"):
        load_csv(f)
    f.write_text("1,2,0\n3,4,\n")
    with pytest.raises(ValueError, match="line 2, column 3: the label is empty"):
        load_csv(f)
    f.write_text("")
    with pytest.raises(ValueError, match="no data"):
        load_csv(f)
    f.write_text("a,b,c\n")
    with pytest.raises(ValueError, match="header line but no data"):
        load_csv(f, skip_header=True)
    f.write_text("1,2,0\n")
    with pytest.raises(ValueError, match="label_column=3 is out of range for 3 columns"):
        load_csv(f, label_column=3)
    with pytest.raises(ValueError, match="delimiter"):
        load_csv(f, delimiter=";;")
    with pytest.raises(TypeError, match="label_column"):
        load_csv(f, label_column=1.5)


# ------------------------------------------------------------------------------------------------ load_data


def test_load_data_npz(tmp_path):
    X = np.arange(24, dtype=np.int16).reshape(4, 2, 3)
    y = np.array([0, 1, 1, 0], np.uint8)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    X2, y2 = load_data(tmp_path / "d.npz")
    assert X2.shape == (4, 6) and X2.dtype == np.float32 and np.array_equal(X2, X.reshape(4, 6))
    assert y2.dtype == np.int64 and np.array_equal(y2, y)
    np.savez(tmp_path / "e.npz", data=X, target=y)
    with pytest.raises(ValueError, match=r"expected arrays named 'X' and 'y', found \['data', 'target'\]"):
        load_data(tmp_path / "e.npz")
    with pytest.raises(TypeError, match="label_column"):
        load_data(tmp_path / "d.npz", label_column=0)
    np.savez(tmp_path / "nan.npz", X=np.array([[1.0, np.nan]]), y=np.array([0]))
    with pytest.raises(ValueError, match="found nan at sample 0, feature 1"):
        load_data(tmp_path / "nan.npz")
    np.savez(tmp_path / "short.npz", X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(ValueError, match=r"X has 3 rows but y has shape \(2,\)"):
        load_data(tmp_path / "short.npz")
    with pytest.raises(FileNotFoundError):
        load_data(tmp_path / "missing.npz")


def test_load_data_text_formats(tmp_path):
    (tmp_path / "a.csv").write_text("1,2,0\n3,4,1\n")
    (tmp_path / "a.tsv").write_text("1\t2\t0\n3\t4\t1\n")
    (tmp_path / "a.txt").write_text("1 2 0\n3  4 1\n")
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"1,2,0\n3,4,1\n"))
    for name in ["a.csv", "a.tsv", "a.txt", "a.csv.gz"]:
        X, y = load_data(tmp_path / name)
        assert np.array_equal(X, [[1, 2], [3, 4]]), name
        assert np.array_equal(y, [0, 1]), name
    X, y = load_data(tmp_path / "a.csv", label_column=0)
    assert np.array_equal(y, [1, 3])


def test_load_data_idx_directory_and_sibling(tmp_path):
    rng = np.random.default_rng(2)
    tr_i = rng.integers(0, 256, (5, 2, 2), dtype=np.uint8)
    tr_l = np.arange(5, dtype=np.uint8)
    te_i = rng.integers(0, 256, (3, 2, 2), dtype=np.uint8)
    te_l = np.array([9, 8, 7], np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", tr_i, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", tr_l, compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", te_i)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", te_l)
    X, y = load_data(tmp_path)  # full MNIST directory -> the training pair
    assert X.shape == (5, 4) and np.array_equal(y, tr_l)
    X, y = load_data(tmp_path, split="test")
    assert np.array_equal(y, te_l) and np.allclose(X, te_i.reshape(3, 4) / 255)
    X, y = load_data(tmp_path / "t10k-images-idx3-ubyte")  # labels found next to it
    assert np.array_equal(y, te_l)
    X, y = load_data(tmp_path / "train-images-idx3-ubyte.gz", scale=False)
    assert np.array_equal(X, tr_i.reshape(5, 4))
    with pytest.raises(ValueError, match="split"):
        load_data(tmp_path, split="valid")


def test_load_data_unknown(tmp_path):
    (tmp_path / "x.dat").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_data(tmp_path / "x.dat")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="expected one IDX images file and one IDX labels file"):
        load_data(empty)


# ------------------------------------------------------------------------------------------------ split


def test_split_sizes_and_content():
    X = np.arange(100).reshape(50, 2)
    y = np.arange(50) % 5
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, seed=0)
    assert X_tr.shape == (40, 2) and X_te.shape == (10, 2) and y_tr.shape == (40,) and y_te.shape == (10,)
    # a partition, and rows stay with their labels
    assert sorted(np.concatenate([X_tr[:, 0], X_te[:, 0]])) == list(range(0, 100, 2))
    assert np.array_equal(X_tr[:, 0] // 2 % 5, y_tr) and np.array_equal(X_te[:, 0] // 2 % 5, y_te)
    _, X_te, _, _ = train_test_split(X, y, test_size=7, seed=0)
    assert X_te.shape == (7, 2)
    _, X_te, _, _ = train_test_split(X, y, test_size=0.01, seed=0)  # rounded up to one sample
    assert X_te.shape == (1, 2)


def test_split_stratified_proportions():
    X, y = load_digits()
    for test_size in [0.1, 0.25, 0.5, 333]:
        _, _, y_tr, y_te = train_test_split(X, y, test_size=test_size, seed=3)
        n_test = len(y_te)
        expected = np.bincount(y) * n_test / len(y)
        assert np.all(np.abs(np.bincount(y_te, minlength=10) - expected) <= 1), test_size
        assert len(y_tr) + n_test == len(y)


def test_split_stratified_small_classes():
    # each class with >= 2 samples gets a sample on each side, even when its share rounds to 0
    y = np.array([0] * 40 + [1] * 2 + [2] * 3 + [3] * 1)
    X = np.zeros((len(y), 1))
    _, _, y_tr, y_te = train_test_split(X, y, test_size=0.1, seed=0)
    assert set(y_te) >= {1, 2} and set(y_tr) >= {0, 1, 2}
    assert len(y_te) == 5


def test_split_deterministic():
    X, y = load_digits()
    a = train_test_split(X, y, seed=42)
    b = train_test_split(X, y, seed=42)
    c = train_test_split(X, y, seed=43)
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    assert not np.array_equal(a[3], c[3])
    # the test part is shuffled, not grouped by class
    assert np.any(np.diff(a[3]) < 0)


def test_split_takes_random_state_as_scikit_learn_names_the_seed():
    X, y = load_digits()
    for u, v in zip(train_test_split(X, y, random_state=7), train_test_split(X, y, seed=7)):
        assert np.array_equal(u, v)
    with pytest.raises(ValueError, match="seed or random_state"):
        train_test_split(X, y, seed=1, random_state=1)


def test_split_unstratified_2d_targets_and_no_shuffle():
    X = np.arange(10)
    Y = np.arange(20, dtype=float).reshape(10, 2)
    X_tr, X_te, _Y_tr, Y_te = train_test_split(X, Y, test_size=3, seed=0)
    assert Y_te.shape == (3, 2) and np.array_equal(Y_te[:, 0], 2 * X_te)
    X_tr, X_te, _, _ = train_test_split(X, Y, test_size=0.3, shuffle=False)
    assert np.array_equal(X_tr, np.arange(7)) and np.array_equal(X_te, [7, 8, 9])
    # explicit stratification with string labels
    s = np.array(["a", "b"] * 5)
    _, _, _s_tr, s_te = train_test_split(X, s, test_size=4, stratify=True, seed=0)
    assert sorted(s_te) == ["a", "a", "b", "b"]


def test_split_errors():
    X = np.zeros((10, 2))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="same number of samples, got 10 and 9"):
        train_test_split(X, y[:9])
    for bad in [0.0, 1.0, -0.1, 1.5]:
        with pytest.raises(ValueError, match=r"in \(0, 1\)"):
            train_test_split(X, y, test_size=bad)
    for bad in [0, 10, 11]:
        with pytest.raises(ValueError, match="both parts non-empty"):
            train_test_split(X, y, test_size=bad)
    with pytest.raises(ValueError, match="both parts must be non-empty"):
        train_test_split(X[:2], y[:2], test_size=0.9)
    with pytest.raises(TypeError, match="test_size"):
        train_test_split(X, y, test_size="0.2")
    with pytest.raises(ValueError, match="1-D class labels"):
        train_test_split(X, np.zeros((10, 2)), stratify=True)
    with pytest.raises(ValueError, match=r"y\[1\] = 0.5 is not an integer"):
        train_test_split(X, np.array([0, 0.5] * 5), stratify=True)
    with pytest.raises(ValueError, match="shuffle=True"):
        train_test_split(X, y, stratify=True, shuffle=False)
    with pytest.raises(TypeError, match="seed"):
        train_test_split(X, y, seed="abc")


# ------------------------------------------------------------------------------------------------ one_hot


def test_one_hot_values():
    Y = one_hot([2, 0, 1, 2])
    assert Y.shape == (4, 3) and Y.dtype == np.float32
    assert np.array_equal(Y, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    Y = one_hot(np.array([1.0, 0.0]), num_classes=4, dtype=np.float64)
    assert Y.dtype == np.float64 and np.array_equal(Y, [[0, 1, 0, 0], [1, 0, 0, 0]])
    assert one_hot(np.array([], np.int64), num_classes=3).shape == (0, 3)
    assert np.array_equal(one_hot(np.array([3], np.uint8)).argmax(1), [3])


def test_one_hot_errors():
    with pytest.raises(ValueError, match=r"non-negative, but y\[2\] = -1"):
        one_hot([0, 1, -1])
    with pytest.raises(ValueError, match=r"below num_classes=3, but y\[1\] = 3"):
        one_hot([0, 3, 1], num_classes=3)
    with pytest.raises(ValueError, match=r"y\[1\] = 1.5 is not an integer"):
        one_hot([0.0, 1.5])
    with pytest.raises(ValueError, match=r"y\[0\] = nan is not an integer"):
        one_hot([np.nan])
    with pytest.raises(ValueError, match=r"1-D .* got shape \(2, 2\)"):
        one_hot([[0, 1], [1, 0]])
    with pytest.raises(TypeError, match="integer labels, got dtype <U"):
        one_hot(["a", "b"])
    with pytest.raises(ValueError, match="empty y"):
        one_hot([])
    with pytest.raises(ValueError, match="positive int, got 0"):
        one_hot([0], num_classes=0)
    with pytest.raises(TypeError, match="num_classes"):
        one_hot([0], num_classes=2.0)
    with pytest.raises(ValueError, match="ragged"):
        one_hot([[0], [1, 2]])


# --------------------------------------------------------------------------------------------------------
# load_sentiment and load_text


def test_load_sentiment():
    texts, y, source = datasets.load_sentiment()
    assert len(texts) == 3000 and y.shape == (3000,) and source.shape == (3000,)
    assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    for name in ("amazon_cells", "imdb", "yelp"):
        assert (source == name).sum() == 1000
        assert y[source == name].sum() == 500
    assert sum("\x85" in t for t in texts) == 2  # two imdb sentences hold a NEL character, not a line break
    assert all(isinstance(t, str) and t and "\n" not in t and "\t" not in t for t in texts)


@pytest.mark.parametrize("arrays, message", [
    ({"amazon_cells": np.zeros(3, np.uint8)}, "expected arrays"),
    ({"amazon_cells": np.frombuffer(b"bad\t1\n", np.uint8), "imdb": np.zeros(1, np.uint8),
      "yelp": np.zeros(1, np.uint8)}, "amazon_cells corrupted"),
])
def test_load_sentiment_damaged_file(monkeypatch, arrays, message):
    monkeypatch.setattr(datasets, "_sentiment_bytes", lambda: (_npz_bytes(**arrays), "sentiment.npz"))
    with pytest.raises(ValueError, match=message):
        datasets.load_sentiment()
    monkeypatch.setattr(datasets, "_sentiment_bytes", lambda: (b"not a zip file", "sentiment.npz"))
    with pytest.raises(ValueError, match="not a readable .npz file"):
        datasets.load_sentiment()


def test_load_text_reads_the_original_files_like_load_sentiment(tmp_path):
    # The bundled arrays are the distributed files byte for byte: written back out, load_text must read them
    # (unbalanced quotes, a NEL character inside a sentence) exactly as load_sentiment does.
    from importlib.resources import files

    texts, y, source = datasets.load_sentiment()
    with np.load(io.BytesIO(files("pyfastnn").joinpath("data/sentiment.npz").read_bytes())) as npz:
        for name in ("amazon_cells", "imdb", "yelp"):
            path = tmp_path / f"{name}_labelled.txt"
            path.write_bytes(npz[name].tobytes())
            t, lab = datasets.load_text(path)
            assert t == [x for x, s in zip(texts, source) if s == name]
            np.testing.assert_array_equal(lab, y[source == name])


def test_load_text_csv_quotes_header_string_labels(tmp_path):
    p = tmp_path / "reviews.csv"
    p.write_text('id,review,label\n1,"Great, really great",pos\n2,"He said ""no""\nthen left",neg\n\n'
                 "3,plain text,pos\n", encoding="utf-8")
    texts, y, classes = datasets.load_text(p, text_column="review", label_column="label",
                                              return_classes=True)
    assert texts == ["Great, really great", 'He said "no"\nthen left', "plain text"]
    assert list(classes[y]) == ["pos", "neg", "pos"]
    t2, y2 = datasets.load_text(p, text_column=1, skip_header=True)
    assert t2 == texts and list(y2) == list(y)


def test_load_text_tsv_auto_header_and_gzip(tmp_path):
    p = tmp_path / "data.tsv.gz"
    p.write_bytes(gzip.compress('text\tlabel\n"quoted start\t1\nplain\t0\n'.encode("utf-8")))
    texts, y = datasets.load_text(p)
    assert texts == ['"quoted start', "plain"] and list(y) == [1, 0]


@pytest.mark.parametrize("content, kw, match", [
    ("", {}, "no data"),
    ("only one column\n", {}, "1 column"),
    ("a,1\nb,2,3\n", {}, "line 2 has 3 columns"),
    ("a,1\nb,\n", {}, "line 2, column 2: the label is empty"),
    ("a,1\n", {"label_column": 5}, "out of range"),
    ("t,l\na,1\n", {"label_column": "label"}, "'label' is not in the header"),
    ("a,1\n", {"text_column": 1}, "same column"),
    ("a,nan\n", {}, "finite labels"),
    ('a,1\n"b,2\nc,3\n', {}, "unbalanced"),
])
def test_load_text_errors(tmp_path, content, kw, match):
    p = tmp_path / "bad.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        datasets.load_text(p, **kw)


def test_load_text_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.load_text(tmp_path / "missing.csv")
    p = tmp_path / "x.csv"
    p.write_bytes(b"\xff\xfe,1\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        datasets.load_text(p)
    with pytest.raises(TypeError, match="text_column"):
        datasets.load_text(p, text_column=1.5)
    with pytest.raises(ValueError, match="delimiter"):
        datasets.load_text(p, delimiter=";;")
    with pytest.raises(ValueError, match="quotechar"):
        datasets.load_text(p, delimiter=",", quotechar=",")


def test_unquoted_text_rows_are_what_csv_reads():
    """load_text splits unquoted files itself (faster than the csv module): the records must be csv's."""
    import csv
    import io
    import random

    from pyfastnn.datasets import _text_rows

    rng = random.Random(0)
    alphabet = ["a", "b", " ", "\t", "\n", "\r", "\r\n", '"', ",", "é", "\x0c", "\u2028", "\x85", "\x1e"]
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        for delimiter in ("\t", ","):
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=csv.QUOTE_NONE)
            want = [(reader.line_num, cells) for cells in reader
                    if cells and not (len(cells) == 1 and not cells[0].strip())]
            assert list(_text_rows(text, delimiter, None)) == want, repr(text)


def test_text_columns_are_the_records_text_rows_yields():
    """load_text takes the text and label cells of unquoted files from ``text_columns`` (compiled, and its
    pure-Python twin): both must give exactly the cells, line numbers and first bad record of ``_text_rows``,
    for 1-, 2- and 4-byte strings."""
    import random

    from pyfastnn.datasets import _text_rows
    from pyfastnn.text import _bow_py
    from pyfastnn.text.vectorizers import _kernels

    kernels = {_bow_py, _kernels()}
    rng = random.Random(1)
    alphabet = ["a", "b", " ", "\t", "\t", "\n", "\r", "\r\n", ",", "é", "\x0c", "\u2028", "\x85", "\x1e",
                "€", "😀", "\u3000"]
    checked = 0
    for _ in range(4000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        for delimiter in ("\t", ",", "€"):
            rows = list(_text_rows(text, delimiter, None))
            if not rows:
                continue
            ncols = len(rows[0][1])
            good = list(itertools.takewhile(lambda r: len(r[1]) == ncols, rows))
            bad = rows[len(good)] if len(good) < len(rows) else None
            for tcol, lcol in {(0, ncols - 1), (ncols - 1, 0), (ncols // 2, ncols - 1)}:
                want = ([cells[tcol] for _, cells in good], [cells[lcol] for _, cells in good],
                        [n for n, _ in good], bad[0] if bad else 0, len(bad[1]) if bad else 0)
                for k in kernels:
                    texts, labels, lines, bad_line, bad_columns = k.text_columns(text, delimiter, ncols, tcol, lcol)
                    got = (texts, labels, lines.tolist(), bad_line, bad_columns)
                    assert lines.dtype == np.int64
                    assert got == want, (k.__name__, repr(text), delimiter, tcol, lcol)
                    checked += 1
    assert checked > 5000


def test_load_text_reads_every_line_ending_and_width(tmp_path):
    p = tmp_path / "mixed.tsv"
    p.write_bytes("ça va\t1\r\n\r\n   \nno 😀 here\t0\rlast one\t1".encode("utf-8"))
    texts, y = datasets.load_text(p)
    assert texts == ["ça va", "no 😀 here", "last one"] and list(y) == [1, 0, 1]
    p.write_bytes("a\t1\nb\t2\tx\n".encode("utf-8"))
    with pytest.raises(ValueError, match=r"line 2 has 3 columns, expected 2 like line 1$"):
        datasets.load_text(p)
    p.write_bytes("a\t1\n\nb\t \n".encode("utf-8"))
    with pytest.raises(ValueError, match="line 3, column 2: the label is empty"):
        datasets.load_text(p)
