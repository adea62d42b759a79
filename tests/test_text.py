"""pyfastnn.text against scikit-learn's CountVectorizer and HashingVectorizer: identical output on the bundled
sentences and on generated text, for many parameter combinations, on the compiled kernels, the pure-Python
fallback and two threads; the estimator protocol; bad input; MurmurHash3.

scikit-learn's CountVectorizer output does *not* always have sorted indices: it counts with column numbers in
first-seen order, sorts the rows, then renumbers the columns to sorted-term order without sorting the rows
again (``test_sklearn_count_output_is_not_canonical`` shows it). pyfastnn's output is canonical (sorted, no
repeats), so the comparisons here sort scikit-learn's matrix first and then compare shape, dtype, index dtypes
and the arrays exactly.
"""

import io
import pickle
import random
import warnings

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn.text import BagOfWords, HashingBagOfWords, _bow_py, kernel_info, vectorizers

sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
CountVectorizer = sklearn_text.CountVectorizer
HashingVectorizer = sklearn_text.HashingVectorizer

try:
    from pyfastnn.text import _bow as _compiled
except ImportError:  # the fallback-only install: the tests that need the extension are skipped
    _compiled = None

needs_compiled = pytest.mark.skipif(_compiled is None, reason=f"Cython extension not built: {kernel_info()}")

# Characters whose \w-ness or lower-casing is worth testing: ASCII, Latin-1 (with the ones whose case maps
# differ), combining marks (not \w), CJK, emoji (not \w), digits of other scripts, superscripts and fractions
# (numeric, so \w), letters outside the BMP, the dotted capital I (lower() makes two characters), Greek final
# sigma (lower() depends on context), apostrophes and quotes, underscore, white space of several kinds, NUL,
# a lone surrogate.
ALPHABET = (
    "abcXYZ019_ '’\"-.,;!?\t\n\r\x0b\x0c\x85\u2028\u00a0\x00"
    "éÉàÀßÿµÞþ×÷ªº¹²³¼½¾"
    "e\u0301o\u0308\u200d\u200b"
    "日本語中文한국어"
    "😀👍🏽🇫🇷"
    "٣४๕"
    "Ⅻⅻ"
    "𝔘𝔫𝔦𐐀𐐨"
    "İıΣσςΟΔ"
    "\ud800"
)

EDGE_DOCS = [
    "The cat sat on the mat. The CAT!",
    "Café au lait, naïve façade — ÉCOLE, Straße, ÿ, µ-meter",
    "İstanbul İİ i̇i̇ ΟΔΟΣ ΣΟΦΟΣ σς",
    "日本語のテキスト 中文 한국어 mixed日本 abc中",
    "a_b __ _ x1 22 2 1 a b c d_e __init__ snake_case",
    "don't won't l'été it's rock'n'roll ’quoted’ \"dq\"",
    "😀😀 emoji👍ok 👍🏽 🇫🇷fr 😀a😀bb😀",
    "e\u0301te\u0301 cafe\u0301 o\u0308o\u0308 zero\u200bwidth join\u200der",
    "٣٣ ४४ ๕๕ Ⅻ ⅫⅫ ²² ½½ x² 3½",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐐀𐐨 astral",
    "",
    "   ",
    "a b c",
    "tab\tsep\nnew\rline\x0bvt\x0cff\x85nel\u2028ls\u00a0nbsp end",
    "nul\x00byte bad\ud800surrogate ok",
    "MiXeD CaSe WoRdS mixed case words MIXED",
    "repeat repeat repeat repeat again again",
]

PARAMS = [
    {},
    {"ngram_range": (1, 2)},
    {"ngram_range": (2, 3)},
    {"ngram_range": (1, 3), "stop_words": ["the", "a", "on", "de", "i̇i̇"]},
    {"lowercase": False},
    {"lowercase": False, "ngram_range": (1, 2)},
    {"stop_words": ["the", "cat", "repeat", "日本語のテキスト"]},
    {"min_df": 2},
    {"max_df": 0.5},
    {"max_df": 3, "min_df": 1},
    {"min_df": 0.1, "max_df": 0.9},
    {"max_features": 7},
    {"max_features": 7, "ngram_range": (1, 2), "min_df": 2},
    {"binary": True},
    {"binary": True, "dtype": np.float32},
    {"dtype": np.int32},
    {"dtype": np.float64},
    {"dtype": np.uint8},
    {"dtype": np.bool_},
    {"token_pattern": r"\b\w\w+\b"},
]

# Parameters that take the general Python path: both must equal scikit-learn.
SLOW_PARAMS = [
    {"token_pattern": r"(?u)\b\w+\b"},
    {"token_pattern": r"(?u)\b(\w)\w*\b"},
    {"token_pattern": r"[a-z]+", "lowercase": False},
    {"tokenizer": str.split, "token_pattern": None},
    {"preprocessor": str.upper},
    {"analyzer": lambda doc: doc.split()},
    {"tokenizer": str.split, "token_pattern": None, "ngram_range": (1, 2), "stop_words": ["the"]},
]


def canonical(X):
    """A sorted copy of a CSR matrix (sklearn's rows may be unsorted)."""
    X = X.copy()
    X.sort_indices()
    return X


def rows_sorted(X):
    """Whether every row's column indices strictly increase (computed, not the cached flag)."""
    d = np.diff(X.indices)
    starts = X.indptr[1:-1]
    inside = np.ones(len(d), dtype=bool)
    inside[starts[(starts > 0) & (starts <= len(d))] - 1] = False
    return bool(np.all(d[inside] > 0))


def assert_same(ours, ref, what=""):
    ref = canonical(ref)
    assert type(ours).__name__ == "csr_matrix", what
    assert ours.shape == ref.shape, what
    assert ours.dtype == ref.dtype, what
    assert ours.indices.dtype == ref.indices.dtype and ours.indptr.dtype == ref.indptr.dtype, what
    assert rows_sorted(ours), f"{what}: our rows are not sorted"
    np.testing.assert_array_equal(ours.indptr, ref.indptr, err_msg=what)
    np.testing.assert_array_equal(ours.indices, ref.indices, err_msg=what)
    np.testing.assert_array_equal(ours.data, ref.data, err_msg=what)


def compare_count(docs, params, other=None, **kw):
    """fit_transform, fit + transform (on ``other`` too) and the vocabulary, against CountVectorizer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CountVectorizer(**params)
        X_ref = ref.fit_transform(docs)
        ours = BagOfWords(**params)
        X = ours.fit_transform(docs)
        assert_same(X, X_ref, f"fit_transform {params}")
        assert ours.vocabulary_ == ref.vocabulary_
        assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out())
        for batch in [docs] + ([other] if other is not None else []):
            assert_same(ours.transform(batch), ref.transform(batch), f"transform {params}")
    return ours


@pytest.fixture(scope="module")
def sentences():
    return pf.datasets.load_sentiment()[0]


@pytest.fixture(params=["compiled", "python"])
def kernels(request, monkeypatch):
    """Run the test on the compiled kernels and on the pure-Python fallback."""
    if request.param == "compiled":
        if _compiled is None:
            pytest.skip("Cython extension not built")
    else:
        monkeypatch.setattr(vectorizers, "_compiled", None)
    return request.param


# ----------------------------------------------------------------------------------------------------------
# equality with scikit-learn


@pytest.mark.parametrize("params", PARAMS, ids=[str(p) for p in PARAMS])
def test_count_equals_sklearn_on_sentences(sentences, params, kernels):
    compare_count(sentences[:2000], params, other=sentences[2000:])


@pytest.mark.parametrize("params", PARAMS, ids=[str(p) for p in PARAMS])
def test_count_equals_sklearn_on_edge_documents(params, kernels):
    docs = EDGE_DOCS * 2
    if params.get("max_df") == 3:
        docs = EDGE_DOCS
    compare_count(docs, params, other=list(reversed(EDGE_DOCS)))


@pytest.mark.parametrize("params", SLOW_PARAMS, ids=[str(p) for p in SLOW_PARAMS])
def test_count_python_path_equals_sklearn(sentences, params):
    compare_count(sentences[:500] + EDGE_DOCS, params, other=sentences[500:800])


def test_stop_words_english_equals_sklearn(sentences, kernels):
    compare_count(sentences, {"stop_words": "english", "ngram_range": (1, 2)})


def test_max_features_ties_broken_as_sklearn(kernels):
    # Many terms with the same corpus frequency: which ones survive is scikit-learn's argsort order.
    rng = random.Random(3)
    words = [f"w{i:03d}" for i in range(300)]
    docs = [" ".join(rng.sample(words, 20)) for _ in range(150)]
    for limit in (1, 5, 37, 120):
        for params in ({"max_features": limit}, {"max_features": limit, "binary": True},
                       {"max_features": limit, "dtype": np.float32}, {"max_features": limit, "min_df": 8}):
            compare_count(docs, params)


@pytest.mark.parametrize("params", [{"vocabulary": {"cat": 1, "the": 0, "zzz": 2, "日本": 3}},
                                    {"vocabulary": ["the", "cat", "mat", "sat on", "on"],
                                     "ngram_range": (1, 2)},
                                    {"vocabulary": {"the", "cat", "café", "ΟΔΟΣ", "οδος"}},
                                    {"vocabulary": ["the", 1, b"cat", "bad\ud800x"], "lowercase": False},
                                    {"vocabulary": {"the": np.int64(0), "mat": np.int32(1)}, "binary": True}],
                         ids=["dict", "list-ngram", "set", "non-str-terms", "numpy-indices"])
def test_given_vocabulary_equals_sklearn(params, kernels):
    ours = compare_count(EDGE_DOCS, params, other=["the cat", "sat on the mat", "ΟΔΟΣ"])
    assert ours.fixed_vocabulary_
    # transform without fit works with a given vocabulary, as in scikit-learn
    fresh = BagOfWords(**params)
    assert_same(fresh.transform(EDGE_DOCS), CountVectorizer(**params).transform(EDGE_DOCS))


def test_sklearn_count_output_is_not_canonical(sentences):
    # Why the comparisons sort scikit-learn's matrix first: its rows come out unsorted.
    X = CountVectorizer().fit_transform(sentences)
    assert not rows_sorted(X)
    assert rows_sorted(BagOfWords().fit_transform(sentences))
    # HashingVectorizer's output is canonical (sum_duplicates sorts it).
    assert rows_sorted(HashingVectorizer(alternate_sign=False, norm=None).fit_transform(sentences))


HASH_PARAMS = [
    {},
    {"n_features": 1},
    {"n_features": 7},
    {"n_features": 1000},
    {"n_features": 2**31 - 2},
    {"ngram_range": (1, 3)},
    {"ngram_range": (2, 2), "stop_words": ["the", "a"]},
    {"lowercase": False, "n_features": 2**10},
    {"binary": True},
    {"dtype": np.float32, "n_features": 64},
    {"dtype": np.int8, "n_features": 2},
    {"dtype": np.int64},
    {"dtype": np.bool_, "n_features": 16},
    {"dtype": np.complex64, "n_features": 16},
    {"token_pattern": r"(?u)\b\w+\b"},
    {"tokenizer": str.split, "token_pattern": None},
    {"analyzer": lambda d: d.split()},
]


@pytest.mark.parametrize("params", HASH_PARAMS, ids=[str(p) for p in HASH_PARAMS])
def test_hashing_equals_sklearn(sentences, params, kernels):
    docs = sentences[:1500] + EDGE_DOCS + ["long " * 300 + "word"]
    if "tokenizer" in params or "analyzer" in params:
        # a token with a lone surrogate has no UTF-8 to hash (test_hashing_surrogate_token)
        docs = [d for d in docs if "\ud800" not in d]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = HashingVectorizer(alternate_sign=False, norm=None, **params).fit_transform(docs)
        ours = HashingBagOfWords(**params)
        assert_same(ours.fit_transform(docs), ref, str(params))
        assert_same(ours.transform(docs[::-1]), HashingVectorizer(alternate_sign=False, norm=None, **params)
                    .transform(docs[::-1]), str(params))


def test_hashing_surrogate_token():
    # Only a custom tokenizer makes a token holding a lone surrogate: it cannot be hashed, in either library.
    docs = ["ok bad\ud800x"]
    for est in (HashingBagOfWords(tokenizer=str.split), HashingVectorizer(tokenizer=str.split)):
        with pytest.raises(UnicodeEncodeError):
            est.fit_transform(docs)
    # The default pattern never makes one (a surrogate is not \w).
    assert_same(HashingBagOfWords().fit_transform(docs),
                HashingVectorizer(alternate_sign=False, norm=None).fit_transform(docs))


def test_hashing_hash_of_minus_2_to_31(kernels):
    # MurmurHash3("kw9de2ed9c") is -2**31, whose absolute value scikit-learn takes as 2**31.
    token = "kw9de2ed9c"
    assert _bow_py.murmurhash3_32(token) == -(2**31)
    docs = [f"{token} x {token} yy", token.upper()]
    for n in (1, 3, 1000, 2**20, 2**31 - 2):
        ref = HashingVectorizer(n_features=n, alternate_sign=False, norm=None).fit_transform(docs)
        assert_same(HashingBagOfWords(n_features=n).fit_transform(docs), ref, f"n_features={n}")
        assert ref[0, 2**31 % n] >= 2


def test_hashing_counts_add_up_in_dtype(kernels):
    # scikit-learn adds 1s in the output dtype: float32 stops at 2**24, int8 wraps around (and keeps a 0).
    docs = ["ab " * 256 + "cd", "ab"]
    for dtype in (np.int8, np.uint8):
        ref = HashingVectorizer(alternate_sign=False, norm=None, dtype=dtype, n_features=8)
        ref = ref.fit_transform(docs)
        assert_same(HashingBagOfWords(dtype=dtype, n_features=8).fit_transform(docs), ref, str(dtype))
        assert 0 in ref.data


# ----------------------------------------------------------------------------------------------------------
# generated text (hypothesis)

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # only these two tests need hypothesis
    given = None

needs_hypothesis = pytest.mark.skipif(given is None, reason="hypothesis is not installed")


def _generated_text_equals_sklearn(docs, lowercase, ngram, stop):
    params = {"lowercase": lowercase, "ngram_range": ngram, "stop_words": stop}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            X_ref = CountVectorizer(**params).fit_transform(docs)
        except ValueError as exc:  # empty vocabulary: ours must say the same
            with pytest.raises(ValueError, match="empty vocabulary"):
                BagOfWords(**params).fit_transform(docs)
            assert "empty vocabulary" in str(exc)
        else:
            ours = BagOfWords(**params)
            assert_same(ours.fit_transform(docs), X_ref, repr(docs))
            if _compiled is not None:
                # the pure-Python fallback gives the same, term by term
                terms, indptr, indices, counts = _bow_py.count_new(
                    docs, lambda d, i: d, lowercase, frozenset(stop or ()), ngram[0], ngram[1], 1)
                assert terms == list(ours.get_feature_names_out())
                np.testing.assert_array_equal(indices, ours.fit_transform(docs).indices)
        H_ref = HashingVectorizer(alternate_sign=False, norm=None, n_features=2**12, **params)
        H_ref = H_ref.fit_transform(docs)
        assert_same(HashingBagOfWords(n_features=2**12, **params).fit_transform(docs), H_ref, repr(docs))


def _murmurhash3_equals_sklearn(key):
    from sklearn.utils import murmurhash3_32

    if isinstance(key, str):
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: scikit-learn cannot hash them either
            return
    expected = murmurhash3_32(key, seed=0)
    assert _bow_py.murmurhash3_32(key) == expected
    if _compiled is not None:
        assert _compiled.murmurhash3_32(key) == expected


if given is not None:
    doc_strategy = st.text(alphabet=st.sampled_from(list(ALPHABET)) | st.characters(), max_size=60)
    test_generated_text_equals_sklearn = settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )(given(docs=st.lists(doc_strategy, min_size=1, max_size=12), lowercase=st.booleans(),
            ngram=st.sampled_from([(1, 1), (1, 2), (2, 3)]),
            stop=st.sampled_from([None, ["ab", "é"], ["_", "日本"]]))(_generated_text_equals_sklearn))
    test_murmurhash3_equals_sklearn = settings(max_examples=300, deadline=None)(
        given(st.text(max_size=40) | st.binary(max_size=40))(_murmurhash3_equals_sklearn)
    )
else:
    @needs_hypothesis
    def test_generated_text_equals_sklearn():
        pass

    @needs_hypothesis
    def test_murmurhash3_equals_sklearn():
        pass


def test_murmurhash3_many_strings():
    from sklearn.utils import murmurhash3_32

    rng = random.Random(0)
    keys = ["", "a", "ab", "abc", "abcd", "abcde", "kw9de2ed9c", "日本", "😀", "é" * 7]
    keys += ["".join(rng.choice(ALPHABET[:-1]) for _ in range(rng.randrange(40))) for _ in range(3000)]
    keys += [bytes(rng.randrange(256) for _ in range(rng.randrange(30))) for _ in range(1000)]
    for seed in (0, 1, 2**32 - 1):
        expected = [murmurhash3_32(k, seed=seed) for k in keys]
        assert [_bow_py.murmurhash3_32(k, seed) for k in keys] == expected
        if _compiled is not None:
            assert [_compiled.murmurhash3_32(k, seed) for k in keys] == expected


# ----------------------------------------------------------------------------------------------------------
# big documents, threads, the fallback


def test_ten_megabyte_word(kernels):
    word = "Ab" * (5 * 2**20)  # one token of 10 MiB
    docs = [word, "x " + word + " y " + word.lower(), "", "ab"]
    for params in ({}, {"ngram_range": (1, 2)}, {"lowercase": False}):
        compare_count(docs, params)
        assert_same(HashingBagOfWords(**params).fit_transform(docs),
                    HashingVectorizer(alternate_sign=False, norm=None, **params).fit_transform(docs))


def test_large_vocabulary_paths(kernels):
    # Over 2**18 columns the rows are ordered by comparison sorts instead of the column bitmap.
    docs = [" ".join(f"w{d:04d}x{k:03d}" for k in range(100)) + " common" for d in range(2700)]
    ours = compare_count(docs, {}, other=[docs[5] + " " + docs[2000], "common w0001x001"])
    assert len(ours.vocabulary_) > 2**18
    compare_count(docs[:1000], {"vocabulary": ours.vocabulary_}, other=docs[1000:1500])


def test_long_document_of_many_tokens(kernels):
    rng = random.Random(1)
    words = ["w%d" % i for i in range(5000)] + ["日本%d" % i for i in range(300)]
    doc = " ".join(rng.choice(words) for _ in range(60000))  # one row longer than the short-row sorts handle
    compare_count([doc, doc[:1000]], {"ngram_range": (1, 2)})
    compare_count([doc], {"vocabulary": sorted(set(doc.split()))[:4000]})
    assert_same(HashingBagOfWords().fit_transform([doc]),
                HashingVectorizer(alternate_sign=False, norm=None).fit_transform([doc]))


@needs_compiled
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_give_the_same_output(sentences, threads):
    # Enough characters for the kernels to split the work, and vocabularies that differ between the ranges the
    # threads get, so merging their tables matters.
    docs = sentences * 10 + [" ".join(f"w{i}x{j % 97} Ünï{j}" for j in range(60)) for i in range(3000)]
    docs += sentences[::-1] * 3
    saved = pf.get_num_threads()
    try:
        pf.set_num_threads(1)
        ref = BagOfWords(ngram_range=(1, 2)).fit(docs)
        X1 = ref.transform(docs)
        H1 = HashingBagOfWords().transform(docs)
        pf.set_num_threads(threads)
        ours = BagOfWords(ngram_range=(1, 2))
        X = ours.fit_transform(docs)
        assert ours.vocabulary_ == ref.vocabulary_
        assert_same(X, X1)
        assert_same(ours.transform(docs), X1)
        assert_same(HashingBagOfWords().transform(docs), H1)
    finally:
        pf.set_num_threads(saved)


@needs_compiled
@pytest.mark.parametrize("name", ["count_new", "count_fixed", "hash_counts"])
def test_fallback_module_matches_compiled(sentences, name):
    docs = sentences[:700] + EDGE_DOCS + [b"bytes doc", "Ab" * 2000]
    decode = vectorizers._make_decode("content", "utf-8", "strict", True)
    stop = frozenset(["the", "and"])
    for lower, lo, hi in ((True, 1, 1), (False, 1, 3), (True, 2, 2)):
        if name == "count_new":
            args = ()
        elif name == "count_fixed":
            vocab = BagOfWords(ngram_range=(lo, hi), lowercase=lower).fit(sentences[:300]).vocabulary_
            args = (vocab,)
        else:
            args = (2**16,)
        res = []
        for mod in (_compiled, _bow_py):
            extra = (mod.make_table(args[0]),) if name == "count_fixed" else args
            res.append(getattr(mod, name)(docs, decode, lower, stop, lo, hi, *extra, 2))
        if name == "count_new":
            assert res[0][0] == res[1][0]
            res = [r[1:] for r in res]
        for a, b in zip(*res):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_kernel_contract_names():
    # The fallback offers every public function of the compiled module (the contract), and nothing of it is
    # missing when the extension is absent.
    contract = {"count_new", "count_fixed", "hash_counts", "make_table", "murmurhash3_32"}
    assert contract <= set(dir(_bow_py))
    if _compiled is not None:
        assert contract <= set(dir(_compiled))


def test_outputs_are_writable_and_own_their_memory(kernels):
    X = BagOfWords().fit_transform(["a bb cc bb", "dd"])
    assert X.data.flags.writeable and X.indices.flags.writeable
    X.data[:] = 7
    assert X.toarray().tolist() == [[7, 7, 0], [0, 0, 7]]
    H = HashingBagOfWords(n_features=16).fit_transform(["bb cc"])
    H.data *= 2
    assert H.sum() == 4
    data = X.data
    del X, H  # the arrays keep their buffers alive (the sanitizer job would catch a use after free)
    assert data.tolist() == [7, 7, 7]


# ----------------------------------------------------------------------------------------------------------
# documents: bytes, files, decoding


def test_bytes_documents_decode_as_sklearn(kernels):
    docs = ["Café crème", "café".encode("utf-8"), "naïve".encode("latin-1"), b"plain ascii"]
    for params in ({"encoding": "latin-1"}, {"decode_error": "replace"}, {"decode_error": "ignore"}):
        compare_count(docs, params)
        assert_same(HashingBagOfWords(**params).fit_transform(docs),
                    HashingVectorizer(alternate_sign=False, norm=None, **params).fit_transform(docs))
    with pytest.raises(UnicodeDecodeError, match="document 2"):
        BagOfWords().fit_transform(docs)


def test_input_file_and_filename(tmp_path, kernels):
    texts = ["the cat sat", "Le café, l'été", "日本語 日本語"]
    paths = []
    for i, t in enumerate(texts):
        p = tmp_path / f"doc{i}.txt"
        p.write_bytes(t.encode("utf-8"))
        paths.append(str(p))
    compare_count(paths, {"input": "filename"})
    files = [io.BytesIO(t.encode("utf-8")) for t in texts]
    X = BagOfWords(input="file").fit_transform(files)
    assert_same(X, CountVectorizer().fit_transform(texts))


def test_document_types_accepted(kernels):
    # numpy str arrays, str subclasses, tuples and generators of documents
    docs = np.array(["the cat", "the hat", "ΟΔΟΣ"])
    compare_count(docs, {})

    class Text(str):
        pass

    compare_count([Text("The Cat"), "the cat", Text("ΟΔΟΣ")], {})

    class Shouting(str):
        def lower(self):  # scikit-learn calls the document's own lower()
            return self.upper()

    compare_count([Shouting("The Cat"), "the cat"], {"lowercase": True})
    X = BagOfWords().fit_transform(d for d in ("a bb", "bb cc"))
    assert X.shape == (2, 2)


# ----------------------------------------------------------------------------------------------------------
# the estimator protocol


def test_params_clone_repr():
    from sklearn.base import clone

    b = BagOfWords(ngram_range=(1, 2), min_df=2, stop_words=["x"])
    assert b.get_params()["ngram_range"] == (1, 2)
    assert repr(b) == "BagOfWords(min_df=2, ngram_range=(1, 2), stop_words=['x'])"
    c = clone(b)
    assert c.get_params() == b.get_params() and c is not b
    assert b.set_params(min_df=1, binary=True) is b and b.binary
    with pytest.raises(ValueError, match="Invalid parameter 'nope' for estimator BagOfWords"):
        b.set_params(nope=1)
    assert repr(HashingBagOfWords()) == "HashingBagOfWords()"
    assert set(HashingBagOfWords().get_params()) == {
        "input", "encoding", "decode_error", "lowercase", "preprocessor", "tokenizer", "stop_words",
        "token_pattern", "ngram_range", "analyzer", "n_features", "binary", "dtype"}


def test_pickle_round_trip(sentences, kernels):
    b = BagOfWords(ngram_range=(1, 2)).fit(sentences[:500])
    X = b.transform(sentences[500:700])  # builds the compiled lookup table, which is not pickled
    b2 = pickle.loads(pickle.dumps(b))
    assert b2.vocabulary_ == b.vocabulary_
    assert_same(b2.transform(sentences[500:700]), X)
    h = pickle.loads(pickle.dumps(HashingBagOfWords(n_features=128)))
    assert h.n_features == 128


def test_pipeline_and_grid_search(sentences):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    _, y, _ = pf.datasets.load_sentiment()
    docs, y = sentences[:1200], y[:1200]
    pipe = make_pipeline(BagOfWords(), LogisticRegression(max_iter=300))
    grid = GridSearchCV(pipe, {"bagofwords__ngram_range": [(1, 1), (1, 2)],
                               "bagofwords__binary": [False, True]}, cv=3)
    grid.fit(docs, y)
    assert grid.best_score_ > 0.6
    ref = GridSearchCV(make_pipeline(CountVectorizer(), LogisticRegression(max_iter=300)),
                       {"countvectorizer__ngram_range": [(1, 1), (1, 2)],
                        "countvectorizer__binary": [False, True]}, cv=3).fit(docs, y)
    np.testing.assert_allclose(grid.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"])
    hashed = make_pipeline(HashingBagOfWords(n_features=2**12), LogisticRegression(max_iter=300))
    assert hashed.fit(docs, y).score(docs, y) > 0.8


def test_sklearn_tags():
    from sklearn.utils import get_tags

    assert get_tags(BagOfWords()).input_tags.string
    assert get_tags(BagOfWords()).requires_fit
    assert not get_tags(HashingBagOfWords()).requires_fit


def test_import_loads_neither_sklearn_nor_scipy(run_python):
    # On the numba backend numba itself imports SciPy, so what counts is what pyfastnn.text adds.
    r = run_python(
        "import sys, pyfastnn\n"
        "before = set(sys.modules)\n"
        "import pyfastnn.text\n"
        "added = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('sklearn', 'scipy'))\n"
        "print(added, 'sklearn' in sys.modules)"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[] False"


# ----------------------------------------------------------------------------------------------------------
# bad input: the same exception types as scikit-learn, with clear messages


def both_raise(exc, match, make_args, call="fit_transform", docs=("the cat", "a dog")):
    """Ours raises exc matching ``match``; scikit-learn raises an exception of the same type."""
    kw_ours, kw_ref = make_args() if callable(make_args) else (make_args, make_args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc, match=match):
            getattr(BagOfWords(**kw_ours), call)(list(docs) if not isinstance(docs, str) else docs)
        with pytest.raises(exc):
            getattr(CountVectorizer(**kw_ref), call)(list(docs) if not isinstance(docs, str) else docs)


def test_single_string_instead_of_documents():
    for call in ("fit", "fit_transform"):
        both_raise(ValueError, "Iterable over raw text documents expected, string object received", {}, call,
                   docs="the cat")
    with pytest.raises(ValueError, match="string object received"):
        BagOfWords().fit(["xx yy"]).transform("the cat")
    for est in (HashingBagOfWords(), HashingVectorizer()):
        for call in ("fit", "transform", "fit_transform"):
            with pytest.raises(ValueError, match="string object received"):
                getattr(est, call)("the cat")
    with pytest.raises(ValueError, match="bytes object received"):
        BagOfWords().fit_transform(b"the cat")
    with pytest.raises(TypeError, match="expected an iterable over raw text documents"):
        BagOfWords().fit_transform(5)


@pytest.mark.parametrize("bad, exc, match", [
    (None, TypeError, "document 1 is NoneType"),
    (3, TypeError, "document 1 is int"),
    (2.5, TypeError, "document 1 is float"),
    (["a", "b"], TypeError, "document 1 is list"),
    (float("nan"), ValueError, "document 1 is nan"),
    (np.nan, ValueError, "document 1 is nan"),
])
def test_non_text_documents(bad, exc, match, kernels):
    docs = ["the cat", bad, "a dog"]
    for est in (BagOfWords(), HashingBagOfWords()):
        with pytest.raises(exc, match=match):
            est.fit_transform(docs)
    fitted = BagOfWords().fit(["the cat"])
    with pytest.raises(exc, match=match):
        fitted.transform(docs)


def test_nan_document_like_sklearn():
    both_raise(ValueError, "np.nan is an invalid document", {}, docs=("a b c", np.nan))


def test_callable_analyzer_receives_any_document():
    # As in scikit-learn, a callable analyzer sees the document as it is (here pre-tokenized lists).
    docs = [["the", "cat"], ["the", "the", "hat"]]
    X = BagOfWords(analyzer=lambda d: d).fit_transform(docs)
    assert_same(X, CountVectorizer(analyzer=lambda d: d).fit_transform(docs))


@pytest.mark.parametrize("vocabulary, match", [
    ({"a": 0, "b": 0}, "Vocabulary contains repeated indices."),
    ({"a": 0, "b": 2}, "Vocabulary of size 2 doesn't contain index 1."),
    ({"a": 1, "b": 2}, "Vocabulary of size 2 doesn't contain index 0."),
    (["a", "b", "a"], "Duplicate term in vocabulary: 'a'"),
    ({}, "empty vocabulary passed to fit"),
    ([], "empty vocabulary passed to fit"),
])
def test_bad_vocabulary(vocabulary, match):
    both_raise(ValueError, match, {"vocabulary": vocabulary})
    both_raise(ValueError, match, {"vocabulary": vocabulary}, call="transform")


def test_vocabulary_of_wrong_type():
    with pytest.raises(TypeError, match="vocabulary must be a mapping or an iterable of terms, got int"):
        BagOfWords(vocabulary=5).fit(["a b"])
    with pytest.raises(TypeError, match="got str"):
        BagOfWords(vocabulary="abc").fit(["a b"])


def test_ngram_range_min_above_max():
    both_raise(ValueError,
               r"Invalid value for ngram_range=\(2, 1\) lower boundary larger than the upper boundary",
               {"ngram_range": (2, 1)})
    with pytest.raises(ValueError, match="lower boundary larger"):
        HashingBagOfWords(ngram_range=(2, 1)).fit_transform(["a b"])
    with pytest.raises(ValueError, match="min_n >= 1"):
        BagOfWords(ngram_range=(0, 2)).fit(["ab cd"])
    with pytest.raises(TypeError, match="ngram_range must be a tuple"):
        BagOfWords(ngram_range=(1.0, 2)).fit(["ab cd"])


def test_min_df_above_max_df():
    docs = ["aa bb", "aa cc", "aa dd", "ee ff"]
    both_raise(ValueError, "max_df corresponds to < documents than min_df", {"min_df": 3, "max_df": 2},
               docs=docs)
    both_raise(ValueError, "max_df corresponds to < documents than min_df", {"min_df": 0.9, "max_df": 0.5},
               docs=docs)


def test_empty_vocabulary_after_pruning_and_empty_corpus(kernels):
    docs = ["aa bb", "cc dd"]
    both_raise(ValueError, "After pruning, no terms remain", {"min_df": 2}, docs=docs)
    both_raise(ValueError, "After pruning, no terms remain", {"max_df": 1}, docs=docs + docs)
    both_raise(ValueError, "empty vocabulary; perhaps the documents only contain stop words", {}, docs=[])
    both_raise(ValueError, "empty vocabulary", {}, docs=["", "a b c", "!!"])
    both_raise(ValueError, "empty vocabulary", {"stop_words": ["aa", "bb"]}, docs=["aa bb", "AA"])
    # scikit-learn 1.9's HashingVectorizer lets a StopIteration escape here; its message for this case is:
    with pytest.raises(ValueError, match="Cannot vectorize empty sequence"):
        HashingBagOfWords().transform([])
    # transform of no documents with a vocabulary: an empty matrix, as in scikit-learn
    fitted = BagOfWords().fit(docs)
    assert fitted.transform([]).shape == (0, 4) == CountVectorizer().fit(docs).transform([]).shape


def test_transform_before_fit():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        BagOfWords().transform(["a b"])
    with pytest.raises(NotFittedError):
        BagOfWords().get_feature_names_out()
    with pytest.raises(NotFittedError):
        CountVectorizer().transform(["a b"])


@pytest.mark.parametrize("params, exc, match", [
    ({"min_df": 0}, ValueError, "min_df must be an int >= 1"),
    ({"max_df": 1.5}, ValueError, r"max_df as a float .* must be in \[0.0, 1.0\]"),
    ({"max_df": "all"}, TypeError, "max_df must be an int >= 1 or a float"),
    ({"min_df": True}, TypeError, "min_df must be an int >= 1 or a float"),
    ({"max_features": 0}, ValueError, "max_features must be None or an int >= 1"),
    ({"max_features": 2.5}, ValueError, "max_features must be None or an int >= 1"),
    ({"lowercase": "yes"}, TypeError, "lowercase must be True or False"),
    ({"binary": 1}, TypeError, "binary must be True or False"),
    ({"dtype": object}, TypeError, "dtype must be a NumPy numeric dtype"),
    ({"dtype": "not a dtype"}, TypeError, "dtype must be a NumPy numeric dtype"),
    ({"dtype": np.float16}, ValueError, "float16 is not supported by scipy.sparse"),
    ({"stop_words": "french"}, ValueError, "not a built-in stop list: french"),
    ({"stop_words": 5}, TypeError, "stop_words must be None, 'english' or a list"),
    ({"analyzer": "char"}, ValueError, "word n-grams only"),
    ({"analyzer": "words"}, ValueError, "analyzer must be 'word' or a callable"),
    ({"token_pattern": "(unclosed"}, ValueError, "not a valid regular expression"),
    ({"token_pattern": r"(\w)(\w)"}, ValueError, "More than 1 capturing group"),
    ({"token_pattern": None}, TypeError, "token_pattern must be a regular expression str"),
    ({"tokenizer": "split"}, TypeError, "tokenizer must be None or a callable"),
    ({"input": "url"}, ValueError, "input must be 'content', 'file' or 'filename'"),
    ({"decode_error": "surrogateescape"}, ValueError, "decode_error must be 'strict', 'ignore' or 'replace'"),
    ({"encoding": 8}, TypeError, "encoding must be a str"),
])
def test_bad_parameters(params, exc, match):
    with pytest.raises(exc, match=match):
        BagOfWords(**params).fit_transform(["the cat", "a dog"])
    if "min_df" not in params and "max_df" not in params and "max_features" not in params:
        with pytest.raises(exc, match=match):
            HashingBagOfWords(**params).fit_transform(["the cat", "a dog"])


def test_unknown_encoding_names_the_parameter():
    with pytest.raises(LookupError, match="encoding='no-such-codec' is not a known codec"):
        BagOfWords(encoding="no-such-codec").fit_transform([b"abc def"])


@pytest.mark.parametrize("n, exc", [(0, ValueError), (2**31 - 1, ValueError), (-3, ValueError),
                                    (2.0, TypeError), (True, TypeError)])
def test_bad_n_features(n, exc):
    with pytest.raises(exc, match="n_features"):
        HashingBagOfWords(n_features=n).fit_transform(["a b"])


def test_warnings_as_sklearn():
    with pytest.warns(UserWarning, match="stop_words may be inconsistent"):
        BagOfWords(stop_words=["don't"]).fit(["don't stop"])
    with pytest.warns(UserWarning, match="Upper case characters found in vocabulary"):
        BagOfWords(vocabulary=["The", "cat"]).fit(["the cat"])
    with pytest.warns(UserWarning, match="'token_pattern' will not be used"):
        BagOfWords(tokenizer=str.split).fit(["the cat"])


# ----------------------------------------------------------------------------------------------------------
# the bundled data and load_text


def test_bag_of_words_of_the_sentences_learns(sentences):
    # The featurizer feeds a classifier: a plain linear model on its counts separates the sentences.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    _, y, _ = pf.datasets.load_sentiment()
    X = BagOfWords(binary=True, ngram_range=(1, 2)).fit_transform(sentences)
    assert cross_val_score(LogisticRegression(max_iter=500), X, y, cv=5).mean() > 0.75


def test_kernel_info():
    # Which kernels run: both answers are valid installs, but the answer must be true.
    info = kernel_info()
    assert set(info) == {"compiled", "reason"}
    assert info["compiled"] == (_compiled is not None)
    assert info["compiled"] == (vectorizers._kernels() is _compiled)
    assert bool(info["reason"]) != info["compiled"]


def test_hashing_is_stateless():
    h = HashingBagOfWords(n_features=32)
    assert h.fit(["a b"]) is h and h.partial_fit(["x"]) is h
    assert h.transform(["ab cd"]).shape == (1, 32)
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(h))
