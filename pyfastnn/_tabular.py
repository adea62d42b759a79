"""The readers behind pyfastnn.datasets.load_csv and load_parquet.

A CSV body (the file after its header line) is read by one of three engines, pyarrow, pandas or NumPy, into
``(X, keys, codes)``: ``X`` of shape (n_samples, n_columns - 1) in the requested dtype (each cell parsed as a
float64, as Python's ``float`` does, then cast), ``keys`` the distinct label strings (stripped) and ``codes``
of shape (n_samples,) each sample's index into ``keys``. An engine answers only for a plain file: unquoted,
every row as long as the header, every feature a finite number, every label non-empty. For anything else it
returns None and load_csv's cell-by-cell parser reads the file and names the problem, so that all engines give
the same arrays and the same errors.

The engines read the body in blocks into one growing output (``_Rows``): the peak memory is about the output
plus a block, not a table of Python objects or a float64 copy of the whole file.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np

ENGINES = ("auto", "pyarrow", "pandas", "numpy")
IO_EXTRA = 'pip install "pyfastnn[io]"'

_BLOCK = 1 << 22  # bytes of text per block for the NumPy engine (pyarrow's reader keeps its 1 MiB default)
_FRAME = 1 << 24  # bytes of float64 per pandas chunk

# What str.splitlines() also ends a line at, besides "\r" and "\n": the whitespace-delimited parser splits
# lines with it, the engines do not, so such a file goes to that parser.
_OTHER_LINE_ENDS = ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


# What engine="auto" takes instead of the first engine installed, when set (the tests run every CSV test on
# each engine through it: tests/conftest.py, PYFASTNN_TEST_CSV_ENGINE).
auto_engine: str | None = None


class EngineUnavailable(ImportError):
    pass


def have(engine: str) -> bool:
    """Whether ``engine`` ("pyarrow", "pandas", "numpy") can be imported here."""
    if engine == "numpy":
        return True
    try:
        __import__("pyarrow.csv" if engine == "pyarrow" else engine)
    except ImportError:
        return False
    return True


def pick(engine: str, delimiter: str | None) -> str:
    """The engine that reads: the one asked for, or for "auto" the first of pyarrow, pandas, numpy installed.

    pyarrow cannot split at runs of whitespace: with ``delimiter=None`` it hands over to pandas or NumPy.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine in ("pyarrow", "pandas") and not have(engine):
        extra = IO_EXTRA if engine == "pyarrow" else "pip install pandas"
        raise EngineUnavailable(f"engine={engine!r} needs {engine}, which is not installed ({extra})")
    if engine == "auto" and auto_engine is not None:
        engine = pick(auto_engine, delimiter)
    elif engine == "auto":
        engine = next(e for e in ("pyarrow", "pandas", "numpy") if have(e))
    if engine == "pyarrow" and delimiter is None:
        engine = "pandas" if have("pandas") else "numpy"
    return engine


class _Rows:
    """The output: feature rows of ``dtype`` and label codes, grown in place, trimmed at the end.

    ``ndarray.resize`` reallocates; for arrays this large the C library moves pages (mremap) instead of
    copying, so growing costs neither a copy nor a second array at the peak. Pages never written cost no
    memory either, so a capacity above the final row count is cheap.
    """

    def __init__(self, n_features: int, dtype: np.dtype, capacity: int = 1024):
        self.X = np.empty((capacity, n_features), dtype)
        self.codes = np.empty(capacity, np.int64)
        self.n = 0

    def take(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of the next ``k`` rows of X and codes, for the caller to fill."""
        need = self.n + k
        if need > len(self.codes):
            cap = max(need, len(self.codes) * 3 // 2)
            # No view of X or codes outlives a take(), so nothing refers to the memory being moved.
            self.X.resize((cap, self.X.shape[1]), refcheck=False)
            self.codes.resize(cap, refcheck=False)
        start, self.n = self.n, need
        return self.X[start:need], self.codes[start:need]

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self.X.resize((self.n, self.X.shape[1]), refcheck=False)
        self.codes.resize(self.n, refcheck=False)
        return self.X, self.codes


class _Labels:
    """The distinct raw label strings seen so far, numbered in order of appearance."""

    def __init__(self) -> None:
        self.index: dict = {}

    def code(self, cell: str) -> int:
        code = self.index.get(cell)
        if code is None:
            code = self.index[cell] = len(self.index)
        return code

    def codes_of(self, values: list) -> np.ndarray:
        """The codes of a block's distinct values (each must be a str)."""
        if not all(isinstance(v, str) for v in values):
            raise ValueError("a label cell is missing")
        return np.array([self.code(v) for v in values], dtype=np.int64)

    def finish(self, codes: np.ndarray) -> tuple[list, np.ndarray] | None:
        """(keys, codes) with the labels stripped as the cell-by-cell parser strips them (so " a" and "a" are
        one class), or None if a label is empty or quoted (that parser unquotes it), or if they are all
        numbers but not all finite (that parser says where)."""
        keys: dict = {}
        remap = np.empty(len(self.index), np.int64)
        for raw, i in self.index.items():
            cell = raw.strip()
            if not cell or '"' in cell:
                return None
            remap[i] = keys.setdefault(cell, len(keys))
        try:
            values = np.array(list(keys), dtype=np.float64)
        except ValueError:
            values = None  # some label is not a number: the labels are class names
        if values is not None and not np.isfinite(values).all():
            return None
        return list(keys), remap[codes]


def read_csv_body(engine: str, stream: Any, delimiter: str | None, ncols: int, lab: int, dtype: np.dtype,
                  threads: int, size: int | None = None, line_bytes: float = 0.0
                  ) -> tuple[np.ndarray, list, np.ndarray] | None:
    """Read the rest of the binary ``stream`` (the rows of the file after its header) with ``engine``.

    Returns ``(X, keys, codes)`` as described in the module docstring, or None when the engine fails, a row
    has other than ``ncols`` cells, a feature is not a finite number or a label is empty or quoted. ``size``,
    the bytes left in the stream when known, and ``line_bytes``, the mean length of the first lines, size the
    output for the rows expected, at most for the most rows ``size`` can hold (a row that reads holds
    ``ncols`` non-empty cells, ``ncols - 1`` delimiters and a line end).
    """
    capacity = 1024
    if size is not None:
        expected = size / line_bytes * 1.1 + 1024 if line_bytes > 0 else math.inf
        capacity = int(min(size // (2 * ncols) + 1, expected))
    out = _Rows(ncols - 1, dtype, capacity)
    labels = _Labels()
    readers: dict[str, Callable[..., bool]] = {
        "pyarrow": _arrow_blocks, "pandas": _pandas_blocks, "numpy": _numpy_blocks}
    reader = readers[engine]
    errors: tuple = (ValueError, TypeError, IndexError, KeyError, OverflowError, UnicodeDecodeError)
    if engine == "pandas":
        import pandas as pd

        errors += (pd.errors.ParserWarning,)
    if engine == "pyarrow":
        import pyarrow as pa

        errors += (pa.ArrowException,)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a value beyond dtype's range is caught below
            if not reader(stream, delimiter, ncols, lab, out, labels, threads):
                return None
    except errors:
        return None
    if out.n == 0:
        return None
    X, codes = out.finish()
    if not np.isfinite(X).all():  # after the cast: a number beyond float32's range is left to the parser too
        return None
    finished = labels.finish(codes)
    if finished is None:
        return None
    keys, codes = finished
    return X, keys, codes


def _put(out: _Rows, columns: Iterator, k: int, lab: int, codes: np.ndarray) -> None:
    """Copy one block (its ``ncols`` columns, the label's skipped) into the next ``k`` rows of ``out``."""
    X, c = out.take(k)
    j = 0
    for i, column in enumerate(columns):
        if i != lab:
            X[:, j] = column
            j += 1
    c[:] = codes


def _arrow_blocks(stream, delimiter, ncols, lab, out, labels, threads) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    names = [f"f{i}" for i in range(ncols)]
    types = {name: (pa.string() if i == lab else pa.float64()) for i, name in enumerate(names)}
    read = pacsv.ReadOptions(use_threads=threads > 1, column_names=names)
    # Quotes are plain characters here: a quoted cell is then no number, or a label with a quote in it,
    # and the file goes to the parser that unquotes.
    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=False, double_quote=False, escape_char=False,
                               newlines_in_values=False, ignore_empty_lines=True)
    convert = pacsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                   quoted_strings_can_be_null=False, check_utf8=True)
    before = pa.cpu_count()
    if threads > 1 and threads != before:
        pa.set_cpu_count(threads)  # pyarrow's pool is process-wide: set for this read, restored after it
    try:
        for batch in pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert):
            if batch.num_columns != ncols:
                return False
            encoded = pc.dictionary_encode(batch.column(lab))
            codes = labels.codes_of(encoded.dictionary.to_pylist())[encoded.indices.to_numpy()]
            columns = (None if i == lab else batch.column(i).to_numpy() for i in range(ncols))
            _put(out, columns, batch.num_rows, lab, codes)
    finally:
        if pa.cpu_count() != before:
            pa.set_cpu_count(before)
    return True


def _pandas_blocks(stream, delimiter, ncols, lab, out, labels, threads) -> bool:
    import pandas as pd

    dtypes = {i: (object if i == lab else np.float64) for i in range(ncols)}
    with warnings.catch_warnings():
        # pandas warns, and drops cells, where a row is longer than the first: that is a ragged file.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        chunks = pd.read_csv(
            stream, header=None, index_col=False, dtype=dtypes, engine="c",
            sep=r"\s+" if delimiter is None else delimiter, quoting=csv.QUOTE_NONE, na_filter=False,
            skip_blank_lines=True, encoding="utf-8", encoding_errors="strict",
            chunksize=max(_FRAME // (8 * ncols), 1),
        )
        with chunks:
            for frame in chunks:
                if frame.shape[1] != ncols:
                    return False
                codes, uniques = pd.factorize(frame[lab], use_na_sentinel=False)
                codes = labels.codes_of(list(uniques))[codes]
                _put(out, (frame[i].to_numpy() if i != lab else None for i in range(ncols)), len(frame), lab,
                     codes)
    return True


def _numpy_blocks(stream, delimiter, ncols, lab, out, labels, threads) -> bool:
    def label_code(cell: str) -> float:
        return float(labels.code(cell))

    carry = b""
    while True:
        raw = stream.read(_BLOCK)
        block = carry + raw
        if raw:
            end = block.rfind(b"\n") + 1
            if end == 0:
                carry = block
                continue
            block, carry = block[:end], block[end:]
        text = block.decode("utf-8")
        if "\r" in text and text.count("\r") != text.count("\r\n"):
            return False  # a lone "\r" ends a record for csv; leave that to its parser
        if delimiter is None and any(c in text for c in _OTHER_LINE_ENDS):
            return False
        if text.strip():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data": a block of blank lines
                # Lines split at "\n" only, as csv splits records (str.splitlines would split at more).
                lines = text.replace("\r\n", "\n").split("\n")
                A = np.loadtxt(lines, delimiter=delimiter, comments=None, dtype=np.float64, ndmin=2,
                               converters={lab: label_code}, quotechar=None)
            if A.shape[0]:
                if A.shape[1] != ncols:
                    return False
                X, codes = out.take(A.shape[0])
                X[:, :lab] = A[:, :lab]
                X[:, lab:] = A[:, lab + 1 :]
                codes[:] = A[:, lab]
        if not raw:
            return True



def read_parquet(path: Any, label_column: int | str, dtype: np.dtype, threads: int = 1):
    """``(X, keys, codes, values)`` of a Parquet file: the label column as the distinct strings and each
    sample's index into them when it holds strings (``values`` None), else as its numbers (``keys``, ``codes``
    None). ValueError naming the column for what cannot be features or labels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
    with f:
        names = f.schema_arrow.names
        types = f.schema_arrow.types
        ncols = len(names)
        if ncols < 2:
            raise ValueError(
                f"{path}: the file has {ncols} column, expected at least 2 (features and a label)")
        if isinstance(label_column, str):
            matches = [i for i, name in enumerate(names) if name == label_column]
            if len(matches) != 1:
                shown = names if ncols <= 20 else names[:20] + ["..."]
                what = "is not a column" if not matches else f"names {len(matches)} columns"
                raise ValueError(f"{path}: label_column {label_column!r} {what} of the file: {shown}")
            lab = matches[0]
        else:
            lab = int(label_column)
            if not -ncols <= lab < ncols:
                raise ValueError(f"{path}: label_column={lab} is out of range for {ncols} columns")
            lab %= ncols

        def numeric(t: Any) -> bool:
            return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))

        def text(t: Any) -> bool:
            if pa.types.is_dictionary(t):
                t = t.value_type
            return bool(pa.types.is_string(t) or pa.types.is_large_string(t))

        for i, t in enumerate(types):
            if i != lab and not numeric(t):
                raise ValueError(f"{path}: column {names[i]!r} is not numeric ({t}); every column but the "
                                 "label must hold numbers")
        if not (numeric(types[lab]) or text(types[lab])):
            raise ValueError(f"{path}: the label column {names[lab]!r} holds {types[lab]}; expected numbers "
                             "or strings")
        out = _Rows(ncols - 1, dtype, max(f.metadata.num_rows, 1))
        labels = _Labels()
        values = []
        for batch in f.iter_batches(batch_size=1 << 16, use_threads=threads > 1):
            for i in range(ncols):
                column = batch.column(i)
                if column.null_count:
                    row = out.n + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
                    raise ValueError(f"{path}: column {names[i]!r} has a missing value at row {row}")
            label = batch.column(lab)
            if numeric(types[lab]):
                values.append(label.to_numpy(zero_copy_only=False))
                codes = np.zeros(batch.num_rows, np.int64)
            else:
                if pa.types.is_dictionary(label.type):
                    label = label.dictionary_decode()
                encoded = label.dictionary_encode()
                codes = labels.codes_of(encoded.dictionary.to_pylist())[encoded.indices.to_numpy()]
            columns = (None if i == lab else batch.column(i).to_numpy(zero_copy_only=False)
                       for i in range(ncols))
            _put(out, columns, batch.num_rows, lab, codes)
        X, codes = out.finish()
    if numeric(types[lab]):
        return X, None, None, np.concatenate(values) if values else np.zeros(0)
    return X, list(labels.index), codes, None
