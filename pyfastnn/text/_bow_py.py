"""Pure-Python text kernels: the contract of the compiled ``pyfastnn.text._bow`` (same names, same results),
and the general path for any analyzer.

Used when the Cython extension is not built, and always for a custom ``token_pattern``, ``tokenizer``,
``preprocessor`` or ``analyzer``. The default analyzer here is scikit-learn's: ``str.lower()``, then
``re.findall(r"(?u)\\b\\w\\w+\\b")``, stop words removed, then word n-grams joined by one space.

Every count function returns ``indptr`` (int64), ``indices`` (int32) and ``counts`` (int64) of a canonical CSR
matrix: column indices sorted within each row, no duplicates.
"""

import re

import numpy as np

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_default_tokenize = re.compile(DEFAULT_TOKEN_PATTERN).findall


# ----------------------------------------------------------------------------------------------------------
# MurmurHash3_x86_32, from the public description of the algorithm.

_C1, _C2, _M32 = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF


def _rotl32(x, r):
    return ((x << r) | (x >> (32 - r))) & _M32


def murmurhash3_32(key, seed=0):
    """Signed 32-bit MurmurHash3 (x86_32) of ``key``: a ``str`` (hashed as UTF-8) or ``bytes``."""
    if isinstance(key, str):
        data = key.encode("utf-8")
    elif isinstance(key, bytes):
        data = key
    else:
        raise TypeError(f"key must be str or bytes, got {type(key).__name__}")
    h = seed & _M32
    n = len(data)
    end = n - (n & 3)
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = _rotl32((k * _C1) & _M32, 15)
        h ^= (k * _C2) & _M32
        h = (_rotl32(h, 13) * 5 + 0xE6546B64) & _M32
    if n & 3:
        k = int.from_bytes(data[end:], "little")
        k = _rotl32((k * _C1) & _M32, 15)
        h ^= (k * _C2) & _M32
    h ^= n & _M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h - (1 << 32) if h >= 1 << 31 else h


def hash_column(h, n_features):
    """|h| mod n_features for a signed 32-bit h (|-2**31| is 2**31, as in scikit-learn)."""
    return abs(h) % n_features


# ----------------------------------------------------------------------------------------------------------
# Analyzers: document -> list of features.


def word_ngrams(tokens, stop_words, min_n, max_n):
    """Tokens without the stop words, then their n-grams for n in [min_n, max_n], joined by one space."""
    if stop_words:
        tokens = [t for t in tokens if t not in stop_words]
    if max_n == 1:
        return tokens
    out = list(tokens) if min_n == 1 else []
    for n in range(max(min_n, 2), min(max_n, len(tokens)) + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def default_analyzer(decode, lowercase, stop_words, min_n, max_n):
    """``analyze(index, doc) -> features`` for the default token pattern."""

    def analyze(i, doc):
        if not isinstance(doc, str):
            doc = decode(doc, i)
        if lowercase:
            doc = doc.lower()
        return word_ngrams(_default_tokenize(doc), stop_words, min_n, max_n)

    return analyze


# ----------------------------------------------------------------------------------------------------------
# Counting any features.


def _rows(per_doc):
    """indptr, indices, counts from a list of {column: count} dicts, each row sorted by column."""
    indptr = np.zeros(len(per_doc) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(c) for c in per_doc])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    counts = np.empty(int(indptr[-1]), dtype=np.int64)
    for r, c in enumerate(per_doc):
        a = indptr[r]
        cols = sorted(c)
        indices[a : a + len(cols)] = cols
        counts[a : a + len(cols)] = [c[j] for j in cols]
    return indptr, indices, counts


def count_analyzed(docs, analyze, vocabulary=None):
    """Count the features ``analyze(i, doc)`` of each document.

    With ``vocabulary`` (a ``{feature: column}`` mapping) features outside it are skipped, and the result is
    ``(indptr, indices, counts)``. Without, the vocabulary is learned and the result is ``(terms, indptr,
    indices, counts)`` with columns numbering the features in the order ``sorted(vocabulary.items())`` gives
    them (scikit-learn's).
    """
    learn = vocabulary is None
    vocab = {} if learn else vocabulary
    per_doc = []
    for i, doc in enumerate(docs):
        row = {}
        for f in analyze(i, doc):
            if learn:
                j = vocab.setdefault(f, len(vocab))
            else:
                j = vocab.get(f)
                if j is None:
                    continue
            row[j] = row.get(j, 0) + 1
        per_doc.append(row)
    if not learn:
        return _rows(per_doc)
    ordered = sorted(vocab.items())
    rank = {old: new for new, (_, old) in enumerate(ordered)}
    per_doc = [{rank[j]: c for j, c in row.items()} for row in per_doc]
    return [t for t, _ in ordered], *_rows(per_doc)


def hash_analyzed(docs, analyze, n_features):
    """Count the features ``analyze(i, doc)`` at column ``|murmurhash3_32(feature)| mod n_features``; features
    must be ``str`` (hashed as UTF-8) or ``bytes``. Returns ``(indptr, indices, counts)``."""
    per_doc = []
    for i, doc in enumerate(docs):
        features = analyze(i, doc)
        if i == 0 and isinstance(features, str):
            raise ValueError(
                "Samples can not be a single string. The input must be an iterable over iterables of strings."
            )
        row = {}
        for f in features:
            if not isinstance(f, (str, bytes)):
                raise TypeError(f"feature names must be strings; document {i} gave {type(f).__name__} {f!r}")
            j = hash_column(murmurhash3_32(f), n_features)
            row[j] = row.get(j, 0) + 1
        per_doc.append(row)
    return _rows(per_doc)


# ----------------------------------------------------------------------------------------------------------
# The contract of the compiled module.


def make_table(mapping):
    """The lookup structure of a fixed vocabulary ``{term: column}`` (here the mapping itself)."""
    return mapping


def count_new(docs, decode, lowercase, stop_words, min_n, max_n, n_threads):
    return count_analyzed(docs, default_analyzer(decode, lowercase, stop_words, min_n, max_n))


def count_fixed(docs, decode, lowercase, stop_words, min_n, max_n, table, n_threads):
    return count_analyzed(docs, default_analyzer(decode, lowercase, stop_words, min_n, max_n), table)


def hash_counts(docs, decode, lowercase, stop_words, min_n, max_n, n_features, n_threads):
    return hash_analyzed(docs, default_analyzer(decode, lowercase, stop_words, min_n, max_n), n_features)


def text_columns(text, delimiter, ncols, tcol, lcol):
    """The cells ``tcol`` and ``lcol`` of every record of an unquoted delimited ``text``:
    ``(texts, labels, lines, bad_line, bad_columns)``, ``lines`` (int64) the 1-based line number of each
    record. Records end at "\\r\\n", "\\r" or "\\n"; an empty line, or a blank one (``str.strip``) without a
    delimiter, is none. At the first record with other than ``ncols`` cells the scan stops, returning what it
    read before and that record's line number and cell count (else 0, 0)."""
    if len(delimiter) != 1 or not 0 <= tcol < ncols or not 0 <= lcol < ncols:
        raise ValueError("text_columns: one delimiter character and columns in [0, ncols)")
    from ..datasets import _text_rows  # the records' rule, in one place

    texts, labels, lines = [], [], []
    for number, cells in _text_rows(text, delimiter, None):
        if len(cells) != ncols:
            return texts, labels, np.array(lines, dtype=np.int64), number, len(cells)
        texts.append(cells[tcol])
        labels.append(cells[lcol])
        lines.append(number)
    return texts, labels, np.array(lines, dtype=np.int64), 0, 0
