"""Tokens/s of pyfastnn.text against scikit-learn's vectorizers, side by side in one process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_text.py [--docs 100000] [--words 60]
        [--repeat 5] [--threads 1,2] [--quick]   # --quick: 10,000 documents

The corpus is generated: ``--docs`` documents of about ``--words`` words each, drawn from a Zipf-distributed
vocabulary of 30,000 made-up words of 2-9 letters, some capitalised, with punctuation and digits here and
there, so the vocabulary, the token lengths and the repeats within a document look like English text.

Rows (the same documents, each timed call from the list of ``str`` to the finished CSR matrix):

  CountVectorizer.fit_transform          scikit-learn, default parameters
  BagOfWords.fit_transform               pyfastnn, same parameters, 1 and 2 threads (pf.set_num_threads)
  CountVectorizer.transform / BagOfWords.transform (fitted vocabulary)
  HashingVectorizer.fit_transform        scikit-learn with alternate_sign=False, norm=None
  HashingBagOfWords.fit_transform        pyfastnn, 1 and 2 threads

Tokens/s counts the tokens of the default pattern (the sum of the count matrix), the same for every row. The
runs alternate between the rows so drift hits all alike; the table gives the median over ``--repeat`` runs and
the ratio to the scikit-learn row of the same task. The outputs are checked to be identical first.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

import pyfastnn as pf
from pyfastnn.benchmark import LoadMonitor, cpu_model, pinning_warning, usable_cpus
from pyfastnn.text import BagOfWords, HashingBagOfWords, kernel_info

try:
    import sklearn
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
except ImportError as exc:  # pragma: no cover - the comparison needs scikit-learn
    sys.exit(f"scikit-learn is not importable ({exc}): pip install scikit-learn")


def make_corpus(n_docs, n_words, seed=0, vocab=30000):
    """``n_docs`` documents of about ``n_words`` words (Zipf-distributed, exponent 1.07) as a list of str."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", dtype=np.uint8)
    freq = 1.0 / np.arange(1, 27) ** 0.9
    lengths = rng.integers(2, 10, size=vocab)
    chars = rng.choice(letters, size=int(lengths.sum()), p=freq / freq.sum())
    cuts = np.cumsum(lengths)[:-1]
    words = np.array([w.tobytes().decode() for w in np.split(chars, cuts)], dtype=object)
    digits = rng.random(vocab) < 0.02
    words[digits] = [f"{w}{i % 100}" for i, w in enumerate(words[digits])]
    p = 1.0 / np.arange(1, vocab + 1) ** 1.07
    sizes = np.maximum(1, rng.poisson(n_words, size=n_docs))
    picks = words[rng.choice(vocab, size=int(sizes.sum()), p=p / p.sum())]
    caps = rng.random(len(picks)) < 0.05
    picks[caps] = [w.capitalize() for w in picks[caps]]
    seps = np.array([" "] * 14 + [", ", ". ", "! ", " - ", " (", ") "], dtype=object)
    glue = seps[rng.integers(0, len(seps), size=len(picks))]
    docs, at = [], 0
    for n in sizes:
        docs.append("".join(a + b for a, b in zip(picks[at:at + n], glue[at:at + n])))
        at += n
    return docs


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _check_equal(a, b, what):
    b = b.copy()
    b.sort_indices()
    same = (a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data))
    if not same:
        sys.exit(f"{what}: pyfastnn's output differs from scikit-learn's; not benchmarking a wrong answer")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--words", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per row (default 5; 3 with --quick)")
    ap.add_argument("--threads", default="1,2", help="thread counts for pyfastnn (comma-separated)")
    ap.add_argument("--quick", action="store_true", help="10,000 documents, 3 repeats")
    args = ap.parse_args(argv)
    if args.quick:
        args.docs = 10_000
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    threads = [int(t) for t in args.threads.split(",")]

    print(f"# bench_text: {' '.join(sys.argv)}")
    print(f"# CPU: {cpu_model()}; usable CPUs: {usable_cpus()}")
    info = kernel_info()
    kernels = "compiled (Cython)" if info["compiled"] else f"pure Python ({info['reason']})"
    print(f"# pyfastnn {pf.__version__}, text kernels {kernels}; scikit-learn {sklearn.__version__}, "
          f"NumPy {np.__version__}, Python {sys.version.split()[0]}")
    warn = pinning_warning("python benchmarks/bench_text.py")
    if warn:
        print(f"# {warn}")
    docs = make_corpus(args.docs, args.words)
    X_ref = CountVectorizer().fit_transform(docs)
    n_tokens = int(X_ref.sum())
    chars = sum(len(d) for d in docs)
    print(f"# corpus: {len(docs)} documents, {n_tokens} tokens ({n_tokens / len(docs):.1f} per document), "
          f"{chars / 1e6:.1f} M characters, vocabulary {X_ref.shape[1]}")

    cv_fitted = CountVectorizer().fit(docs)
    bow_fitted = BagOfWords().fit(docs)

    def with_threads(n, fn):
        def run():
            pf.set_num_threads(n)
            return fn()
        return run

    # (task, row name, callable); the first row of each task is scikit-learn's, the reference of the ratios.
    rows = [("fit_transform", "CountVectorizer", lambda: CountVectorizer().fit_transform(docs))]
    rows += [("fit_transform", f"BagOfWords, {n} thread{'s' * (n > 1)}",
              with_threads(n, lambda: BagOfWords().fit_transform(docs))) for n in threads]
    rows += [("transform", "CountVectorizer", lambda: cv_fitted.transform(docs))]
    rows += [("transform", f"BagOfWords, {n} thread{'s' * (n > 1)}",
              with_threads(n, lambda: bow_fitted.transform(docs))) for n in threads]
    rows += [("hashing", "HashingVectorizer",
              lambda: HashingVectorizer(alternate_sign=False, norm=None).fit_transform(docs))]
    rows += [("hashing", f"HashingBagOfWords, {n} thread{'s' * (n > 1)}",
              with_threads(n, lambda: HashingBagOfWords().fit_transform(docs))) for n in threads]

    # Identical outputs first (also warms up every path).
    saved = pf.get_num_threads()
    for n in threads:
        pf.set_num_threads(n)
        _check_equal(BagOfWords().fit_transform(docs), X_ref, f"BagOfWords.fit_transform, {n} threads")
        _check_equal(bow_fitted.transform(docs), cv_fitted.transform(docs),
                     f"BagOfWords.transform, {n} threads")
        _check_equal(HashingBagOfWords().fit_transform(docs),
                     HashingVectorizer(alternate_sign=False, norm=None).fit_transform(docs),
                     f"HashingBagOfWords, {n} threads")
    pf.set_num_threads(saved)

    monitor = LoadMonitor()
    times = {name_task: [] for name_task in ((t, n) for t, n, _ in rows)}
    foreign = []
    for rep in range(args.repeat):
        mark = monitor.start()
        for task, name, fn in rows:
            times[(task, name)].append(_time(fn))
        foreign.append(monitor.foreign(mark))
        print(f"# repeat {rep + 1}/{args.repeat} done", file=sys.stderr)
    pf.set_num_threads(saved)

    print()
    print(f"| task | implementation | median s | M tokens/s | vs scikit-learn |")
    print(f"|---|---|---:|---:|---:|")
    ref = None
    for task, name, _ in rows:
        med = statistics.median(times[(task, name)])
        rate = n_tokens / med / 1e6
        if name in ("CountVectorizer", "HashingVectorizer"):
            ref = rate
        print(f"| {task} | {name} | {med:.3f} | {rate:.2f} | {rate / ref:.1f}x |")
    print()
    print(f"# other processes kept {statistics.mean(foreign):.2f} CPUs busy on average during the timed runs "
          f"(of {os.cpu_count()}); ratios are of runs interleaved in this process")


if __name__ == "__main__":
    main()
