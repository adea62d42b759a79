"""Loading data sets and preparing them for training.

Every loader returns ``(X, y)``: ``X`` of shape ``(n_samples, n_features)`` in a floating dtype (float32 by
default) and ``y`` of shape ``(n_samples,)``, int64 class labels wherever the labels are classes.

Functions
---------
load_digits
    The bundled 8x8 handwritten digits (1797 samples, 64 features, 10 classes).
load_idx, load_idx_pair
    MNIST-format IDX files, plain or gzipped.
load_csv
    Delimited text with one label column (read by pyarrow, pandas or NumPy).
load_parquet
    A Parquet file with one label column (needs pyarrow).
load_data
    Any of the above, chosen from the path.
load_sentiment
    The bundled review sentences labelled by sentiment (3000 texts, 2 classes).
load_text
    Delimited text (CSV, TSV) with one text column and one label column.
train_test_split
    A shuffled, by default stratified, split into a training and a test part.
one_hot
    Integer labels to one-hot rows.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import itertools
import math
import numbers
import os
import re
import stat
import zlib
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any, Union

import numpy as np

from . import _tabular
from ._backend import get_num_threads
from ._validation import is_sparse
from .io import ZIP_ERRORS

__all__ = [
    "load_csv",
    "load_data",
    "load_digits",
    "load_idx",
    "load_idx_pair",
    "load_parquet",
    "load_sentiment",
    "load_text",
    "one_hot",
    "train_test_split",
]

PathLike = Union[str, "os.PathLike[str]"]

_DIGITS_RESOURCE = "data/digits.npz"
_DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
_DIGITS_SHAPE = (1797, 64)

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_RATIO = 1100  # deflate expands data at most ~1032 times: a bound on what a gzip file can hold
_READ_CHUNK = 1 << 24
_ZIP_MAGIC = b"PK\x03\x04"

# IDX type code -> big-endian element type, as defined with the MNIST files.
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_TYPE_NAMES = "0x08 (ubyte), 0x09 (sbyte), 0x0B (short), 0x0C (int), 0x0D (float), 0x0E (double)"


# --------------------------------------------------------------------------------------------------------
# argument checks shared by the public functions
# --------------------------------------------------------------------------------------------------------


def _check_path(path: Any, name: str = "path") -> Path:
    if isinstance(path, (str, os.PathLike)):
        p = Path(os.fspath(path))
        if str(p) == "":
            raise ValueError(f"{name} must be a non-empty file path, got ''")
        return p
    raise TypeError(f"{name} must be a str or os.PathLike file path, got {type(path).__name__}")


def _check_dtype(dtype: Any, kinds: str, what: str, name: str) -> np.dtype:
    try:
        if dtype is None:  # np.dtype(None) would quietly mean float64
            raise TypeError
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a NumPy {what} dtype such as np.float32, got {dtype!r}") from None
    if dt.kind not in kinds:
        raise TypeError(f"{name} must be a NumPy {what} dtype such as np.float32, got {dt}")
    return dt


def _check_float_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    return _check_dtype(dtype, "f", "floating", name)


def _check_numeric_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    return _check_dtype(dtype, "biuf", "numeric", name)


def _fmt(value: Any) -> str:
    """repr of a value for messages, without NumPy 2's "np.float64(...)" wrapping."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _first_non_integer(a: np.ndarray) -> int | None:
    """Index of the first element of a float array that is not a finite integer, or None."""
    bad = ~np.isfinite(a) | (a != np.round(a))
    return int(np.flatnonzero(bad)[0]) if bad.any() else None


def _as_array(value: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} must be array-like with a regular (non-ragged) shape ({exc})") from None


def _check_finite(X: np.ndarray, where: Any) -> None:
    if X.dtype.kind == "f":
        bad = ~np.isfinite(X)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"{where}: expected finite values, found {_fmt(X[i, j])} at sample {i}, feature {j}"
            )


def _check_bool(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def _open_regular(path: Path) -> Any:
    """``path`` opened for binary reading, if it is a regular file: a directory fails, and so do devices,
    pipes and sockets, whose reads could block or never end (/dev/zero)."""
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path}: expected a file, found a directory")
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path}: not a regular file (a device, pipe or socket); expected a data file")
    return open(path, "rb")


def _read_maybe_gzipped(path: Path) -> bytes:
    """The file's bytes, gunzipped when the file starts with the gzip magic (whatever its name)."""
    with _open_regular(path) as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: the file starts like gzip but cannot be decompressed ({exc})") from None


# --------------------------------------------------------------------------------------------------------
# bundled digits
# --------------------------------------------------------------------------------------------------------


def _bundled_bytes(name: str) -> tuple[bytes, str]:
    """Raw bytes of the bundled data file ``name`` (under pyfastnn/) and a name for error messages."""
    resource = files("pyfastnn").joinpath(name)
    try:
        return resource.read_bytes(), str(resource)
    except OSError as exc:
        raise OSError(f"the bundled data file pyfastnn/{name} cannot be read ({exc}); reinstall pyfastnn") from exc


def _digits_bytes() -> tuple[bytes, str]:
    """Raw bytes of the bundled digits.npz and a name for error messages."""
    return _bundled_bytes(_DIGITS_RESOURCE)


def _parse_digits(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    hint = "the installation is damaged; reinstall pyfastnn"
    found: list = []
    X = y = None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            found = sorted(npz.files)
            if "X" in found and "y" in found:
                X, y = npz["X"], npz["y"]
    except ZIP_ERRORS as exc:
        raise ValueError(f"{where}: not a readable .npz file ({exc}); {hint}") from None
    if X is None or y is None:
        raise ValueError(f"{where}: expected arrays 'X' and 'y', found {found}; {hint}")
    if X.shape != _DIGITS_SHAPE or X.dtype != np.uint8 or y.shape != _DIGITS_SHAPE[:1] or y.dtype != np.uint8:
        raise ValueError(
            f"{where}: expected X uint8 {_DIGITS_SHAPE} and y uint8 {_DIGITS_SHAPE[:1]}, "
            f"found X {X.dtype} {X.shape} and y {y.dtype} {y.shape}; {hint}"
        )
    digest = hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()
    if digest != _DIGITS_SHA256:
        raise ValueError(f"{where}: contents corrupted (sha256 {digest}, expected {_DIGITS_SHA256}); {hint}")
    return X, y


def load_digits(dtype: Any = np.float32, scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load the bundled 8x8 handwritten digits.

    The test part of the UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin,
    C. Kaynak, 1998; CC BY 4.0, see ``pyfastnn/data/DIGITS_LICENSE.txt``). Each feature counts the
    "on" pixels of a 4x4 block of a 32x32 bitmap, so it lies in 0..16.

    Parameters
    ----------
    dtype : numpy dtype, default np.float32
        Dtype of ``X``. Any numeric dtype when ``scale`` is False; a floating dtype when it is True.
    scale : bool, default True
        Divide ``X`` by 16 so that it lies in [0, 1].

    Returns
    -------
    X : ndarray, shape (1797, 64)
        Pixel counts, row by row of the 8x8 grid.
    y : ndarray of int64, shape (1797,)
        The digit shown, 0..9.

    Raises
    ------
    ValueError
        If the bundled file is damaged (wrong arrays, shapes or checksum).
    """
    scale = _check_bool(scale, "scale")
    dt = _check_float_dtype(dtype) if scale else _check_numeric_dtype(dtype)
    raw, where = _digits_bytes()
    X, y = _parse_digits(raw, where)
    X = X.astype(dt)
    if scale:
        X /= dt.type(16)
    return X, y.astype(np.int64)


# --------------------------------------------------------------------------------------------------------
# IDX (MNIST) files
# --------------------------------------------------------------------------------------------------------


def _read_idx(f: Any, where: Any, data_size: int | None, gzip_size: int | None) -> np.ndarray:
    """Read IDX from the stream f: the header, then exactly the data it declares. For a plain file,
    ``data_size`` (the file's size) is checked against the header before reading; for a gzip stream,
    ``gzip_size`` (the compressed size) bounds what it can hold, and reading stops at the declared size."""
    head = f.read(4)
    if len(head) < 4:
        raise ValueError(f"{where}: not an IDX file: {len(head)} bytes, shorter than the 4-byte magic number")
    if head[0] != 0 or head[1] != 0:
        raise ValueError(
            f"{where}: not an IDX file: first two bytes are 0x{head[0]:02X} 0x{head[1]:02X}, "
            f"expected 0x00 0x00"
        )
    code, ndim = head[2], head[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{where}: unknown IDX type code 0x{code:02X}; expected one of {_IDX_TYPE_NAMES}")
    if ndim == 0:
        raise ValueError(f"{where}: IDX header gives 0 dimensions; expected at least 1")
    header = 4 + 4 * ndim
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(
            f"{where}: truncated IDX header: {ndim} dimensions need {header} header bytes, "
            f"found {4 + len(dims)}"
        )
    shape = tuple(int.from_bytes(dims[4 * i : 4 + 4 * i], "big") for i in range(ndim))
    dt = _IDX_TYPES[code]
    expected = math.prod(shape) * dt.itemsize
    says = (f"{where}: header says shape {shape} of {dt.newbyteorder('=').name}, "
            f"so expected {expected} bytes of data")
    if data_size is not None and data_size - header != expected:
        found = data_size - header
        more = " (more than the header says)" if found > expected else ""
        raise ValueError(f"{says} after the {header}-byte header, found {found}{more}")
    if gzip_size is not None and expected > _GZIP_RATIO * gzip_size:
        raise ValueError(
            f"{where}: the IDX header declares {expected} bytes of data (shape {shape}), "
            f"more than a gzip file of {gzip_size} bytes can hold"
        )
    # Read in chunks into a growing buffer: memory follows the data actually present, not the declared size.
    data = bytearray()
    while len(data) < expected:
        chunk = f.read(min(expected - len(data), _READ_CHUNK))
        if not chunk:
            raise ValueError(f"{says} after the {header}-byte header, found {len(data)}")
        data += chunk
    if f.read(1):
        raise ValueError(f"{says} after the {header}-byte header, found more (more than the header says)")
    # Copy into native byte order: a writable array the caller owns, fast for every later kernel.
    return np.frombuffer(data, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))


def load_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file, the format of the MNIST distribution files.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian uint32;
    the data follows big-endian in C order. A gzipped file is recognised by its content (bytes 1f 8b),
    not by its name.

    Parameters
    ----------
    path : str or os.PathLike
        The file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    ndarray, shape as given in the header (e.g. (60000, 28, 28) for MNIST training images)
        Native byte order; dtype from the type code (uint8 for MNIST).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not IDX, or its header and data size disagree (truncated or padded files).
        The message names the file and the problem.
    """
    p = _check_path(path)
    with _open_regular(p) as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(2) != _GZIP_MAGIC:
            f.seek(0)
            return _read_idx(f, p, size, None)
        f.seek(0)
        try:
            with gzip.GzipFile(fileobj=f, mode="rb") as g:
                return _read_idx(g, p, None, size)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{p}: the file starts like gzip but cannot be decompressed ({exc})") from None


def _labels_to_int64(labels: np.ndarray, where: Any) -> np.ndarray:
    if labels.dtype.kind in "biu":
        return labels.astype(np.int64)
    i = _first_non_integer(labels)
    if i is not None:
        raise ValueError(f"{where}: labels must be integers, found {_fmt(labels[i])} at index {i}")
    return labels.astype(np.int64)


def load_idx_pair(
    images_path: PathLike, labels_path: PathLike, dtype: Any = np.float32, scale: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX images file and its IDX labels file into ``(X, y)``.

    Parameters
    ----------
    images_path : str or os.PathLike
        IDX file of shape (n, ...), e.g. ``train-images-idx3-ubyte[.gz]`` of shape (60000, 28, 28).
    labels_path : str or os.PathLike
        IDX file of shape (n,), integer labels, e.g. ``train-labels-idx1-ubyte[.gz]``.
    dtype : numpy floating dtype, default np.float32
        Dtype of ``X``.
    scale : bool, default True
        Divide uint8 images by 255 so that they lie in [0, 1]. Images of other IDX types have no fixed
        range and are returned unscaled.

    Returns
    -------
    X : ndarray, shape (n, prod(rest))
        One flattened image per row (C order), e.g. (60000, 784).
    y : ndarray of int64, shape (n,)

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        If either file is not valid IDX, float images hold NaN or infinity, the labels are not 1-D
        integers, or the counts differ.
    """
    ip, lp = _check_path(images_path, "images_path"), _check_path(labels_path, "labels_path")
    dt = _check_float_dtype(dtype)
    scale = _check_bool(scale, "scale")
    images = load_idx(ip)
    labels = load_idx(lp)
    if labels.ndim != 1:
        raise ValueError(f"{lp}: a labels file must be 1-D, found shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images.shape[0]} images in {ip} but {labels.shape[0]} labels in {lp}; expected equal counts"
        )
    n = images.shape[0]
    X = images.reshape(n, math.prod(images.shape[1:]))
    _check_finite(X, ip)
    X = X.astype(dt)
    if scale and images.dtype == np.uint8:
        X /= dt.type(255)
    return X, _labels_to_int64(labels, lp)


# --------------------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_rows(text: str, delimiter: str | None):
    """Yield (line_number, cells) for every non-blank record; line numbers are 1-based."""
    if delimiter is None:
        for lineno, line in enumerate(text.splitlines(), 1):
            cells = line.split()
            if cells:
                yield lineno, cells
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for cells in reader:
            if cells and not (len(cells) == 1 and not cells[0].strip()):
                yield reader.line_num, [c.strip() for c in cells]
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None


def load_csv(
    path: PathLike,
    label_column: int | str = -1,
    delimiter: str | None = ",",
    skip_header: bool | str = "auto",
    dtype: Any = np.float32,
    return_classes: bool = False,
    engine: str = "auto",
):
    """Read delimited text with one sample per line and one label column.

    Blank lines are skipped; quoted fields follow the ``csv`` module. A gzipped file is recognised by
    its content. Line numbers in error messages count every physical line of the file from 1.

    Parameters
    ----------
    path : str or os.PathLike
        The file (UTF-8; a byte-order mark is ignored).
    label_column : int or str, default -1
        The column holding the labels: an index (negative counts from the end) or a header name (which
        needs a header line).
    delimiter : str or None, default ","
        A single character, or None for any run of whitespace.
    skip_header : bool or "auto", default "auto"
        Whether the first non-blank line is a header. "auto" decides by the whole line: it is a header when
        none of its feature cells is a number (column names), or when they all are (numbered columns) but its
        label cell is not while the next line's is. A line mixing numbers and text in its feature cells is
        data, so a typo in the first data line is reported (with a hint to pass skip_header=True if it was a
        header) instead of dropping that line.
    dtype : numpy floating dtype, default np.float32
        Dtype of ``X``. Every cell is parsed as a float64 (as Python's ``float`` parses it), then cast.
    return_classes : bool, default False
        Also return the class names (see Returns).
    engine : {"auto", "pyarrow", "pandas", "numpy"}, default "auto"
        What parses the rows: pyarrow's multi-threaded CSV reader (``pyfastnn.get_num_threads()`` threads;
        ``pip install "pyfastnn[io]"``), pandas' C parser, or NumPy's ``loadtxt`` block by block. "auto" takes
        the first of these installed. pyarrow does not split at runs of whitespace: with ``delimiter=None``
        it hands over to pandas or NumPy. All three give the same arrays: they read only plain files
        (unquoted, regular, finite); a file with quoted cells or any problem is read by a cell-by-cell
        parser, which gives the errors below, the same whatever the engine.

    Returns
    -------
    X : ndarray, shape (n_samples, n_columns - 1)
        The other columns, in file order.
    y : ndarray, shape (n_samples,)
        int64 when every label is an integer; ``dtype`` when the labels are numbers but not all integers
        (regression targets); int64 codes 0..k-1 when any label is not a number, the codes numbering the
        distinct label strings in sorted order.
    classes : ndarray of str, shape (k,), or None
        Only with ``return_classes=True``: ``classes[y[i]]`` is the label string of sample i, or None
        when the labels are numbers.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ImportError
        If ``engine`` names pyarrow or pandas and it is not installed.
    ValueError
        Empty file, rows of different lengths, a feature that is not a finite number, an empty label, a
        label column outside the row or not in the header; the message gives the line number (of the first
        problem in the file).
    """
    p = _check_path(path)
    if not isinstance(label_column, (numbers.Integral, str)) or isinstance(label_column, (bool, np.bool_)):
        raise TypeError(
            f"label_column must be a column index (int) or a header name (str), got {label_column!r}"
        )
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise ValueError(f"delimiter must be a single character or None (whitespace), got {delimiter!r}")
    if delimiter is not None and delimiter in '"\r\n':
        raise ValueError(f"delimiter cannot be a quote or newline character, got {delimiter!r}")
    if not (isinstance(skip_header, (bool, np.bool_)) or skip_header == "auto"):
        raise ValueError(f"skip_header must be True, False or 'auto', got {skip_header!r}")
    dt = _check_float_dtype(dtype)
    return_classes = _check_bool(return_classes, "return_classes")
    if not isinstance(engine, str):
        raise TypeError(f"engine must be one of {list(_tabular.ENGINES)}, got {engine!r}")
    chosen = _tabular.pick(engine, delimiter)

    parsed = _csv_by_engine(p, chosen, delimiter, label_column, skip_header, dt)
    if parsed is None:
        parsed = _csv_checked(p, delimiter, label_column, skip_header, dt)
    X, keys, codes = parsed
    y, classes = _labels_from_keys(keys, codes, dt)
    if return_classes:
        return X, y, classes
    return X, y


def _csv_layout(p: Path, head: list, label_column: int | str, skip_header: bool | str,
                delimiter: str | None) -> tuple[int, bool]:
    """From the first two records ``head`` [(line number, cells)]: (label column index, whether the first
    record is a header); ValueError when the file has no data or the label column cannot be found."""
    if not head:
        raise ValueError(f"{p}: the file has no data (it is empty or blank)")
    first_line, first = head[0]
    ncols = len(first)
    if ncols < 2:
        raise ValueError(
            f"{p}: line {first_line} has {ncols} column, expected at least 2 (features and a label)"
            + ("" if delimiter is None else f"; is the delimiter {delimiter!r} right?")
        )
    if isinstance(label_column, str):
        if skip_header is False:
            raise ValueError(f"label_column={label_column!r} is a header name, but skip_header=False")
        matches = [i for i, name in enumerate(first) if name == label_column.strip()]
        if len(matches) != 1:
            shown = first if len(first) <= 20 else first[:20] + ["..."]
            what = "is not" if not matches else f"appears {len(matches)} times"
            raise ValueError(
                f"{p}: label_column {label_column!r} {what} in the header (line {first_line}): {shown}"
            )
        return matches[0], True
    lab = int(label_column)
    if not -ncols <= lab < ncols:
        raise ValueError(f"{p}: label_column={lab} is out of range for {ncols} columns")
    lab %= ncols
    if skip_header != "auto":
        return lab, bool(skip_header)
    numeric = [_is_number(c) for i, c in enumerate(first) if i != lab]
    # The second line may have fewer cells: the parser reports that, with its line number.
    label_text = (not _is_number(first[lab]) and len(head) > 1 and lab < len(head[1][1])
                  and _is_number(head[1][1][lab]))
    return lab, not any(numeric) or (all(numeric) and label_text)


def _csv_head(stream: Any, delimiter: str | None) -> tuple[str, int, list]:
    """The start of a binary stream, up to a line end, that holds its first two records: (text, bytes of a
    byte-order mark, [(line number, cells)] of those records); UnicodeDecodeError or ValueError (csv) when the
    start cannot be read."""
    buf = b""
    while True:
        more = stream.read(max(1 << 16, len(buf)))
        buf += more
        end = len(buf) if not more else buf.rfind(b"\n") + 1
        bom = 3 if buf.startswith(codecs.BOM_UTF8) else 0
        text = buf[bom:end].decode("utf-8")
        try:
            head = list(itertools.islice(_split_rows(text, delimiter), 2))
        except ValueError:
            if not more:
                raise
            continue  # a quoted cell open at the end of what was read
        if not more or len(head) == 2:
            return text, bom, head


def _csv_by_engine(p: Path, engine: str, delimiter: str | None, label_column: int | str,
                   skip_header: bool | str, dt: np.dtype):
    """(X, label strings, label codes) read by ``engine``, or None when the file is not plain (see
    pyfastnn._tabular) or has any problem, which the cell-by-cell parser then names."""
    with _open_regular(p) as f:
        try:
            gzipped = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f, mode="rb") if gzipped else f
            text, bom, head = _csv_head(stream, delimiter)
            lab, has_header = _csv_layout(p, head, label_column, skip_header, delimiter)
            # Lines end where csv and str.splitlines() end them, for the header's end and the engines alike.
            if text.count("\r") != text.count("\r\n"):
                return None
            if delimiter is None and any(c in text for c in _tabular._OTHER_LINE_ENDS):
                return None
            body = bom
            if has_header:
                after = _line_offset(text, head[0][0])
                if after is None:
                    return None
                body += len(text[:after].encode("utf-8"))
            stream.seek(body)
            size = None if gzipped else os.fstat(f.fileno()).st_size - body
            line_bytes = len(text.encode("utf-8")) / max(text.count("\n"), 1)
            return _tabular.read_csv_body(engine, stream, delimiter, len(head[0][1]), lab, dt,
                                          get_num_threads(), size, line_bytes)
        except (ValueError, OSError, EOFError, zlib.error):
            return None


def _line_offset(text: str, nlines: int) -> int | None:
    """Offset where line nlines + 1 starts ("\n" line ends), or None."""
    pos = 0
    for _ in range(nlines):
        nxt = text.find("\n", pos)
        if nxt < 0:
            return None
        pos = nxt + 1
    return pos


def _is_finite_text(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return True


def _numeric_labels_finite(keys: list) -> bool:
    try:
        values = np.array(keys, dtype=np.float64)
    except ValueError:
        return True  # string labels
    return bool(np.isfinite(values).all())


def _csv_checked(p: Path, delimiter: str | None, label_column: int | str, skip_header: bool | str,
                 dt: np.dtype):
    """Parse cell by cell with line numbers: (X, label strings, label codes); ValueError naming the line and
    column of the first problem (when "auto" took the first line for data, saying how to skip it as a header
    if the problem is there). Rows go into the output block by block, so no Python object per cell lives
    longer than its block."""
    raw = _read_maybe_gzipped(p)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p}: not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    del raw
    head = list(itertools.islice(_csv_rows(p, text, delimiter), 2))
    lab, has_header = _csv_layout(p, head, label_column, skip_header, delimiter)
    hint = skip_header == "auto" and not has_header
    first_line, ncols = head[0][0], len(head[0][1])

    out = _tabular._Rows(ncols - 1, dt)
    labels = _tabular._Labels()
    block = np.empty((4096, ncols - 1), dtype=np.float64)
    codes = np.empty(4096, dtype=np.int64)
    r = 0
    limit = float(np.finfo(dt).max)
    first_data = not has_header
    first_seen: dict = {}  # label -> the line it is first found on
    for lineno, cells in _csv_rows(p, text, delimiter):
        if len(cells) != ncols:
            raise ValueError(
                f"{p}: line {lineno} has {len(cells)} columns, expected {ncols} like line {first_line}"
            )
        if lineno == first_line and has_header:
            continue
        for j, c in enumerate(cells):
            if j == lab:
                if c == "":
                    raise ValueError(f"{p}: line {lineno}, column {j + 1}: the label is empty")
                codes[r] = labels.code(c)
                first_seen.setdefault(c, lineno)
                continue
            try:
                v = float(c)
            except ValueError:
                header = ""
                if hint and first_data:
                    header = f"; if line {lineno} is a header, pass skip_header=True"
                raise ValueError(
                    f"{p}: line {lineno}, column {j + 1}: expected a number, found {c!r}{header}"
                ) from None
            if not math.isfinite(v):
                raise ValueError(f"{p}: line {lineno}, column {j + 1}: expected a finite number, found {c!r}")
            if abs(v) > limit:
                raise ValueError(f"{p}: line {lineno}, column {j + 1}: {c!r} is beyond the range of {dt} "
                                 f"(±{limit:.6g}); pass dtype=np.float64")
            block[r, j if j < lab else j - 1] = v
        first_data = False
        r += 1
        if r == len(codes):
            X_out, c_out = out.take(r)
            X_out[...], c_out[...] = block, codes
            r = 0
    X_out, c_out = out.take(r)
    X_out[...], c_out[...] = block[:r], codes[:r]
    if out.n == 0:
        raise ValueError(f"{p}: the file has a header line but no data lines")
    X, codes = out.finish()
    names = list(labels.index)  # the cells are stripped already
    if not _numeric_labels_finite(names):
        bad = next(name for name in names if not math.isfinite(float(name)))  # names are in file order
        raise ValueError(
            f"{p}: line {first_seen[bad]}, column {lab + 1}: expected a finite label, found {bad!r}"
        )
    return X, names, codes


def _csv_rows(p: Path, text: str, delimiter: str | None):
    """_split_rows with the path in front of the csv module's errors."""
    try:
        yield from _split_rows(text, delimiter)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None


def _labels_from_keys(keys: list, codes: np.ndarray, dt: np.dtype):
    """Labels from the distinct label strings and each sample's index into them: (y, classes)."""
    try:
        values = np.array(keys, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None:
        v = values[codes]
        if (v == np.round(v)).all():
            return v.astype(np.int64), None
        return v.astype(dt), None
    names = np.array(keys, dtype=str)
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys))
    return rank[codes], names[order]


# --------------------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------------------


def load_parquet(
    path: PathLike,
    label_column: int | str = -1,
    dtype: Any = np.float32,
    return_classes: bool = False,
):
    """Read a Parquet file with one label column and numeric feature columns (needs pyarrow:
    ``pip install "pyfastnn[io]"``).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    label_column : int or str, default -1
        The column holding the labels: an index (negative counts from the end) or a column name.
    dtype : numpy floating dtype, default np.float32
        Dtype of ``X``.
    return_classes : bool, default False
        Also return the class names (see Returns).

    Returns
    -------
    X : ndarray, shape (n_samples, n_columns - 1)
        The other columns (integer, floating or boolean), in file order.
    y : ndarray, shape (n_samples,)
        As :func:`load_csv` gives them: int64 when every label is an integer; ``dtype`` for other numbers;
        int64 codes 0..k-1 numbering the distinct label strings in sorted order when any is not a number.
    classes : ndarray of str, shape (k,), or None
        Only with ``return_classes=True``: ``classes[y[i]]`` is the label of sample i, or None when the
        labels are numbers.

    Raises
    ------
    ImportError
        If pyarrow is not installed.
    FileNotFoundError
        If the file does not exist.
    ValueError
        Not a Parquet file, fewer than 2 columns, a label column not in the file, a feature column that is not
        numeric, a missing value (null) or a feature that is not finite.
    """
    p = _check_path(path)
    if not isinstance(label_column, (numbers.Integral, str)) or isinstance(label_column, (bool, np.bool_)):
        raise TypeError(
            f"label_column must be a column index (int) or a column name (str), got {label_column!r}"
        )
    dt = _check_float_dtype(dtype)
    return_classes = _check_bool(return_classes, "return_classes")
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ImportError(f"reading Parquet needs pyarrow: {_tabular.IO_EXTRA}") from None
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    _open_regular(p).close()  # a directory, device or pipe is refused here
    X, keys, codes, values = _tabular.read_parquet(p, label_column, dt, get_num_threads())
    _check_finite(X, p)
    if values is None:
        if not _numeric_labels_finite(keys):
            bad = next(k for k in keys if not _is_finite_text(k))
            raise ValueError(f"{p}: expected finite labels, found {bad!r}")
        y, classes = _labels_from_keys(keys, codes, dt)
    elif values.dtype.kind in "biu":
        y, classes = values.astype(np.int64), None
    else:
        bad = _first_non_integer(values)
        if not np.isfinite(values).all():
            at = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"{p}: expected finite labels, found {_fmt(values[at])} at sample {at}")
        y, classes = (values.astype(np.int64) if bad is None else values.astype(dt)), None
    if return_classes:
        return X, y, classes
    return X, y


def _parquet_feature_names(path: PathLike, label_column: int | str) -> list:
    """The names of the feature columns of a Parquet file that load_parquet has read."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    lab = names.index(label_column) if isinstance(label_column, str) else label_column % len(names)
    return names[:lab] + names[lab + 1 :]


# --------------------------------------------------------------------------------------------------------
# load_data: choose the loader from the path
# --------------------------------------------------------------------------------------------------------

_CSV_KW = ("label_column", "delimiter", "skip_header", "dtype", "engine")
_PARQUET_KW = ("label_column", "dtype")
_IDX_KW = ("dtype", "scale")
_IDX_DIR_KW = ("dtype", "scale", "split")
_NPZ_KW = ("dtype", "labels")


def _check_kw(kw: dict, allowed: Sequence[str], what: str) -> None:
    extra = sorted(set(kw) - set(allowed))
    if extra:
        raise TypeError(f"unexpected keyword argument(s) {extra} for {what}; accepted: {list(allowed)}")


# The members scipy.sparse.save_npz writes.
_SPARSE_NPZ = {"data", "indices", "indptr", "format", "shape"}


def _load_npz(p: Path, dtype: Any = np.float32, labels: Any = None) -> tuple[Any, np.ndarray]:
    dt = _check_float_dtype(dtype)
    found: list = []
    X = y = None
    try:
        with np.load(p, allow_pickle=False) as npz:
            found = sorted(npz.files)
            if "X" in found and "y" in found and not _SPARSE_NPZ <= set(found):
                X, y = npz["X"], npz["y"]
            elif "y" in found:
                y = npz["y"]
    except ZIP_ERRORS as exc:
        raise ValueError(f"{p}: not a readable .npz file ({exc})") from None
    for name, a in (("X", X), ("y", y)):
        if a is not None and not isinstance(a, np.ndarray):  # np.load gives a non-.npy member's raw bytes
            raise ValueError(f"{p}: member {name!r} is not a .npy array (it lacks the .npy magic)")
    if _SPARSE_NPZ <= set(found):
        return _load_sparse_npz(p, y, dt, labels)
    if labels is not None:
        raise TypeError(f"{p}: labels= is for a sparse matrix file (scipy.sparse.save_npz); this one holds X and y")
    if X is None or y is None:
        raise ValueError(f"{p}: expected arrays named 'X' and 'y', found {found}")
    if X.ndim < 2:
        raise ValueError(f"{p}: X must have shape (n_samples, n_features, ...), found shape {X.shape}")
    if y.ndim < 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{p}: X has {X.shape[0]} rows but y has shape {y.shape}; expected ({X.shape[0]}, ...)"
        )
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{p}: X must be numeric, found dtype {X.dtype}")
    n = X.shape[0]
    X = X.reshape(n, math.prod(X.shape[1:]))
    _check_finite(X, p)
    X = X.astype(dt)
    if y.dtype.kind in "biu":
        y = y.astype(np.int64)
    return X, y


def _load_sparse_npz(p: Path, y: Any, dt: np.dtype, labels: Any) -> tuple[Any, np.ndarray]:
    """A matrix written by scipy.sparse.save_npz, as CSR of ``dt``, with its labels: ``y``, a member of the same
    archive (None if it has none), or ``labels`` (an array, or a .npy / text file of one label per line)."""
    try:
        import scipy.sparse
    except ImportError:
        raise ValueError(f"{p} holds a sparse matrix: reading it needs scipy (pip install scipy)") from None
    try:
        X = scipy.sparse.load_npz(p).tocsr()
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise ValueError(f"{p}: not a readable sparse matrix file ({exc})") from None
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise ValueError(f"{p}: expected a 2-D numeric sparse matrix, found {X.dtype} of shape {X.shape}")
    if y is not None:
        if labels is not None:
            raise TypeError(f"{p} holds its labels (member 'y'); labels= would be a second set")
    elif labels is None:
        raise ValueError(f"{p} is a sparse matrix file without labels: pass labels= (an array, or a .npy or text "
                         "file with one label per line; `pyfastnn train --labels PATH`)")
    else:
        y = _read_labels(labels)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"{p}: {X.shape[0]} rows but labels of shape {y.shape}; expected ({X.shape[0]},)")
    if not np.all(np.isfinite(X.data)):
        raise ValueError(f"{p}: the matrix contains NaN or infinity")
    if y.dtype.kind in "biu":
        y = y.astype(np.int64)
    return X.astype(dt), y


def _read_labels(labels: Any) -> np.ndarray:
    if not isinstance(labels, (str, os.PathLike)):
        return _as_array(labels, "labels")
    q = _check_path(labels, "labels")
    if not q.is_file():
        raise FileNotFoundError(f"{q}: no such labels file")
    if q.suffix.lower() == ".npy":
        try:
            return np.load(q, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{q}: not a readable .npy file ({exc})") from None
    with open(q, encoding="utf-8") as f:
        values = [line.strip() for line in f.read().split("\n") if line.strip()]
    return np.array([int(v) for v in values]) if all(_is_integer_text(v) for v in values) else np.array(values)


def _is_integer_text(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _idx_stem(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def _pick_idx(cands: Sequence[Path]) -> Sequence[Path]:
    """Per IDX name, keep one file; prefer the uncompressed copy if both exist (gunzip -k leaves both)."""
    by_stem: dict = {}
    for c in sorted(cands):
        stem = _idx_stem(c.name)
        if stem not in by_stem or not c.name.lower().endswith(".gz"):
            by_stem[stem] = c
    return sorted(by_stem.values())


def _load_idx_dir(d: Path, dtype: Any = np.float32, scale: bool = True, split: str | None = None):
    if split is not None and split not in ("train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    files = [f for f in d.iterdir() if f.is_file() and "idx" in f.name.lower()]
    images = _pick_idx([f for f in files if "images" in f.name.lower()])
    labels = _pick_idx([f for f in files if "labels" in f.name.lower()])
    if split is not None:
        prefixes = ("train",) if split == "train" else ("t10k", "test")
        images = [f for f in images if f.name.lower().startswith(prefixes)]
        labels = [f for f in labels if f.name.lower().startswith(prefixes)]
    elif len(images) > 1 or len(labels) > 1:
        # A full MNIST directory holds train-* and t10k-*; the training pair is the natural default.
        train_i = [f for f in images if f.name.lower().startswith("train")]
        train_l = [f for f in labels if f.name.lower().startswith("train")]
        if len(train_i) == 1 and len(train_l) == 1:
            images, labels = train_i, train_l
    if len(images) != 1 or len(labels) != 1:
        rule = "names containing 'images' / 'labels' and 'idx'"
        if split is not None:
            rule += f", starting with {prefixes}"
        raise ValueError(
            f"{d}: expected one IDX images file and one IDX labels file ({rule}), found images "
            f"{[f.name for f in images]} and labels {[f.name for f in labels]}"
        )
    return load_idx_pair(images[0], labels[0], dtype=dtype, scale=scale)


def _labels_sibling(images: Path) -> Path:
    name = images.name
    if "images" not in name:
        raise ValueError(
            f"{images}: an IDX file whose name has no 'images' in it, so its labels file cannot be found; "
            f"call load_idx_pair(images_path, labels_path)"
        )
    stem = _idx_stem(name).replace("images", "labels").replace("idx3", "idx1")
    tried = [images.with_name(stem), images.with_name(stem + ".gz")]
    for t in tried:
        if t.is_file():
            return t
    raise ValueError(f"{images}: no labels file next to it; looked for {[t.name for t in tried]}")


def load_data(path: PathLike, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Load ``(X, y)`` from a file or directory, choosing the format from the path.

    ============================================ ======================================================
    path                                         read as
    ============================================ ======================================================
    ``*.npz``                                    arrays ``X`` (n, ...) and ``y`` (n, ...); ``X`` is
                                                 flattened to (n, features) and cast to ``dtype``;
                                                 integer ``y`` becomes int64. Or a sparse matrix
                                                 written by ``scipy.sparse.save_npz`` (returned as a
                                                 scipy CSR matrix) with a ``y`` member or ``labels``
                                                 (an array or a .npy / text file of one label per
                                                 line). Keywords: ``dtype``, ``labels``.
    ``*.csv``, ``*.tsv``, ``*.txt`` (``.gz`` ok) :func:`load_csv`; ``.tsv`` defaults to a tab delimiter;
                                                 ``.txt`` to the first of ",", tab, whitespace seen on
                                                 its first line. Keywords: ``label_column``,
                                                 ``delimiter``, ``skip_header``, ``dtype``, ``engine``.
    ``*.parquet``, ``*.pq``                      :func:`load_parquet` (needs pyarrow). Keywords:
                                                 ``label_column``, ``dtype``.
    a directory                                  an IDX images/labels pair inside it: the one file whose
                                                 name contains "images" and "idx" and the one with
                                                 "labels" and "idx". In a full MNIST directory
                                                 (train-* and t10k-*) the training pair, or
                                                 ``split="test"`` for t10k-*. Keywords: ``dtype``,
                                                 ``scale``, ``split``.
    any other file in IDX format                 an images file; its labels are the file next to it
                                                 named with "images" -> "labels" and "idx3" -> "idx1"
                                                 (``.gz`` or not). Keywords: ``dtype``, ``scale``.
    ============================================ ======================================================

    For files without one of those extensions the content decides: a zip archive is read as .npz, a
    file starting with a valid IDX header as IDX.

    Parameters
    ----------
    path : str or os.PathLike
    **kw
        Passed to the loader, see the table; others raise TypeError.

    Returns
    -------
    X : ndarray, shape (n_samples, n_features)
    y : ndarray, shape (n_samples,) (or as stored, for .npz)

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ValueError
        If the format cannot be told, or the loader rejects the content.
    TypeError
        For a keyword the chosen loader does not take.
    """
    p = _check_path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or directory")
    if p.is_dir():
        _check_kw(kw, _IDX_DIR_KW, "a directory of IDX files")
        return _load_idx_dir(p, **kw)

    name = _idx_stem(p.name).lower()
    ext = os.path.splitext(name)[1]
    if ext in (".csv", ".tsv", ".txt"):
        _check_kw(kw, _CSV_KW, f"a {ext} file")
        if "delimiter" not in kw:
            if ext == ".csv":
                kw["delimiter"] = ","
            elif ext == ".tsv":
                kw["delimiter"] = "\t"
            else:
                kw["delimiter"] = _sniff_delimiter(p)
        return load_csv(p, **kw)
    if ext == ".npz":
        _check_kw(kw, _NPZ_KW, "a .npz file")
        return _load_npz(p, **kw)
    if ext in (".parquet", ".pq"):
        _check_kw(kw, _PARQUET_KW, f"a {ext} file")
        return load_parquet(p, **kw)

    with open(p, "rb") as f:
        head = f.read(4)
    if head == _ZIP_MAGIC:
        _check_kw(kw, _NPZ_KW, "a .npz file")
        return _load_npz(p, **kw)
    if head[:2] == _GZIP_MAGIC:
        with gzip.open(p, "rb") as f:
            try:
                head = f.read(4)
            except (OSError, EOFError, zlib.error) as exc:
                raise ValueError(
                    f"{p}: the file starts like gzip but cannot be decompressed ({exc})"
                ) from None
    if len(head) == 4 and head[:2] == b"\0\0" and head[2] in _IDX_TYPES and head[3] >= 1:
        _check_kw(kw, _IDX_KW, "an IDX file")
        return load_idx_pair(p, _labels_sibling(p), **kw)
    raise ValueError(
        f"{p}: cannot tell the format; expected a .npz, .csv, .tsv, .txt or .parquet file, an IDX images "
        f"file, "
        f"or a directory holding an IDX images/labels pair"
    )


def _sniff_delimiter(p: Path) -> str | None:
    # The start of the file only, up to the end of its first non-blank line.
    raw = b""
    try:
        with _open_regular(p) as f:
            gzipped = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f, mode="rb") if gzipped else f
            while True:
                more = stream.read(1 << 16)
                raw += more
                lines = raw.decode("utf-8-sig", errors="replace").splitlines()
                if not more or any(line.strip() for line in lines[:-1]):  # the last may be cut short
                    break
    except (ValueError, OSError, EOFError, zlib.error):
        return ","  # let load_csv report the problem
    for line in lines:
        if line.strip():
            if "," in line:
                return ","
            if "\t" in line:
                return "\t"
            return None
    return ","


# --------------------------------------------------------------------------------------------------------
# train_test_split
# --------------------------------------------------------------------------------------------------------


def _rng(seed: Any) -> np.random.Generator:
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be None, a non-negative int or a numpy Generator, got {seed!r}")


def _stratified_counts(counts: np.ndarray, n_test: int) -> np.ndarray:
    """Test-side count per class: proportional (largest remainder), then each class with at least two
    samples moved to have at least one on each side while that is possible."""
    n = counts.sum()
    q = counts * (n_test / n)
    t = np.floor(q).astype(np.int64)
    rest = n_test - int(t.sum())
    if rest > 0:
        order = np.argsort(-(q - t), kind="stable")
        t[order[:rest]] += 1
    lo = np.where(counts >= 2, 1, 0)
    hi = np.where(counts >= 2, counts - 1, counts)
    for _ in range(2 * len(counts) + 2):
        short = np.flatnonzero(t < lo)
        over = np.flatnonzero(t > hi)
        if short.size:
            k = short[0]
            donors = np.flatnonzero(t > lo)
            donors = donors[donors != k]
            if donors.size == 0:
                break
            j = donors[np.argmax((t - q)[donors])]
            t[k] += 1
            t[j] -= 1
        elif over.size:
            k = over[0]
            takers = np.flatnonzero(t < hi)
            takers = takers[takers != k]
            if takers.size == 0:
                break
            j = takers[np.argmin((t - q)[takers])]
            t[k] -= 1
            t[j] += 1
        else:
            break
    return t


def train_test_split(
    X: Any,
    y: Any,
    test_size: float = 0.2,
    stratify: bool | str = "auto",
    seed: Any = None,
    shuffle: bool = True,
    *,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split samples into a training and a test part.

    Parameters
    ----------
    X : array_like, shape (n_samples, ...), or a scipy.sparse matrix (split as CSR)
    y : array_like, shape (n_samples,) or (n_samples, n_outputs)
    test_size : float in (0, 1) or int, default 0.2
        Fraction of the samples for the test part (rounded up), or their number.
    stratify : bool or "auto", default "auto"
        Keep the class proportions in both parts: each class gets its proportional share of the test
        part (within one sample), and a class with at least two samples gets at least one sample on each
        side while the sizes allow it (this rule wins when a tiny test part cannot satisfy both).
        "auto" stratifies when ``y`` is 1-D with an integer dtype and ``shuffle`` is True; True
        requires 1-D class labels (integers, integer-valued floats or strings) and ``shuffle=True``.
    seed : None, int or numpy.random.Generator, default None
        Seed for ``np.random.default_rng``; the same seed gives the same split.
    shuffle : bool, default True
        False keeps the order: the first samples train, the last ``test_size`` test.
    random_state : None, int or numpy.random.Generator, default None
        scikit-learn's name for ``seed`` (give one or the other).

    Returns
    -------
    X_train : ndarray, shape (n_train, ...)
    X_test : ndarray, shape (n_test, ...)
    y_train : ndarray, shape (n_train, ...)
    y_test : ndarray, shape (n_test, ...)

    Raises
    ------
    ValueError
        Lengths differ, ``test_size`` out of range or leaving a part empty, stratification asked for
        labels that are not classes.
    """
    if random_state is not None:
        if seed is not None:
            raise ValueError("give seed or random_state (the same thing under scikit-learn's name), not both")
        seed = random_state
    X = X.tocsr() if is_sparse(X) else _as_array(X, "X")  # sparse rows are picked by index, as arrays' are
    y = _as_array(y, "y")
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(f"X and y must have a first (samples) dimension, got shapes {X.shape} and {y.shape}")
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"X and y must have the same number of samples, got {n} and {y.shape[0]}")
    shuffle = _check_bool(shuffle, "shuffle")
    if not (isinstance(stratify, (bool, np.bool_)) or stratify == "auto"):
        raise ValueError(f"stratify must be True, False or 'auto', got {stratify!r}")

    if isinstance(test_size, (bool, np.bool_)):
        raise TypeError(f"test_size must be a float in (0, 1) or an int count, got {test_size!r}")
    if isinstance(test_size, numbers.Integral):
        n_test = int(test_size)
        if not 1 <= n_test <= n - 1:
            raise ValueError(
                f"test_size={n_test} must leave both parts non-empty: expected 1 <= test_size <= {n - 1} "
                f"for {n} samples"
            )
    elif isinstance(test_size, numbers.Real):
        ts = float(test_size)
        if not 0.0 < ts < 1.0:
            raise ValueError(f"test_size as a fraction must be in (0, 1), got {test_size!r}")
        n_test = math.ceil(ts * n - 1e-9)
        if not 1 <= n_test <= n - 1:
            raise ValueError(
                f"test_size={ts} of {n} samples gives {n_test} test and {n - n_test} training samples; "
                f"both parts must be non-empty"
            )
    else:
        raise TypeError(f"test_size must be a float in (0, 1) or an int count, got {test_size!r}")

    if stratify == "auto":
        do_strat = shuffle and y.ndim == 1 and y.dtype.kind in "biu"
    elif stratify:
        if not shuffle:
            raise ValueError("stratify=True needs shuffle=True (an unshuffled split keeps the file order)")
        if y.ndim != 1:
            raise ValueError(f"stratify=True needs 1-D class labels, got y of shape {y.shape}")
        if y.dtype.kind == "f":
            i = _first_non_integer(y)
            if i is not None:
                raise ValueError(
                    f"stratify=True needs class labels, but y[{i}] = {_fmt(y[i])} is not an integer; "
                    f"pass stratify=False for continuous targets"
                )
        elif y.dtype.kind not in "biuUS":
            raise ValueError(f"stratify=True needs integer or string class labels, got y of dtype {y.dtype}")
        do_strat = True
    else:
        do_strat = False

    if not shuffle:
        train_idx, test_idx = np.arange(n - n_test), np.arange(n - n_test, n)
    else:
        rng = _rng(seed)
        if do_strat:
            _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
            t = _stratified_counts(counts, n_test)
            # Sample indices grouped by class: one sort instead of a scan of y per class.
            by_class = np.split(np.argsort(inverse.reshape(-1), kind="stable"), np.cumsum(counts)[:-1])
            test_parts, train_parts = [], []
            for members, t_k in zip(by_class, t):
                members = rng.permutation(members)
                test_parts.append(members[:t_k])
                train_parts.append(members[t_k:])
            test_idx = rng.permutation(np.concatenate(test_parts))
            train_idx = rng.permutation(np.concatenate(train_parts))
        else:
            perm = rng.permutation(n)
            test_idx, train_idx = perm[:n_test], perm[n_test:]
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


# --------------------------------------------------------------------------------------------------------
# one_hot
# --------------------------------------------------------------------------------------------------------


def one_hot(y: Any, num_classes: int | None = None, dtype: Any = np.float32) -> np.ndarray:
    """Turn integer class labels into one-hot rows.

    Parameters
    ----------
    y : array_like, shape (n_samples,)
        Labels 0..num_classes-1, integers or integer-valued floats.
    num_classes : int, optional
        Number of columns; default ``max(y) + 1``.
    dtype : numpy numeric dtype, default np.float32

    Returns
    -------
    ndarray, shape (n_samples, num_classes)
        Row i has a 1 in column ``y[i]`` and 0 elsewhere.

    Raises
    ------
    ValueError
        ``y`` not 1-D, a label negative, not an integer or not below ``num_classes`` (the message gives
        the index and the value), or ``num_classes`` not positive.
    TypeError
        ``y`` not numeric, ``num_classes`` not an int.
    """
    dt = _check_numeric_dtype(dtype)
    y = _as_array(y, "y")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D integer labels of shape (n_samples,), got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise TypeError(f"y must hold integer labels, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        i = _first_non_integer(y)
        if i is not None:
            raise ValueError(f"y must hold integer labels, but y[{i}] = {_fmt(y[i])} is not an integer")
    if y.dtype.kind in "if":
        neg = y < 0
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise ValueError(f"labels must be non-negative, but y[{i}] = {_fmt(y[i])}")
    labels = y.astype(np.int64)
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("cannot infer num_classes from an empty y; pass num_classes")
        k = int(labels.max()) + 1
    else:
        if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, (bool, np.bool_)):
            raise TypeError(f"num_classes must be a positive int or None, got {num_classes!r}")
        k = int(num_classes)
        if k < 1:
            raise ValueError(f"num_classes must be a positive int, got {k}")
        if labels.size:
            over = labels >= k
            if over.any():
                i = int(np.flatnonzero(over)[0])
                raise ValueError(f"labels must be below num_classes={k}, but y[{i}] = {_fmt(y[i])}")
    out = np.zeros((labels.size, k), dtype=dt)
    out[np.arange(labels.size), labels] = 1
    return out


# --------------------------------------------------------------------------------------------------------
# text: the bundled review sentences and a user's own file of texts and labels
# --------------------------------------------------------------------------------------------------------

_SENTIMENT_RESOURCE = "data/sentiment.npz"
_SENTIMENT_SHA256 = {
    "amazon_cells": "47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3",
    "imdb": "aef2e49e3da25714d61175e3a6e68eeef74a20a2f914318dc3be9947ea86512d",
    "yelp": "891088b9c7235e23fe2814285972f2df823fdc9ff37bf1e1904c7e8ae1001fbb",
}


def _sentiment_bytes() -> tuple[bytes, str]:
    """Raw bytes of the bundled sentiment.npz and a name for error messages."""
    return _bundled_bytes(_SENTIMENT_RESOURCE)


def load_sentiment() -> tuple[list, np.ndarray, np.ndarray]:
    """Load the bundled review sentences labelled by sentiment.

    The UCI "Sentiment Labelled Sentences" data set (D. Kotzias, M. Denil, N. de Freitas, P. Smyth, KDD 2015;
    CC BY 4.0, see ``pyfastnn/data/SENTIMENT_LICENSE.txt``): 3000 sentences from product (amazon_cells), movie
    (imdb) and restaurant (yelp) reviews, 1000 per source, 500 positive and 500 negative each.

    Returns
    -------
    texts : list of str, length 3000
        The sentences as distributed (trailing spaces kept), source by source in file order.
    y : ndarray of int64, shape (3000,)
        1 for positive, 0 for negative.
    source : ndarray of str, shape (3000,)
        "amazon_cells", "imdb" or "yelp" for each sentence.

    Raises
    ------
    ValueError
        If the bundled file is damaged (missing arrays or a checksum mismatch).
    """
    raw, resource = _sentiment_bytes()
    hint = "the installation is damaged; reinstall pyfastnn"
    texts: list = []
    labels: list = []
    sources: list = []
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            blobs = {name: npz[name].tobytes() for name in npz.files}
    except ZIP_ERRORS as exc:
        raise ValueError(f"{resource}: not a readable .npz file ({exc}); {hint}") from None
    if sorted(blobs) != sorted(_SENTIMENT_SHA256):
        raise ValueError(
            f"{resource}: expected arrays {sorted(_SENTIMENT_SHA256)}, found {sorted(blobs)}; {hint}"
        )
    for name in _SENTIMENT_SHA256:
        blob = blobs[name]
        digest = hashlib.sha256(blob).hexdigest()
        if digest != _SENTIMENT_SHA256[name]:
            raise ValueError(f"{resource}: {name} corrupted (sha256 {digest}); {hint}")
        # "\n" only: two imdb sentences hold U+0085 (NEL), a line break to str.splitlines().
        for line in blob.decode("utf-8").split("\n"):
            if line:
                sentence, label = line.rsplit("\t", 1)
                texts.append(sentence)
                labels.append(int(label))
                sources.append(name)
    return texts, np.array(labels, dtype=np.int64), np.array(sources)


def _text_rows(text: str, delimiter: str, quotechar: str | None):
    """Yield (line_number, cells) for every record that is not blank; line numbers are 1-based."""
    if quotechar is None:
        # What csv.reader(..., quoting=QUOTE_NONE) yields, without its state machine per character (faster on
        # large files): records end at "\r\n", "\r" or "\n", cells are split at the delimiter, and an empty
        # line or a single blank cell is skipped. Lazily, so the first record costs no pass over the text.
        for number, line in _lines(text):
            cells = line.split(delimiter)
            if line and not (len(cells) == 1 and not line.strip()):
                yield number, cells
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar)
    try:
        for cells in reader:
            if cells and not (len(cells) == 1 and not cells[0].strip()):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _lines(text: str):
    """Yield (line number, line) of ``text`` split at "\\r\\n", "\\r" and "\\n", lazily."""
    number, start = 1, 0
    for brk in _LINE_BREAK.finditer(text):
        yield number, text[start:brk.start()]
        number, start = number + 1, brk.end()
    yield number, text[start:]


def _raise_bad_columns(p: Path, line: int, columns: int, ncols: int, first_line: int, quotechar: str | None):
    """The error for a record (at ``line``; 0 for none) with another number of columns than the first."""
    if line:
        raise ValueError(
            f"{p}: line {line} has {columns} columns, expected {ncols} like line {first_line}"
            + ("" if quotechar is None else f" (an unbalanced {quotechar} quote? pass quotechar=None)")
        )


def _column_index(column: Any, name: str, header: list | None, ncols: int, where: Any) -> int:
    if isinstance(column, str):
        if header is None:
            raise ValueError(f"{name}={column!r} is a header name, but the file is read without a header")
        matches = [i for i, cell in enumerate(header) if cell.strip() == column.strip()]
        if len(matches) != 1:
            shown = header if len(header) <= 20 else header[:20] + ["..."]
            what = "is not" if not matches else f"appears {len(matches)} times"
            raise ValueError(f"{where}: {name} {column!r} {what} in the header: {shown}")
        return matches[0]
    if not -ncols <= column < ncols:
        raise ValueError(f"{where}: {name}={column} is out of range for {ncols} columns")
    return int(column) % ncols


def load_text(
    path: PathLike,
    text_column: int | str = 0,
    label_column: int | str = -1,
    delimiter: str | None = None,
    skip_header: bool | str = "auto",
    quotechar: str | None = "auto",
    return_classes: bool = False,
):
    """Read a delimited file (CSV, TSV) with one text and one label per line.

    Blank lines are skipped. Records are split by the ``csv`` module: only "\\n", "\\r" and "\\r\\n" end a
    line (not other Unicode line breaks a text may hold); quoted fields may hold delimiters and line breaks.
    A gzipped file is recognised by its content. Line numbers in error messages count physical lines from 1.

    Parameters
    ----------
    path : str or os.PathLike
        The file (UTF-8; a byte-order mark is ignored).
    text_column, label_column : int or str, default 0 and -1
        The columns holding the texts and the labels: indices (negative count from the end) or header names
        (which need a header line).
    delimiter : str or None, default None
        A single character; None takes a tab for ``*.tsv`` files, a comma for ``*.csv`` files, and otherwise a
        tab if the first line has one, else a comma.
    skip_header : bool or "auto", default "auto"
        Whether the first record is a header. "auto" takes it as one when a column is named, or when its label
        is not a number but every other label is (pass True for a header over text labels).
    quotechar : str or None or "auto", default "auto"
        The quote character, or None for no quoting (a quote is then an ordinary character). "auto" is '"' for
        comma-separated files and None otherwise: tab-separated text such as the UCI review sentences holds
        unbalanced quotes that are part of the text.
    return_classes : bool, default False
        Also return the class names (see Returns).

    Returns
    -------
    texts : list of str, length n_samples
        The text cells, unchanged.
    y : ndarray, shape (n_samples,)
        int64 when every label is an integer; float32 when the labels are numbers but not all integers; int64
        codes 0..k-1 when any label is not a number, the codes numbering the distinct labels in sorted order.
    classes : ndarray of str, shape (k,), or None
        Only with ``return_classes=True``: ``classes[y[i]]`` is the label of sample i, or None when the labels
        are numbers.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Empty file, a record with another number of columns than the first, an empty label, a column outside
        the record or not in the header, text that is not UTF-8; the message gives the line number.
    TypeError
        For arguments of the wrong type.
    """
    p = _check_path(path)
    for name, column in (("text_column", text_column), ("label_column", label_column)):
        if not isinstance(column, (numbers.Integral, str)) or isinstance(column, (bool, np.bool_)):
            raise TypeError(f"{name} must be a column index (int) or a header name (str), got {column!r}")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1
                                  or delimiter in "\r\n"):
        raise ValueError(
            f"delimiter must be one character other than a line break, or None, got {delimiter!r}"
        )
    if not (isinstance(skip_header, (bool, np.bool_)) or skip_header == "auto"):
        raise ValueError(f"skip_header must be True, False or 'auto', got {skip_header!r}")
    if quotechar != "auto" and quotechar is not None and (
        not isinstance(quotechar, str) or len(quotechar) != 1 or quotechar in "\r\n" or quotechar == delimiter
    ):
        raise ValueError(
            f"quotechar must be one character other than a line break and the delimiter, None or 'auto', "
            f"got {quotechar!r}"
        )
    return_classes = _check_bool(return_classes, "return_classes")
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")

    raw = _read_maybe_gzipped(p)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p}: not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    del raw
    if delimiter is None:
        ext = os.path.splitext(_idx_stem(p.name).lower())[1]
        first = next((line for _, line in _lines(text) if line.strip()), "")
        delimiter = "\t" if ext == ".tsv" or (ext != ".csv" and "\t" in first) else ","
    if quotechar == "auto":
        quotechar = '"' if delimiter == "," else None
    elif quotechar == delimiter:
        raise ValueError(f"quotechar {quotechar!r} is also the delimiter")

    if quotechar is None:
        rows = None
        first_line, first = next(_text_rows(text, delimiter, None), (0, None))
    else:
        try:
            rows = list(_text_rows(text, delimiter, quotechar))
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
        first_line, first = rows[0] if rows else (0, None)
    if first is None:
        raise ValueError(f"{p}: the file has no data (it is empty or blank)")
    ncols = len(first)
    if ncols < 2:
        raise ValueError(
            f"{p}: line {first_line} has 1 column, expected at least 2 (a text and a label); "
            f"is the delimiter {delimiter!r} right?"
        )
    bad_line = bad_columns = 0
    for lineno, cells in rows or ():
        if len(cells) != ncols:
            bad_line, bad_columns = lineno, len(cells)
            break
    if rows is not None:
        _raise_bad_columns(p, bad_line, bad_columns, ncols, first_line, quotechar)

    named = isinstance(text_column, str) or isinstance(label_column, str)
    if named and skip_header is False:
        raise ValueError("a column given by name needs a header line, but skip_header=False")
    header = first if named or skip_header is True or skip_header is np.True_ else None
    tcol = _column_index(text_column, "text_column", header, ncols, p)
    lcol = _column_index(label_column, "label_column", header, ncols, p)
    if tcol == lcol:
        raise ValueError(f"{p}: text_column and label_column are the same column ({tcol})")
    if rows is None:
        # Only the two columns are made into strings, in one pass over the text (compiled when the text
        # extension is built).
        from .text.vectorizers import _kernels

        texts, labels, lines, bad_line, bad_columns = _kernels().text_columns(text, delimiter, ncols, tcol, lcol)
        _raise_bad_columns(p, bad_line, bad_columns, ncols, first_line, quotechar)
    else:
        texts = [cells[tcol] for _, cells in rows]
        labels = [cells[lcol] for _, cells in rows]
        lines = [lineno for lineno, _ in rows]
    del text, rows
    labels = [label.strip() for label in labels]
    if header is None and skip_header == "auto":
        # A header over numeric labels: a first label that is not a number above labels that all are.
        if len(labels) > 1 and not _is_number(labels[0]) and all(_is_number(label) for label in labels[1:]):
            header = first
    if header is not None:
        texts, labels, lines = texts[1:], labels[1:], lines[1:]
        if not texts:
            raise ValueError(f"{p}: the file has a header line but no data lines")

    keys: dict = {}
    # setdefault numbers the distinct labels in order of first appearance.
    codes = np.fromiter([keys.setdefault(label, len(keys)) for label in labels], dtype=np.int64,
                        count=len(labels))
    if "" in keys:
        raise ValueError(f"{p}: line {lines[labels.index('')]}, column {lcol + 1}: the label is empty")
    names = list(keys)
    if not _numeric_labels_finite(names):
        bad = next(k for k in names if not math.isfinite(float(k)))
        raise ValueError(f"{p}: expected finite labels, found {bad!r}")
    y, classes = _labels_from_keys(names, codes, np.dtype(np.float32))
    if return_classes:
        return texts, y, classes
    return texts, y
