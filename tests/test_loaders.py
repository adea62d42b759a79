"""The CSV engines (pyarrow, pandas, NumPy) of pf.datasets.load_csv against each other and against the
cell-by-cell parser, on the same files: the same arrays, or the same error with the same message. And
load_parquet, load_data's dispatch to it, and `pyfastnn train --data file.parquet`.

Tests needing pyarrow or pandas skip without them, unless PYFASTNN_REQUIRE_IO=1 (CI installs the io extra and
pandas and sets it): then their absence fails.
"""

import gzip
import importlib
import os
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("hypothesis")
from _fuzz import FUZZ
from hypothesis import given
from hypothesis import strategies as st

import pyfastnn as pf
from pyfastnn import _tabular, datasets
from pyfastnn.datasets import load_csv, load_data, load_parquet

REQUIRE = os.environ.get("PYFASTNN_REQUIRE_IO") == "1"


def need(module):
    """The module; a skip without it, or a failure under PYFASTNN_REQUIRE_IO=1."""
    if REQUIRE:
        return importlib.import_module(module)
    return pytest.importorskip(module)


def engines():
    """Every engine installed here (all three under PYFASTNN_REQUIRE_IO=1, where a missing one fails)."""
    names = ["pyarrow", "pandas", "numpy"]
    return names if REQUIRE else [e for e in names if _tabular.have(e)]


def read(path, engine, **kw):
    """("ok", X, y, classes) or (exception type, message) of load_csv with ``engine``; engine None is the
    cell-by-cell parser alone."""
    try:
        if engine is None:
            original = datasets._csv_by_engine
            datasets._csv_by_engine = lambda *a: None
            try:
                got = load_csv(path, return_classes=True, **kw)
            finally:
                datasets._csv_by_engine = original
        else:
            got = load_csv(path, return_classes=True, engine=engine, **kw)
    except (ValueError, TypeError) as exc:
        return type(exc), str(exc)
    return ("ok", *got)


def same(a, b):
    if a[0] != "ok" or b[0] != "ok":
        return a == b
    (_, xa, ya, ca), (_, xb, yb, cb) = a, b
    return (xa.dtype == xb.dtype and np.array_equal(xa, xb)
            and ya.dtype == yb.dtype and np.array_equal(ya, yb)
            and ((ca is None and cb is None) or (ca is not None and cb is not None and list(ca) == list(cb))))


def check_all_agree(path, **kw):
    """Every engine's outcome equals the cell-by-cell parser's; returns that outcome."""
    want = read(path, None, **kw)
    for engine in engines():
        got = read(path, engine, **kw)
        assert same(got, want), f"{engine}: {got[:2]} != the parser's {want[:2]} on {path.read_bytes()!r}"
    return want


def test_every_engine_is_tested_where_required():
    if REQUIRE:
        need("pyarrow")
        need("pandas")
    assert "numpy" in engines()


# ---- the same files through every engine ----------------------------------------------------------------

EDGE_CASES = {
    "plain": b"1,2,0\n3.5,4,1\n5,6,1\n",
    "header": b"a,b,label\n1,2,cat\n3,4,dog\n",
    "numbered header": b"0,1,target\n1,2,0\n3,4,1\n",
    "crlf and blank lines": b"a,b,label\r\n\r\n1,2,0\r\n\r\n3,4,1\r\n",
    "lone cr": b"1,2,0\r3,4,1\r",
    "bom": b"\xef\xbb\xbfx,y,label\n1,2,0\n",
    "no final newline": b"1,2,0\n3,4,1",
    "spaces around cells": b" 1 , 2 , cat \n3,4,cat\n5,6, dog\n",
    "whitespace-only line": b"1,2,0\n   \n3,4,1\n",
    "quoted cells": b'"x","y","label"\n"1",2,"cat"\n3,"4",dog\n',
    "quoted header only": b'"x","y","label"\n1,2,cat\n3,4,dog\n',
    "quoted label with comma": b'1,2,"a,b"\n3,4,c\n',
    "quote inside a cell": b'1,2,a"b\n3,4,c\n',
    "ragged short": b"1,2,0\n1,2\n",
    "ragged long": b"1,2,0\n1,2,3,4\n5,6,7\n",
    "long first body row": b"a,b,label\n1,2,3,4\n5,6,7,8\n",
    "non-numeric cell": b"a,b,label\n1,2,0\n1,x,1\n",
    "typo in first data line": b"1,x,0\n3,4,1\n",
    "empty cell": b"1,,0\n3,4,1\n",
    "nan feature": b"1,2,0\n1,nan,1\n",
    "inf feature": b"1,inf,0\n",
    "beyond float32": b"1,1e39,0\n2,3,1\n",
    "empty label": b"1,2,0\n3,4,\n",
    "nan label": b"1,2,0\n3,4,nan\n",
    "float targets": b"1,2,0.5\n3,4,1.25\n",
    "mixed label forms": b"1,2,1\n3,4,1.0\n5,6,2\n",
    "string and number labels": b"1,2,1\n3,4,cat\n",
    "underscore number": b"1_000,2,0\n3,4,1\n",
    "arabic digits": "\u0661,2,0\n3,4,1\n".encode(),
    "plus and exponent": b"+1,1e3,0\n.5,5.,1\n",
    "hex": b"0x10,2,0\n",
    "empty": b"",
    "blank": b"\n\n  \n",
    "one column": b"1\n2\n",
    "header only": b"a,b,label\n",
    "not utf-8": b"1,2,0\n3,4,\xff\n",
    "not utf-8 in a number": b"1,2,0\n3\xff,4,1\n",
    "nul byte": b"1,2,0\n3,\x004,1\n",
    "form feed": b"1,2,0\x0c3,4,1\n",
    "label first, strings": b"b,1,2\na,3,4\n",
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_agree_across_engines(tmp_path, name):
    path = tmp_path / "data.csv"
    path.write_bytes(EDGE_CASES[name])
    check_all_agree(path)
    check_all_agree(path, label_column=0)
    check_all_agree(path, dtype=np.float64, skip_header=False)


def test_edge_cases_give_what_load_csv_promises(tmp_path):
    path = tmp_path / "data.csv"
    expect = {
        "plain": ("ok", [[1, 2], [3.5, 4], [5, 6]], [0, 1, 1], None),
        "spaces around cells": ("ok", [[1, 2], [3, 4], [5, 6]], [0, 0, 1], ["cat", "dog"]),
        "quoted cells": ("ok", [[1, 2], [3, 4]], [0, 1], ["cat", "dog"]),
        "lone cr": ("ok", [[1, 2], [3, 4]], [0, 1], None),
        "underscore number": ("ok", [[1000, 2], [3, 4]], [0, 1], None),
        "mixed label forms": ("ok", [[1, 2], [3, 4], [5, 6]], [1, 1, 2], None),
        "ragged long": (ValueError, "line 2 has 4 columns, expected 3 like line 1"),
        "long first body row": (ValueError, "line 2 has 4 columns, expected 3 like line 1"),
        "nan label": (ValueError, "line 2, column 3: expected a finite label, found 'nan'"),
        "typo in first data line": (ValueError, "if line 1 is a header, pass skip_header=True"),
        "not utf-8": (ValueError, "not UTF-8 text (byte 10 cannot be decoded)"),
    }
    for name, want in expect.items():
        path.write_bytes(EDGE_CASES[name])
        got = check_all_agree(path)
        if want[0] == "ok":
            assert got[0] == "ok", (name, got)
            np.testing.assert_array_equal(got[1], np.array(want[1], np.float32))
            np.testing.assert_array_equal(got[2], want[2])
            assert (got[3] is None) == (want[3] is None), name
            assert want[3] is None or list(got[3]) == want[3], name
        else:
            assert got[0] is want[0] and want[1] in got[1], (name, got)


def test_whitespace_delimiter_and_tabs_agree(tmp_path):
    path = tmp_path / "data.txt"
    for raw in [b"1 2 0\n3  4\t1\n", b"  1 2 0\n3 4 1  \n\n", b"1 2 0\x0c3 4 1\n", b"1\xc2\xa02 0\n",
                b"x y label\n1 2 a\n3 4 b\n", b"1 2 0\n1 2\n"]:
        path.write_bytes(raw)
        check_all_agree(path, delimiter=None)
        check_all_agree(path, delimiter="\t")


NUMBERS = ["0", "1", "-2.5", "1e3", "7.25", " 3 ", "+1", ".5", "5.", "1_0", "nan", "inf", "1e400", "", "x",
           '"1"', "1 2", "\u0661", "0.1000000000000000055511151231257827", "123456789012345678901"]
LABELS = ["0", "1", "2", "1.0", "cat", " dog", "dog", "", "nan", '"cat"', "a b", "é"]


@st.composite
def csv_bytes(draw):
    ncols = draw(st.integers(2, 4))
    rows = []
    if draw(st.booleans()):
        rows.append([f"c{j}" for j in range(ncols - 1)] + ["label"])
    weird = draw(st.booleans())  # most files plain, so the engines' own reading is exercised too
    for _ in range(draw(st.integers(0, 6))):
        n = ncols + (draw(st.sampled_from([-1, 0, 0, 0, 0, 1])) if weird else 0)
        cells = [draw(st.sampled_from(NUMBERS[:5] if not weird else NUMBERS)) for _ in range(max(n - 1, 0))]
        rows.append(cells + [draw(st.sampled_from(LABELS[:5] if not weird else LABELS))])
    ends = ["\n", "\r\n"] + (["\r", "\n\n", "\n  \n"] if weird else [])
    text = "".join(",".join(r) + draw(st.sampled_from(ends)) for r in rows)
    if weird and draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode()


@FUZZ
@given(raw=csv_bytes(), label=st.sampled_from([-1, 0, "label"]), gz=st.booleans())
def test_generated_files_agree_across_engines(tmp_path, raw, label, gz):
    path = tmp_path / "data.csv"
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    check_all_agree(path, label_column=label)


# ---- engine choice --------------------------------------------------------------------------------------


def test_engine_argument(tmp_path, monkeypatch):
    path = tmp_path / "data.csv"
    path.write_bytes(b"1,2,0\n3,4,1\n")
    expected = r"engine must be one of \['auto', 'pyarrow', 'pandas', 'numpy'\], got 'c'"
    with pytest.raises(ValueError, match=expected):
        load_csv(path, engine="c")
    with pytest.raises(TypeError, match="engine must be one of"):
        load_csv(path, engine=None)
    monkeypatch.setattr(_tabular, "have", lambda engine: engine == "numpy")
    with pytest.raises(ImportError, match=r"engine='pyarrow' needs pyarrow.*pyfastnn\[io\]"):
        load_csv(path, engine="pyarrow")
    with pytest.raises(ImportError, match="engine='pandas' needs pandas"):
        load_csv(path, engine="pandas")
    monkeypatch.setattr(_tabular, "auto_engine", None)
    assert _tabular.pick("auto", ",") == "numpy"  # nothing else installed: NumPy reads
    X, y = load_csv(path)
    assert np.array_equal(X, [[1, 2], [3, 4]]) and np.array_equal(y, [0, 1])


def test_auto_prefers_pyarrow_then_pandas(monkeypatch):
    monkeypatch.setattr(_tabular, "auto_engine", None)
    monkeypatch.setattr(_tabular, "have", lambda engine: True)
    assert _tabular.pick("auto", ",") == "pyarrow"
    assert _tabular.pick("auto", None) == "pandas"  # pyarrow cannot split at runs of whitespace
    assert _tabular.pick("pyarrow", None) == "pandas"
    monkeypatch.setattr(_tabular, "have", lambda engine: engine != "pyarrow")
    assert _tabular.pick("auto", ",") == "pandas"


def test_pyarrow_uses_pyfastnns_thread_count_and_restores_its_own(tmp_path):
    pa = need("pyarrow")
    path = tmp_path / "data.csv"
    path.write_bytes(b"1,2,0\n3,4,1\n")
    before, threads = pa.cpu_count(), pf.get_num_threads()
    try:
        pf.set_num_threads(1)
        load_csv(path, engine="pyarrow")
        pa.set_cpu_count(1)
        pf.set_num_threads(2)
        X, _ = load_csv(path, engine="pyarrow")
        assert pa.cpu_count() == 1 and X.shape == (2, 2)
    finally:
        pa.set_cpu_count(before)
        pf.set_num_threads(threads)


# ---- larger files ---------------------------------------------------------------------------------------


def _digits_like(path, rows, cols, seed=0, header=True):
    rng = np.random.default_rng(seed)
    A = rng.integers(1, 256, (rows, cols)) * (rng.random((rows, cols)) < 0.2)
    A[:, -1] = rng.integers(0, 10, rows)
    with open(path, "w") as f:
        if header:
            f.write(",".join(f"p{j}" for j in range(cols - 1)) + ",label\n")
        np.savetxt(f, A, fmt="%d", delimiter=",")
    return A


@pytest.mark.parametrize("gz", [False, True])
def test_a_file_of_many_blocks_reads_the_same_everywhere(tmp_path, gz, monkeypatch):
    # Small blocks, so the NumPy engine and pandas go through many, with lines cut across the NumPy ones
    # (pyarrow's blocks of 1 MiB are many for the gzipped copy's stream).
    monkeypatch.setattr(_tabular, "_BLOCK", 1 << 12)
    monkeypatch.setattr(_tabular, "_FRAME", 1 << 14)
    path = tmp_path / "digits.csv"
    A = _digits_like(path, 3000, 50)
    if gz:
        raw = gzip.compress(path.read_bytes())
        path = tmp_path / "digits.csv.gz"
        path.write_bytes(raw)
    for engine in engines():
        X, y = load_csv(path, engine=engine)
        assert X.dtype == np.float32 and X.flags.c_contiguous and X.flags.owndata
        np.testing.assert_array_equal(X, A[:, :-1])
        np.testing.assert_array_equal(y, A[:, -1])
    X, y = load_csv(path, engine="numpy", label_column=7, dtype=np.float64)
    np.testing.assert_array_equal(X, np.delete(A, 7, axis=1))
    np.testing.assert_array_equal(y, A[:, 7])


def test_numpy_engine_peak_memory_is_about_the_output(tmp_path, monkeypatch):
    # tracemalloc sees NumPy's and Python's allocations (not pyarrow's or pandas' own pools), so only the
    # NumPy engine is checked, on a file of many blocks: its peak is the float32 output (allocated for the
    # most rows the file's size allows, so up to 2x) and one block's worth, where the old reader held the
    # whole text, a float64 copy and more (5.3 times the output on this file).
    monkeypatch.setattr(_tabular, "_BLOCK", 1 << 16)
    path = tmp_path / "digits.csv"
    _digits_like(path, 2000, 400)
    out = 2000 * 399 * 4
    load_csv(path, engine="numpy")  # imports and caches outside the measurement
    tracemalloc.start()
    try:
        X, _ = load_csv(path, engine="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert X.nbytes == out
    assert peak < 2.5 * out, f"peak {peak / 2**20:.1f} MiB for a {out / 2**20:.1f} MiB output"


# ---- Parquet --------------------------------------------------------------------------------------------


def _write_parquet(path, columns, **kw):
    pa = need("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path, **kw)


def test_parquet_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    path = tmp_path / "d.parquet"
    columns = {"a": X[:, 0], "b": X[:, 1], "label": y, "c": X[:, 2], "d": X[:, 3].astype(np.float64)}
    _write_parquet(path, columns, row_group_size=16)
    X2, y2 = load_parquet(path, label_column="label")
    assert X2.dtype == np.float32 and y2.dtype == np.int64
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    X3, y3 = load_parquet(path, label_column=2, dtype=np.float64)
    assert X3.dtype == np.float64 and np.array_equal(X3, X.astype(np.float64)) and np.array_equal(y3, y)
    for name in ["d.parquet", "d.pq"]:
        other = tmp_path / name
        other.write_bytes(path.read_bytes())
        X4, y4 = load_data(other, label_column="label")
        assert np.array_equal(X4, X) and np.array_equal(y4, y)


def test_parquet_labels_like_csv(tmp_path):
    path = tmp_path / "d.parquet"
    _write_parquet(path, {"x": [1.0, 2.0, 3.0], "n": np.array([1, 2, 3], np.int16), "y": ["b", "a", "b"]})
    X, y, classes = load_parquet(path, return_classes=True)  # the last column by default
    assert np.array_equal(X, [[1, 1], [2, 2], [3, 3]]) and np.array_equal(y, [1, 0, 1])
    assert list(classes) == ["a", "b"]
    _write_parquet(path, {"x": [1.0, 2.0], "t": [0.5, 1.5]})
    X, y, classes = load_parquet(path, return_classes=True)
    assert y.dtype == np.float32 and np.array_equal(y, [0.5, 1.5]) and classes is None
    _write_parquet(path, {"x": [1.0, 2.0], "t": [1.0, 0.0]})
    assert load_parquet(path)[1].dtype == np.int64  # integral numbers are classes, as in load_csv


def test_parquet_errors(tmp_path):
    path = tmp_path / "d.parquet"
    _write_parquet(path, {"x": [1.0, 2.0], "s": ["a", "b"], "y": [0, 1]})
    with pytest.raises(ValueError, match=r"column 's' .*not numeric \(string\)"):
        load_parquet(path, label_column="y")
    with pytest.raises(ValueError, match=r"label_column 'nope' is not a column.*\['x', 's', 'y'\]"):
        load_parquet(path, label_column="nope")
    with pytest.raises(ValueError, match="label_column=3 is out of range for 3 columns"):
        load_parquet(path, label_column=3)
    with pytest.raises(TypeError, match="label_column"):
        load_parquet(path, label_column=1.5)
    _write_parquet(path, {"x": [1.0, None], "y": [0, 1]})
    with pytest.raises(ValueError, match=r"column 'x' has a missing value at row 1"):
        load_parquet(path)
    _write_parquet(path, {"x": [1.0, np.inf], "y": [0, 1]})
    with pytest.raises(ValueError, match="expected finite values, found inf at sample 1, feature 0"):
        load_parquet(path)
    _write_parquet(path, {"x": [1.0, 2.0], "y": [0, None]})
    with pytest.raises(ValueError, match="column 'y' has a missing value at row 1"):
        load_parquet(path)
    _write_parquet(path, {"y": [0, 1]})
    with pytest.raises(ValueError, match="1 column, expected at least 2"):
        load_parquet(path)
    path.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        load_parquet(path)
    with pytest.raises(FileNotFoundError):
        load_parquet(tmp_path / "missing.parquet")


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *args, **kw):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ImportError, match=r"reading Parquet needs pyarrow: pip install \"pyfastnn\[io\]\""):
        load_parquet(path)
    with pytest.raises(ImportError, match="pyfastnn\\[io\\]"):
        load_data(path)


def test_cli_trains_on_parquet(tmp_path, capsys):
    from pyfastnn import cli

    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 3))
    y = np.where(X[:, 0] > 0, "pos", "neg")
    path = tmp_path / "d.parquet"
    _write_parquet(path, {"f1": X[:, 0], "f2": X[:, 1], "f3": X[:, 2], "kind": y})
    model = tmp_path / "m.npz"
    code = cli.main(["train", "--data", str(path), "--label-column", "kind", "--epochs", "3", "--quiet",
                     "--save", str(model)])
    assert code in (0, None)
    net = pf.load(model)
    assert list(net.classes_) == ["neg", "pos"] and list(net.feature_names_) == ["f1", "f2", "f3"]
