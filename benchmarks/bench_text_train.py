"""Text file → trained bag-of-words classifier, end to end: pyfastnn against fastText, side by side in one run.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_text_train.py [--docs 200000]
        [--words 60] [--repeat 3] [--threads 2] [--quick]

Needs fastText's Python package (``pip install fasttext-numpy2-wheel``) and scikit-learn (for the folds).

Speed. A generated corpus (benchmarks/bench_text.py's generator: Zipf-distributed made-up words, ~``--words``
per document; a document's label is the sign of its words' random weights, so it can be learnt) is written to
disk twice, as ``label<TAB>text`` for pyfastnn and as ``__label__label text`` for fastText. Each timed run
starts from the file:

  pyfastnn   ``pf.datasets.load_text`` → ``BagOfWords().fit_transform`` → ``MLP([V, 128, 2]).fit(...,
             epochs=1)`` with the defaults of ``pyfastnn train --text`` (Adam, lazy sparse updates, batch 32)
  fastText   ``fasttext.train_supervised(path, dim=128, epoch=1, thread=T)``

Both rates divide the same token count (the file's whitespace-separated words) by the wall time; the runs
alternate and the median of ``--repeat`` is kept. The accuracy on a held-out fifth of the corpus is printed
for both, so neither wins by not learning.

Accuracy. On the bundled review sentences, stratified 5-fold cross-validation (the same folds for both):
pyfastnn with the defaults of ``pyfastnn train --text`` (BagOfWords, 64 hidden ReLU, Adam, 5 epochs) and
fastText with word bigrams (``wordNgrams=2``, its other defaults), on lower-cased text.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

import pyfastnn as pf
from pyfastnn.benchmark import LoadMonitor, cpu_model, pinning_warning
from pyfastnn.text import BagOfWords

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_text import make_corpus  # noqa: E402  (the generator of the featurizer benchmark)


def write_corpus(folder, texts, labels):
    ours, theirs = os.path.join(folder, "corpus.tsv"), os.path.join(folder, "corpus.fasttext")
    with open(ours, "w", encoding="utf-8") as f:
        f.writelines(f"{y}\t{t}\n" for t, y in zip(texts, labels))
    with open(theirs, "w", encoding="utf-8") as f:
        f.writelines(f"__label__{y} {t}\n" for t, y in zip(texts, labels))
    return ours, theirs


def pyfastnn_run(path, hidden=128):
    """File to trained classifier; returns (seconds, the featurizer, the network)."""
    t0 = time.perf_counter()
    texts, y = pf.datasets.load_text(path, text_column=1, label_column=0, delimiter="\t")
    bow = BagOfWords(dtype=np.float32)
    x = bow.fit_transform(texts)
    net = pf.MLP([x.shape[1], hidden, 2], seed=0)
    net.fit(x, y, optimizer=pf.Adam(1e-3), batch_size=32, epochs=1, seed=0, progress=False)
    return time.perf_counter() - t0, bow, net


def fasttext_run(fasttext, path, threads, dim=128):
    t0 = time.perf_counter()
    model = fasttext.train_supervised(input=path, dim=dim, epoch=1, thread=threads, verbose=0)
    return time.perf_counter() - t0, model


def fasttext_labels(model, texts):
    return np.array([int(labels[0].removeprefix("__label__")) for labels in model.predict(list(texts))[0]])


def sentence_folds(fasttext, folder):
    """5-fold accuracy (mean, std) of both on the bundled review sentences."""
    from sklearn.model_selection import StratifiedKFold

    texts, y, _ = pf.datasets.load_sentiment()
    texts = np.array([t.lower().replace("\n", " ") for t in texts], dtype=object)
    ours, theirs = [], []
    for k, (tr, te) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y)):
        bow = BagOfWords(dtype=np.float32)
        x_train, x_test = bow.fit_transform(list(texts[tr])), bow.transform(list(texts[te]))
        net = pf.MLP([x_train.shape[1], 64, 2], seed=k)
        net.fit(x_train, y[tr], optimizer=pf.Adam(1e-3), batch_size=32, epochs=5, seed=k, progress=False)
        ours.append(net.accuracy(x_test, y[te]))
        path = os.path.join(folder, f"fold{k}.fasttext")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(f"__label__{label} {t}\n" for t, label in zip(texts[tr], y[tr]))
        model = fasttext.train_supervised(input=path, wordNgrams=2, seed=k, thread=1, verbose=0)
        theirs.append(float(np.mean(fasttext_labels(model, texts[te]) == y[te])))
    return (np.mean(ours), np.std(ours)), (np.mean(theirs), np.std(theirs))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--words", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="20,000 documents, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.repeat = 20_000, 1
    try:
        import fasttext
    except ImportError as exc:
        sys.exit(f"fastText is not importable ({exc}): pip install fasttext-numpy2-wheel")
    warning = pinning_warning("python benchmarks/bench_text_train.py")
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    pf.set_num_threads(args.threads)

    texts = make_corpus(args.docs, args.words, seed=1)
    weights = np.random.default_rng(2).standard_normal(1 << 20)
    counts = BagOfWords(dtype=np.float32).fit_transform(texts)
    score = counts @ weights[: counts.shape[1]]
    labels = (score > np.median(score)).astype(np.int64)
    tokens = sum(len(t.split()) for t in texts)
    n_test = args.docs // 5
    monitor = LoadMonitor()
    with tempfile.TemporaryDirectory() as folder:
        ours_path, theirs_path = write_corpus(folder, texts[n_test:], labels[n_test:])
        train_tokens = sum(len(t.split()) for t in texts[n_test:])
        times = {"pyfastnn": [], "fastText": []}
        busy = []
        for _ in range(args.repeat):
            time.sleep(0.3)  # the other library's threads go idle
            mark = monitor.start()
            seconds, bow, net = pyfastnn_run(ours_path)
            times["pyfastnn"].append(seconds)
            time.sleep(0.3)
            seconds, model = fasttext_run(fasttext, theirs_path, args.threads)
            times["fastText"].append(seconds)
            busy.append(monitor.foreign(mark))
        held_out = texts[:n_test]
        acc_ours = net.accuracy(bow.transform(held_out), labels[:n_test])
        acc_theirs = float(np.mean(fasttext_labels(model, [t.replace("\n", " ") for t in held_out])
                                   == labels[:n_test]))
        (ours_cv, ours_sd), (theirs_cv, theirs_sd) = sentence_folds(fasttext, folder)

    rate = {k: train_tokens / statistics.median(v) for k, v in times.items()}
    print("# Text file to trained classifier: pyfastnn vs fastText\n")
    print(f"- CPU: {cpu_model()}; {args.threads} threads for both; pyfastnn {pf.__version__} "
          f"({pf.get_backend()} backend), fastText {getattr(fasttext, '__version__', '(pip fasttext-numpy2-wheel)')}")
    print(f"- corpus: {args.docs - n_test:,} generated documents to train ({train_tokens:,} tokens, "
          f"~{args.words} words each), {n_test:,} held out; median of {args.repeat} run(s)")
    if busy and statistics.mean(busy) > 0.25:
        print(f"- WARNING: other processes used {statistics.mean(busy):.2f} CPUs on average during the runs")
    print()
    print("| | seconds | tokens/s | ratio | held-out accuracy |")
    print("|---|---:|---:|---:|---:|")
    for name, acc in (("pyfastnn: load_text + BagOfWords + MLP(128) 1 epoch", acc_ours),
                      ("fastText: train_supervised(dim=128, epoch=1)", acc_theirs)):
        key = name.split(":")[0]
        print(f"| {name} | {statistics.median(times[key]):.2f} | {rate[key] / 1e6:.2f}M | "
              f"{rate[key] / rate['fastText']:.2f} | {acc:.3f} |")
    print()
    print("Review sentences, stratified 5-fold accuracy (same folds):")
    print(f"- pyfastnn (BagOfWords, [V, 64, 2] ReLU, Adam, 5 epochs): {ours_cv:.3f} ± {ours_sd:.3f}")
    print(f"- fastText (wordNgrams=2, defaults otherwise): {theirs_cv:.3f} ± {theirs_sd:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
