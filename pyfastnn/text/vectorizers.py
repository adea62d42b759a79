"""Bag-of-words transformers with scikit-learn's interface and scikit-learn's exact output.

:class:`BagOfWords` gives what ``sklearn.feature_extraction.text.CountVectorizer`` gives for the same
parameters, :class:`HashingBagOfWords` what ``HashingVectorizer(alternate_sign=False, norm=None)`` gives: the
same shape, dtype, feature order and values. The output is a ``scipy.sparse.csr_matrix`` in canonical form
(column indices sorted within each row, no repeats); scikit-learn's CountVectorizer output may have unsorted
indices, so compare the two after ``sort_indices()``.

The default word analyzer runs in the compiled kernels (``pyfastnn.text._bow``, Cython, threads from
:func:`pyfastnn.get_num_threads`) when they are built, else in pure Python with the same results. A custom
``token_pattern``, ``tokenizer``, ``preprocessor`` or ``analyzer`` always takes the Python path.

Neither scikit-learn nor SciPy is imported with this module: SciPy when a transformer returns its matrix,
scikit-learn only for ``stop_words="english"`` (its list is scikit-learn's data, not shipped here), for its
``NotFittedError`` and for its estimator tags. ``get_params`` / ``set_params`` follow scikit-learn's rules, so
the transformers can be cloned, pickled and used in ``Pipeline`` and ``GridSearchCV``.

What differs from scikit-learn:

* ``analyzer`` is "word" or a callable (no character n-grams); there is no ``strip_accents`` parameter (pass a
  ``preprocessor``); ``stop_words`` also takes a tuple or a set.
* A document that is not ``str`` or ``bytes`` (None, a number) raises TypeError naming its index, where
  scikit-learn raises AttributeError; a custom ``preprocessor``, ``tokenizer`` (with ``lowercase=False``) or
  ``analyzer`` still receives the document as it is, as in scikit-learn.
* ``ngram_range`` must satisfy 1 <= min_n <= max_n.
"""

import importlib
import inspect
import math
import numbers
import re
import warnings
from collections.abc import Iterable, Mapping
from operator import itemgetter

import numpy as np

from .._backend import get_num_threads
from ..datasets import _check_bool, _check_dtype
from . import _bow_py

try:
    _compiled = importlib.import_module("pyfastnn.text._bow")
except ImportError as exc:  # installed without a compiler, without Cython, or with PYFASTNN_NO_EXTENSION=1
    _compiled = None
    _COMPILED_ERROR = f"the Cython extension pyfastnn.text._bow is not built ({exc})"
else:
    _COMPILED_ERROR = ""

__all__ = ["BagOfWords", "HashingBagOfWords"]

DEFAULT_TOKEN_PATTERN = _bow_py.DEFAULT_TOKEN_PATTERN
# Patterns the compiled tokenizer implements exactly: in Python 3 a str pattern is Unicode-aware without (?u).
_COMPILED_PATTERNS = (DEFAULT_TOKEN_PATTERN, r"\b\w\w+\b")
# scipy.sparse stores these dtypes (not float16).
_SPARSE_KINDS = "biufc"


def _kernels():
    """The module that runs the default analyzer: the compiled one if built, else the pure-Python one."""
    return _compiled if _compiled is not None else _bow_py


def kernel_info():
    """Which kernels run the default analyzer: ``{"compiled": bool, "reason": str}`` (why not compiled)."""
    return {"compiled": _compiled is not None, "reason": _COMPILED_ERROR}


# ----------------------------------------------------------------------------------------------------------
# scikit-learn's estimator protocol, without importing scikit-learn.


class _Estimator:
    """get_params / set_params / repr / pickling / estimator tags, as in scikit-learn's BaseEstimator."""

    _requires_fit = True

    @classmethod
    def _get_param_names(cls):
        return sorted(p.name for p in inspect.signature(cls.__init__).parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep=True):
        """The constructor parameters as a dict (with nested estimators' as ``name__sub`` when ``deep``)."""
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set constructor parameters (validated when the transformer is next used); returns self."""
        valid = self.get_params(deep=True)
        nested = {}
        for key, value in params.items():
            name, delim, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {self._get_param_names()!r}."
                )
            if delim:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
                valid[name] = value
        for name, sub in nested.items():
            valid[name].set_params(**sub)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        shown = []
        for name, value in self.get_params(deep=False).items():
            default = defaults[name].default
            try:
                same = value is default or (type(value) is type(default) and bool(value == default))
            except (TypeError, ValueError):
                same = False
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_table_cache", None)  # a compiled lookup table: rebuilt from vocabulary_ when needed
        return state

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(),
            input_tags=InputTags(string=True, two_d_array=False),
            requires_fit=self._requires_fit,
        )


def _not_fitted(message):
    try:
        from sklearn.exceptions import NotFittedError
    except ImportError:
        NotFittedError = _NotFittedError
    return NotFittedError(message)


class _NotFittedError(ValueError, AttributeError):
    """Raised before fit when scikit-learn (whose NotFittedError has the same bases) is not installed."""


# ----------------------------------------------------------------------------------------------------------
# Parameter checks, shared by both transformers.


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_df(value, name):
    if _is_int(value):
        if value < 1:
            raise ValueError(
                f"{name} must be an int >= 1 (a document count) or a float in [0.0, 1.0], got {value}"
            )
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"{name} as a float (a fraction of documents) must be in [0.0, 1.0], got {value}"
            )
        return float(value)
    raise TypeError(f"{name} must be an int >= 1 or a float in [0.0, 1.0], got {value!r}")


def _check_sparse_dtype(dtype):
    dt = _check_dtype(dtype, _SPARSE_KINDS, "numeric", "dtype")
    if dt == np.float16:
        raise ValueError("dtype float16 is not supported by scipy.sparse; use float32 or float64")
    return dt


def _check_ngram_range(value):
    if (not isinstance(value, (tuple, list)) or len(value) != 2 or not all(_is_int(v) for v in value)):
        raise TypeError(f"ngram_range must be a tuple (min_n, max_n) of two ints, got {value!r}")
    min_n, max_n = int(value[0]), int(value[1])
    if min_n > max_n:
        raise ValueError(
            f"Invalid value for ngram_range={tuple(value)} lower boundary larger than the upper boundary."
        )
    if min_n < 1:
        raise ValueError(f"ngram_range=(min_n, max_n) needs min_n >= 1, got {tuple(value)}")
    return min_n, max_n


def _stop_words(value):
    if value is None:
        return None
    if isinstance(value, str):
        if value != "english":
            raise ValueError(f"not a built-in stop list: {value}")
        try:
            from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
        except ImportError as exc:
            raise ImportError(
                "stop_words='english' uses scikit-learn's list (pyfastnn does not ship it): pip install "
                f"scikit-learn, or pass your own list of stop words ({exc})"
            ) from exc
        return frozenset(ENGLISH_STOP_WORDS)
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(value)
    raise TypeError(f"stop_words must be None, 'english' or a list of words, got {type(value).__name__}")


def _documents(raw_documents):
    """The documents as a list; the errors scikit-learn gives for a single string."""
    if isinstance(raw_documents, str):
        raise ValueError("Iterable over raw text documents expected, string object received.")
    if isinstance(raw_documents, (bytes, bytearray)):
        raise ValueError("Iterable over raw text documents expected, bytes object received.")
    if isinstance(raw_documents, list):
        return raw_documents
    if isinstance(raw_documents, np.ndarray) and raw_documents.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of documents, got an array of shape {raw_documents.shape}")
    if not isinstance(raw_documents, Iterable):
        raise TypeError(
            "expected an iterable over raw text documents (e.g. a list of str), got "
            f"{type(raw_documents).__name__}"
        )
    return list(raw_documents)


def _make_decode(input, encoding, decode_error, strict):
    """``decode(doc, index)``: the document's text, as scikit-learn's ``decode`` gives it. When ``strict``,
    the result must be ``str`` (nothing custom will receive the raw document)."""

    def decode(doc, i):
        if input == "filename":
            with open(doc, "rb") as fh:
                doc = fh.read()
        elif input == "file":
            doc = doc.read()
        if isinstance(doc, bytes):
            try:
                doc = doc.decode(encoding, decode_error)
            except UnicodeDecodeError as exc:
                raise UnicodeDecodeError(
                    exc.encoding, exc.object, exc.start, exc.end,
                    f"{exc.reason}, in document {i} (encoding={encoding!r}; decode_error='replace' or "
                    f"'ignore' accepts such bytes)",
                ) from None
            except LookupError:
                raise LookupError(
                    f"encoding={encoding!r} is not a known codec (document {i} is bytes)"
                ) from None
        elif isinstance(doc, float) and math.isnan(doc):
            raise ValueError(
                f"document {i} is nan: np.nan is an invalid document, expected byte or unicode string."
            )
        if strict and not isinstance(doc, str):
            raise TypeError(f"document {i} is {type(doc).__name__} {doc!r:.40}; expected str or bytes")
        return doc

    return decode


class _Settings:
    """The checked parameters of one call, and how to analyze documents with them."""

    def __init__(self, est):
        if est.input not in ("content", "file", "filename"):
            raise ValueError(f"input must be 'content', 'file' or 'filename', got {est.input!r}")
        if not isinstance(est.encoding, str):
            raise TypeError(f"encoding must be a str such as 'utf-8', got {est.encoding!r}")
        if est.decode_error not in ("strict", "ignore", "replace"):
            raise ValueError(
                f"decode_error must be 'strict', 'ignore' or 'replace', got {est.decode_error!r}"
            )
        self.lowercase = _check_bool(est.lowercase, "lowercase")
        for name in ("preprocessor", "tokenizer"):
            if getattr(est, name) is not None and not callable(getattr(est, name)):
                raise TypeError(f"{name} must be None or a callable, got {getattr(est, name)!r}")
        analyzer = est.analyzer
        if not callable(analyzer) and analyzer != "word":
            if analyzer in ("char", "char_wb"):
                raise ValueError(
                    f"analyzer={analyzer!r}: pyfastnn.text makes word n-grams only; for character n-grams "
                    "use scikit-learn's CountVectorizer or pass a callable analyzer"
                )
            raise ValueError(f"analyzer must be 'word' or a callable, got {analyzer!r}")
        self.min_n, self.max_n = _check_ngram_range(est.ngram_range)
        self.stop_words = _stop_words(est.stop_words)
        self.dtype = _check_sparse_dtype(est.dtype)
        self.binary = _check_bool(est.binary, "binary")

        pattern = est.token_pattern
        tokenize = None
        if analyzer == "word" and est.tokenizer is None:
            if not isinstance(pattern, str):
                raise TypeError(f"token_pattern must be a regular expression str when tokenizer is None, "
                                f"got {pattern!r}")
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"token_pattern={pattern!r} is not a valid regular expression: {exc}"
                ) from None
            if compiled.groups > 1:
                raise ValueError(
                    "More than 1 capturing group in token pattern. Only a single group should be captured."
                )
            tokenize = compiled.findall
        elif pattern is not None and not isinstance(pattern, str):
            raise TypeError(f"token_pattern must be a str or None, got {pattern!r}")

        # The compiled kernels (or their pure-Python twin) run the default word analyzer; anything custom runs
        # the general Python path. Only the default path insists on str / bytes documents.
        self.default = (analyzer == "word" and est.preprocessor is None and est.tokenizer is None
                        and pattern in _COMPILED_PATTERNS)
        strict = (not callable(analyzer) and est.preprocessor is None
                  and (self.lowercase or est.tokenizer is None))
        self.input = est.input
        self.decode = _make_decode(est.input, est.encoding, est.decode_error, strict)
        self.analyze = None if self.default else self._analyzer(est, tokenize)
        self.n_threads = get_num_threads()
        _warn_unused(est)
        if self.stop_words and analyzer == "word":
            _check_stop_words_consistency(est, self, tokenize)

    def _analyzer(self, est, tokenize):
        decode, analyzer = self.decode, est.analyzer
        if callable(analyzer):
            return lambda i, doc: analyzer(decode(doc, i))
        preprocessor, lowercase = est.preprocessor, self.lowercase
        tokenize = est.tokenizer or tokenize
        stop, min_n, max_n = self.stop_words, self.min_n, self.max_n

        def analyze(i, doc):
            doc = decode(doc, i)
            if preprocessor is not None:
                doc = preprocessor(doc)
            elif lowercase:
                doc = doc.lower()
            return _bow_py.word_ngrams(tokenize(doc), stop, min_n, max_n)

        return analyze

    def documents(self, raw_documents):
        """The documents as a list; read and decoded up front when they are files or file names."""
        docs = _documents(raw_documents)
        if self.input != "content" and self.default:
            docs = [self.decode(d, i) for i, d in enumerate(docs)]
        return docs


def _warn_unused(est):
    """scikit-learn's warnings about parameters that the others make irrelevant."""
    if est.tokenizer is not None and est.token_pattern is not None:
        warnings.warn("The parameter 'token_pattern' will not be used since 'tokenizer' is not None'")
    if callable(est.analyzer):
        if est.preprocessor is not None:
            warnings.warn("The parameter 'preprocessor' will not be used since 'analyzer' is callable'")
        if tuple(est.ngram_range) != (1, 1):
            warnings.warn("The parameter 'ngram_range' will not be used since 'analyzer' is callable'")
        if est.stop_words is not None:
            warnings.warn("The parameter 'stop_words' will not be used since 'analyzer' != 'word'")
        if est.token_pattern is not None and est.token_pattern != DEFAULT_TOKEN_PATTERN:
            warnings.warn("The parameter 'token_pattern' will not be used since 'analyzer' != 'word'")
        if est.tokenizer is not None:
            warnings.warn("The parameter 'tokenizer' will not be used since 'analyzer' != 'word'")


def _check_stop_words_consistency(est, settings, tokenize):
    """Warn, as scikit-learn does (once per stop list), when a stop word's own tokens are not stop words."""
    if getattr(est, "_stop_words_id", None) == id(est.stop_words):
        return
    est._stop_words_id = id(est.stop_words)
    stop = settings.stop_words
    tokenize = est.tokenizer or tokenize
    try:
        inconsistent = set()
        for w in stop:
            if est.preprocessor is not None:
                w = est.preprocessor(w)
            elif settings.lowercase:
                w = w.lower()
            inconsistent.update(t for t in tokenize(w) if t not in stop)
    except Exception:  # a custom preprocessor or tokenizer that cannot take a stop word: no check
        return
    if inconsistent:
        warnings.warn(
            "Your stop_words may be inconsistent with your preprocessing. Tokenizing the stop words "
            f"generated tokens {sorted(inconsistent)!r} not in stop_words."
        )


def _as_dtype(counts, dtype):
    """The int64 counts in ``dtype``: converted in place when the item size is the same (no second array)."""
    if dtype == counts.dtype:
        return counts
    if dtype.itemsize == counts.dtype.itemsize and counts.flags.writeable:
        out = counts.view(dtype)
        np.copyto(out, counts, casting="unsafe")  # elementwise over the same addresses: safe in place
        return out
    return counts.astype(dtype)


def _csr(data, indices, indptr, n_columns):
    """A canonical scipy.sparse.csr_matrix; int32 indices unless the entries need int64 (as scikit-learn)."""
    try:
        import scipy.sparse as sp
    except ImportError as exc:
        raise ImportError(
            f"pyfastnn.text returns scipy.sparse matrices and needs SciPy: pip install scipy ({exc})"
        ) from exc

    if indptr[-1] > np.iinfo(np.int32).max:
        indices = indices.astype(np.int64)
    else:
        indptr = indptr.astype(np.int32)
    X = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_columns), copy=False)
    X.has_sorted_indices = True  # the kernels write each row sorted and without repeats
    return X


# ----------------------------------------------------------------------------------------------------------
# BagOfWords


class BagOfWords(_Estimator):
    """Documents to a sparse matrix of term counts: scikit-learn's ``CountVectorizer``, with the same output.

    Parameters
    ----------
    input : {"content", "file", "filename"}, default "content"
        What the documents are: text (``str`` or ``bytes``), file objects, or file names.
    encoding : str, default "utf-8"
        Codec of ``bytes`` documents.
    decode_error : {"strict", "ignore", "replace"}, default "strict"
        What to do with bytes the encoding cannot decode ("strict": UnicodeDecodeError naming the document).
    lowercase : bool, default True
        ``str.lower()`` each document before tokenizing (unless ``preprocessor`` is given).
    preprocessor : callable or None, default None
        ``str -> str`` replacing the lower-casing.
    tokenizer : callable or None, default None
        ``str -> list of tokens`` replacing ``token_pattern``.
    stop_words : None, "english" or list of str, default None
        Tokens to drop before n-grams are formed. "english" is scikit-learn's list (needs scikit-learn).
    token_pattern : str, default r"(?u)\\b\\w\\w+\\b"
        What a token is: runs of two or more word characters by default (the compiled path); any other regular
        expression takes the Python path (a single capturing group gives the token).
    ngram_range : (int, int), default (1, 1)
        Word n-grams for every n in [min_n, max_n], tokens joined by one space.
    analyzer : "word" or callable, default "word"
        A callable maps a (decoded) document to its features and replaces the steps above.
    max_df, min_df : float in [0, 1] or int >= 1, default 1.0 and 1
        Drop terms found in more than ``max_df`` / fewer than ``min_df`` documents (a float is a fraction of
        the documents). Ignored with a given ``vocabulary``.
    max_features : int or None, default None
        Keep only this many terms, the most frequent over the corpus (ties as scikit-learn breaks them).
    vocabulary : mapping or iterable or None, default None
        A fixed vocabulary: ``{term: column}`` with columns 0..n-1, or an iterable of distinct terms.
    binary : bool, default False
        Store 1 instead of the count.
    dtype : numpy dtype, default np.int64
        Dtype of the matrix.

    Attributes
    ----------
    vocabulary_ : dict
        ``{term: column}``; columns number the terms in sorted order (when learned).
    fixed_vocabulary_ : bool
        Whether ``vocabulary`` was given.

    Examples
    --------
    >>> from pyfastnn.text import BagOfWords
    >>> bow = BagOfWords()
    >>> X = bow.fit_transform(["the cat sat", "the cat and the hat"])
    >>> list(bow.get_feature_names_out())
    ['and', 'cat', 'hat', 'sat', 'the']
    >>> X.toarray()
    array([[0, 1, 0, 1, 1],
           [1, 1, 1, 0, 2]])
    """

    def __init__(self, *, input="content", encoding="utf-8", decode_error="strict", lowercase=True,
                 preprocessor=None, tokenizer=None, stop_words=None, token_pattern=DEFAULT_TOKEN_PATTERN,
                 ngram_range=(1, 1), analyzer="word", max_df=1.0, min_df=1, max_features=None,
                 vocabulary=None, binary=False, dtype=np.int64):
        self.input = input
        self.encoding = encoding
        self.decode_error = decode_error
        self.lowercase = lowercase
        self.preprocessor = preprocessor
        self.tokenizer = tokenizer
        self.stop_words = stop_words
        self.token_pattern = token_pattern
        self.ngram_range = ngram_range
        self.analyzer = analyzer
        self.max_df = max_df
        self.min_df = min_df
        self.max_features = max_features
        self.vocabulary = vocabulary
        self.binary = binary
        self.dtype = dtype

    # -- vocabulary ------------------------------------------------------------------------------------

    def _validate_vocabulary(self):
        """Check a given ``vocabulary`` as scikit-learn does; set ``fixed_vocabulary_`` (and
        ``vocabulary_``)."""
        vocabulary = self.vocabulary
        if vocabulary is None:
            self.fixed_vocabulary_ = False
            return
        if isinstance(vocabulary, (str, bytes)):
            raise TypeError(
                f"vocabulary must be a mapping or an iterable of terms, got {type(vocabulary).__name__}"
            )
        if isinstance(vocabulary, set):
            vocabulary = sorted(vocabulary)
        if isinstance(vocabulary, Mapping):
            indices = set(vocabulary.values())
            if len(indices) != len(vocabulary):
                raise ValueError("Vocabulary contains repeated indices.")
            for i in range(len(vocabulary)):
                if i not in indices:
                    raise ValueError(f"Vocabulary of size {len(vocabulary)} doesn't contain index {i}.")
        elif isinstance(vocabulary, Iterable):
            vocab = {}
            for i, t in enumerate(vocabulary):
                if vocab.setdefault(t, i) != i:
                    raise ValueError(f"Duplicate term in vocabulary: {t!r}")
            vocabulary = vocab
        else:
            raise TypeError(
                f"vocabulary must be a mapping or an iterable of terms, got {type(vocabulary).__name__}"
            )
        if not vocabulary:
            raise ValueError("empty vocabulary passed to fit")
        self.fixed_vocabulary_ = True
        self.vocabulary_ = dict(vocabulary)

    def _check_vocabulary(self):
        if not hasattr(self, "vocabulary_"):
            self._validate_vocabulary()
            if not self.fixed_vocabulary_:
                raise _not_fitted(
                    f"This {type(self).__name__} instance is not fitted yet: call fit or fit_transform "
                    "first, or pass a vocabulary (Vocabulary not fitted or provided)"
                )
        if len(self.vocabulary_) == 0:
            raise ValueError("Vocabulary is empty")

    def _lookup_table(self, kern):
        """The kernels' lookup structure for vocabulary_, kept while vocabulary_ is the same dict."""
        cache = getattr(self, "_table_cache", None)
        vocab = self.vocabulary_
        if cache is not None and cache[0] is vocab and cache[1] == len(vocab) and cache[2] is kern:
            return cache[3]
        table = kern.make_table(vocab)
        self._table_cache = (vocab, len(vocab), kern, table)
        return table

    # -- counting --------------------------------------------------------------------------------------

    def _count_fixed(self, s, docs):
        if s.default:
            kern = _kernels()
            indptr, indices, counts = kern.count_fixed(
                docs, s.decode, s.lowercase, s.stop_words, s.min_n, s.max_n, self._lookup_table(kern),
                s.n_threads
            )
        else:
            indptr, indices, counts = _bow_py.count_analyzed(docs, s.analyze, self.vocabulary_)
        data = _as_dtype(counts, s.dtype)
        if s.binary:
            data.fill(1)
        return _csr(data, indices, indptr, len(self.vocabulary_))

    def fit(self, raw_documents, y=None):
        """Learn the vocabulary of the documents; returns self. See :meth:`fit_transform`."""
        self.fit_transform(raw_documents)
        return self

    def fit_transform(self, raw_documents, y=None):
        """Learn the vocabulary and return the document-term matrix.

        Parameters
        ----------
        raw_documents : iterable of str (or bytes, files, file names: see ``input``), length n_samples
        y : ignored

        Returns
        -------
        X : scipy.sparse.csr_matrix, shape (n_samples, n_terms), dtype ``dtype``
            Row i counts the terms of document i; columns follow ``get_feature_names_out()``.
        """
        s = _Settings(self)
        docs = s.documents(raw_documents)
        max_df = _check_df(self.max_df, "max_df")
        min_df = _check_df(self.min_df, "min_df")
        if self.max_features is not None and not (_is_int(self.max_features) and self.max_features >= 1):
            raise ValueError(f"max_features must be None or an int >= 1, got {self.max_features!r}")
        self._validate_vocabulary()
        if self.fixed_vocabulary_:
            if s.lowercase and any(isinstance(t, str) and any(map(str.isupper, t)) for t in self.vocabulary_):
                warnings.warn(
                    "Upper case characters found in vocabulary while 'lowercase' is True. These entries will "
                    "not be matched with any documents"
                )
            return self._count_fixed(s, docs)

        if s.default:
            terms, indptr, indices, counts = _kernels().count_new(
                docs, s.decode, s.lowercase, s.stop_words, s.min_n, s.max_n, s.n_threads
            )
        else:
            terms, indptr, indices, counts = _bow_py.count_analyzed(docs, s.analyze)
        if not terms:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        data = _as_dtype(counts, s.dtype)
        if s.binary:
            data.fill(1)
        X = _csr(data, indices, indptr, len(terms))

        n_doc = X.shape[0]
        high = max_df if isinstance(max_df, int) else max_df * n_doc
        low = min_df if isinstance(min_df, int) else min_df * n_doc
        if high < low:
            raise ValueError("max_df corresponds to < documents than min_df")
        X, terms = _limit_features(X, terms, high, low, self.max_features)
        self.vocabulary_ = dict(zip(terms, range(len(terms))))
        return X

    def transform(self, raw_documents):
        """Count the documents' terms over the learned (or given) vocabulary; unknown terms are ignored.

        Parameters
        ----------
        raw_documents : iterable of str (or bytes, files, file names: see ``input``), length n_samples

        Returns
        -------
        X : scipy.sparse.csr_matrix, shape (n_samples, len(vocabulary_)), dtype ``dtype``
        """
        s = _Settings(self)
        docs = s.documents(raw_documents)
        self._check_vocabulary()
        return self._count_fixed(s, docs)

    def get_feature_names_out(self, input_features=None):
        """The terms in column order: ndarray of str objects, shape (n_terms,)."""
        self._check_vocabulary()
        return np.asarray([t for t, _ in sorted(self.vocabulary_.items(), key=itemgetter(1))], dtype=object)


def _limit_features(X, terms, high, low, limit):
    """Drop the terms with a document frequency above ``high`` or below ``low``, then keep the ``limit`` most
    frequent (scikit-learn's selection and tie-breaking: the same NumPy calls on the same arrays)."""
    n_terms = len(terms)
    if low <= 1 and high >= X.shape[0] and (limit is None or limit >= n_terms):
        return X, terms  # every learned term is in 1..n_doc documents: nothing to drop
    dfs = np.bincount(X.indices, minlength=n_terms)
    mask = np.ones(n_terms, dtype=bool)
    mask &= dfs <= high
    mask &= dfs >= low
    if limit is not None and mask.sum() > limit:
        tfs = np.asarray(X.sum(axis=0)).ravel()
        mask_inds = (-tfs[mask]).argsort()[:limit]
        new_mask = np.zeros(n_terms, dtype=bool)
        new_mask[np.where(mask)[0][mask_inds]] = True
        mask = new_mask
    kept = np.flatnonzero(mask)
    if len(kept) == 0:
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    if len(kept) == n_terms:
        return X, terms
    # Renumber the kept columns in order; rows stay sorted because the renumbering is increasing.
    new_index = (np.cumsum(mask) - 1).astype(X.indices.dtype)
    keep = mask[X.indices]
    kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    indptr = kept_before[X.indptr]
    X = _csr(X.data[keep], new_index[X.indices[keep]], indptr, len(kept))
    return X, [terms[i] for i in kept]


# ----------------------------------------------------------------------------------------------------------
# HashingBagOfWords


class HashingBagOfWords(_Estimator):
    """Documents to term counts at hashed columns: scikit-learn's ``HashingVectorizer(alternate_sign=False,
    norm=None)``, with the same output. No vocabulary is kept, so nothing needs fitting.

    A term (n-gram) goes to column ``|h| mod n_features`` where ``h`` is the signed 32-bit MurmurHash3
    (x86_32, seed 0) of its UTF-8 bytes; terms landing on one column add up.

    Parameters
    ----------
    n_features : int, default 2**20
        Number of columns, 1 <= n_features < 2**31 - 1.
    binary : bool, default False
        Store 1 instead of the count.
    dtype : numpy dtype, default np.float64
        Dtype of the matrix; counts add up in it, as in scikit-learn (float32 stops at 2**24).
    input, encoding, decode_error, lowercase, preprocessor, tokenizer, stop_words, token_pattern, ngram_range,
    analyzer
        As for :class:`BagOfWords`.
    """

    _requires_fit = False

    def __init__(self, *, input="content", encoding="utf-8", decode_error="strict", lowercase=True,
                 preprocessor=None, tokenizer=None, stop_words=None, token_pattern=DEFAULT_TOKEN_PATTERN,
                 ngram_range=(1, 1), analyzer="word", n_features=2**20, binary=False, dtype=np.float64):
        self.input = input
        self.encoding = encoding
        self.decode_error = decode_error
        self.lowercase = lowercase
        self.preprocessor = preprocessor
        self.tokenizer = tokenizer
        self.stop_words = stop_words
        self.token_pattern = token_pattern
        self.ngram_range = ngram_range
        self.analyzer = analyzer
        self.n_features = n_features
        self.binary = binary
        self.dtype = dtype

    def _check_n_features(self):
        n = self.n_features
        if not _is_int(n):
            raise TypeError(f"n_features must be an int, got {n!r}")
        if not 1 <= n < np.iinfo(np.int32).max:
            raise ValueError(f"n_features must be in [1, 2**31 - 1), got {n}")
        return int(n)

    def fit(self, X, y=None):
        """Check the parameters (there is nothing to learn); returns self."""
        if isinstance(X, str):
            raise ValueError("Iterable over raw text documents expected, string object received.")
        _Settings(self)
        self._check_n_features()
        return self

    def partial_fit(self, X, y=None):
        """Nothing to learn; returns self."""
        return self

    def transform(self, X):
        """Hash the documents' terms into columns and count them.

        Parameters
        ----------
        X : iterable of str (or bytes, files, file names: see ``input``), length n_samples

        Returns
        -------
        scipy.sparse.csr_matrix, shape (n_samples, n_features), dtype ``dtype``
        """
        s = _Settings(self)
        n_features = self._check_n_features()
        docs = s.documents(X)
        if s.default:
            indptr, indices, counts = _kernels().hash_counts(
                docs, s.decode, s.lowercase, s.stop_words, s.min_n, s.max_n, n_features, s.n_threads
            )
        else:
            indptr, indices, counts = _bow_py.hash_analyzed(docs, s.analyze, n_features)
        if len(docs) == 0:
            raise ValueError("Cannot vectorize empty sequence.")
        if s.dtype.kind in "fc" and np.finfo(s.dtype).nmant < 62 and counts.size:
            # scikit-learn adds the 1s up in dtype: a float count stops growing at 2**(mantissa bits + 1).
            top = 2 ** (np.finfo(s.dtype).nmant + 1)
            if counts.max() > top:
                counts = np.minimum(counts, top)
        data = _as_dtype(counts, s.dtype)
        if s.binary:
            data.fill(1)
        return _csr(data, indices, indptr, n_features)

    def fit_transform(self, X, y=None):
        """``fit(X).transform(X)``."""
        return self.fit(X, y).transform(X)
