"""The ``pyfastnn`` command: ``train`` (the main job), ``info``, ``bench`` and ``experiment``."""

import argparse
import contextlib
import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, _backend, datasets
from ._validation import is_sparse
from .activations import HIDDEN_ACTIVATIONS
from .io import _MAX_HEADER_BYTES
from .losses import LOSSES
from .network import MLP
from .optim import OPTIMIZERS, SGD, Adam

_FIRST_BYTES = 1 << 20  # a CSV header is looked for in the file's first MiB


def _layers(text):
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated hidden layer sizes like 256 or 128,64; got {text!r}")
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"hidden layer sizes must be >= 1; got {text!r}")
    return sizes


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}; got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}; got {text!r}")
        return value

    return parse


def _batch_size(text):
    if text == "full":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int or 'full'; got {text!r}")
    return value


def _check_output(path, option):
    """Fail before training, not after, when ``path`` cannot be written: its folder must exist and be
    writable, and the path must not be a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{option} {path}: is a folder; give a file name")
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: the folder {folder} is not writable")


def _build_parser():
    parser = argparse.ArgumentParser(prog="pyfastnn", description="Multilayer perceptrons trained by backpropagation.")
    parser.add_argument("--version", action="version", version=f"pyfastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a network (default: the bundled 8x8 handwritten digits) and report its test accuracy",
        description="Train an MLP classifier on a stratified train/test split and save it. Without --data it uses "
        "the bundled UCI 8x8 handwritten digits (1,797 images, CC BY 4.0).",
    )
    t.add_argument("--data", metavar="PATH", help="your own data: CSV with a label column, Parquet (.parquet, .pq; "
                   "needs pyarrow), .npz with X and y (or a scipy.sparse matrix with --labels), MNIST-format IDX "
                   "files (gzipped or not; give the images file or their folder); with --text a CSV/TSV of texts "
                   "and labels")
    t.add_argument("--text", action="store_true",
                   help="classify text: a bag-of-words network on the bundled UCI review sentences (positive / "
                   "negative), or on --data; saves the vocabulary with the network (see pyfastnn predict)")
    t.add_argument("--text-column", default="0", help="with --text: the column of the texts (default 0)")
    t.add_argument("--label-column", default="-1", help="CSV/Parquet label column: index or name (default: last)")
    t.add_argument("--ngrams", type=_positive(int), default=1,
                   help="with --text: word n-grams up to this length as features (default 1: single words)")
    t.add_argument("--min-df", type=_positive(int), default=1,
                   help="with --text: keep words found in at least this many training texts (default 1)")
    t.add_argument("--labels", metavar="PATH", default=None,
                   help="labels for a sparse matrix saved by scipy.sparse.save_npz (a .npy or a text file with one "
                   "label per line)")
    t.add_argument("--layers", type=_layers, default=None,
                   help="hidden layer sizes, comma-separated (default 256; --text: 64)")
    t.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu", help="hidden activation (default relu)")
    t.add_argument("--loss", choices=LOSSES, default="cross_entropy", help="loss (default cross_entropy)")
    t.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=None, help="sgd or adam (default adam)")
    t.add_argument("--lr", type=_positive(float), default=None, help="learning rate (default 0.05 sgd, 0.001 adam)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    t.add_argument("--weight-decay", type=float, default=None,
                   help="L2 penalty on the weights (default 1e-3; --text: 0)")
    t.add_argument("--batch-size", type=_batch_size, default=32,
                   help="mini-batch size; 1 = per-sample SGD, 'full' = full-batch GD")
    t.add_argument("--epochs", type=_positive(int), default=None, help="number of epochs (default 40; --text: 5)")
    t.add_argument("--test-size", type=float, default=0.25, help="fraction held out for testing (default 0.25)")
    t.add_argument("--no-standardize", action="store_true",
                   help="train on the raw features (default: standardize with the training split's mean and std, "
                   "folded into the first layer afterwards so the saved model takes raw inputs)")
    t.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and the shuffling")
    t.add_argument("--threads", type=_positive(int), default=None, help="threads for the compiled kernels")
    t.add_argument("--backend", choices=_backend.BACKENDS, default=None, help="kernel backend (default: best available)")
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--save", metavar="PATH", default="pyfastnn-model.npz", help="where to save the trained model")
    t.add_argument("--no-save", action="store_true", help="do not save the model")
    t.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel training under mpiexec -n N (needs pyfastnn[mpi]): every rank loads "
                   "the data and trains on its shard (rows r::N of the training split after a shuffle seeded "
                   "by --seed), or loads its own file when --data contains {rank}; --batch-size is per rank; "
                   "rank 0 prints and saves")
    t.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="write the training state to PATH after every epoch (atomically), to continue an "
                   "interrupted run with --resume")
    t.add_argument("--resume", action="store_true",
                   help="with --checkpoint: continue the run recorded in PATH (if PATH exists; else start "
                   "afresh) up to --epochs in total, ending exactly as the uninterrupted run; give the same "
                   "arguments")
    t.add_argument("--plot", metavar="PNG", nargs="?", const="pyfastnn-training.png", default=None,
                   help="write the loss and accuracy curves to a PNG (default name pyfastnn-training.png; "
                   "needs matplotlib)")

    pr = sub.add_parser(
        "predict", help="classify texts with a model saved by `pyfastnn train --text`",
        description="Print, for each text, its most probable class and that probability (tab-separated, then the "
        "text). Texts come from the command line, or one per line from standard input for '-'.",
    )
    pr.add_argument("model", metavar="MODEL", help="a model file written by `pyfastnn train --text`")
    pr.add_argument("texts", metavar="TEXT", nargs="+", help="a text to classify; '-' reads one text per line from "
                    "standard input")

    i = sub.add_parser("info", help="version, backends, threads and what the compiled core detected about this CPU")
    i.add_argument("--json", action="store_true",
                   help="print one JSON object: version, backend, backends (each with available and reason), "
                   "threads, cpu_info")

    from . import benchmark, experiments  # each adds its own subcommand's options

    benchmark.add_parser(sub)
    experiments.add_parser(sub)
    return parser


def _load(args):
    """(x, y, source, feature_names): y as the file writes the labels (names included), feature_names from a
    CSV header or None."""
    if args.data is not None and getattr(args, "comm", None) is not None:
        args = argparse.Namespace(**vars(args))
        args.data = _rank_path(args.data, args.comm.Get_rank())
    if args.data is None:
        x, y = datasets.load_digits(dtype=args.dtype)
        return x, y, "UCI 8x8 handwritten digits (bundled)", None
    ext = os.path.splitext(args.data.lower().removesuffix(".gz"))[1]
    if ext in (".parquet", ".pq") and args.labels is None:
        label = args.label_column
        label = int(label) if label.lstrip("-").isdigit() else label
        x, y, names = datasets.load_parquet(args.data, label_column=label, dtype=args.dtype, return_classes=True)
        features = datasets._parquet_feature_names(args.data, label)
        return x, (y if names is None else names[y]), args.data, features
    if ext not in (".csv", ".tsv", ".txt"):
        kw = {} if args.labels is None else {"labels": args.labels}
        x, y = datasets.load_data(args.data, **kw)
        x = x.astype(args.dtype) if is_sparse(x) else np.asarray(x, dtype=args.dtype)
        return x, np.asarray(y), args.data, None
    if args.labels is not None:
        raise ValueError(f"--labels is for a scipy.sparse .npz; {args.data} holds its own labels "
                         "(see --label-column)")
    # load_data's choice of delimiter, but load_csv itself, for the label names it can return
    delimiter = {".csv": ",", ".tsv": "\t"}.get(ext) or datasets._sniff_delimiter(Path(args.data))
    label = args.label_column
    label = int(label) if label.lstrip("-").isdigit() else label
    x, y, names = datasets.load_csv(args.data, label_column=label, delimiter=delimiter, dtype=args.dtype,
                                    return_classes=True)
    if names is not None:
        y = names[y]  # the labels as the file writes them, so the saved model can name them
    return x, y, args.data, _csv_feature_names(args.data, delimiter, label, x.shape[1])


def _csv_feature_names(path, delimiter, label, n_features):
    """The names of the feature columns from the header of a CSV that load_csv has read, or None when its
    first record is not a header of names. That record is a header when the label column was named, or
    when any of its feature cells is not a number (load_csv, having succeeded, skipped it)."""
    with open(path, "rb") as f:
        head = f.read(_FIRST_BYTES)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            head = f.read(_FIRST_BYTES)
    try:
        _, cells = next(datasets._split_rows(head.decode("utf-8-sig", errors="replace"), delimiter))
    except (StopIteration, ValueError):
        return None
    if len(cells) != n_features + 1 or (isinstance(label, str) and label.strip() not in cells):
        return None  # a record longer than the bytes read
    column = cells.index(label.strip()) if isinstance(label, str) else label % len(cells)
    names = cells[:column] + cells[column + 1 :]
    if isinstance(label, str) or not all(datasets._is_number(c) for c in names):
        return names
    return None


def _fold_standardization(net, mean, std):
    """Make net(x) equal the trained net((x − mean)/std): W' = W/std, b' = b − W' mean."""
    w = net.weights[0]
    w /= std.astype(w.dtype)
    net.biases[0] -= (w.astype(np.float64) @ mean).astype(w.dtype)


# The defaults of `pyfastnn train` that differ between numeric data (False) and text (True). Adam for numeric
# data: SGD's lr 0.05 with momentum 0.9 suits the 64 digit features but diverged on 784 MNIST-like ones, whose
# standardized rarely-lit pixels reach hundreds (Adam's steps do not grow with the inputs); on the digits Adam
# reaches the same accuracy (0.976-0.989 over seeds 0-2 against SGD's 0.978-0.991).
_TRAIN_DEFAULTS = {
    False: {"layers": [256], "optimizer": "adam", "weight_decay": 1e-3, "epochs": 40},
    # Measured on the bundled sentences by 5-fold cross-validation: 0.836 ± 0.008 after 5 epochs (10: 0.834,
    # bigrams 0.838, 128 units 0.838); scikit-learn's CountVectorizer + MLPClassifier(64): 0.821 ± 0.015.
    True: {"layers": [64], "optimizer": "adam", "weight_decay": 0.0, "epochs": 5},
}


def _rank_path(path, rank):
    """``path`` with ``{rank}`` replaced by the rank (and no other brace expanded)."""
    return path.replace("{rank}", str(rank))


def _numeric_data(args):
    """The numeric (dense or sparse) data split for training: (train, test, classes, source, describe, finish).
    Dense features are standardized with the training split's statistics; ``finish(net)`` folds that into the
    first layer, records the class labels and feature names, and returns what to save."""
    x, y, source, features = _load(args)
    if y.ndim != 1:
        raise ValueError(f"train needs one class label per sample; got labels of shape {y.shape}")
    comm = getattr(args, "comm", None)
    own_files = comm is not None and "{rank}" in (args.data or "")
    if own_files:  # the ranks' files may not all hold every class: the labels are those of any rank
        classes = np.unique(np.concatenate(comm.allgather(np.unique(y))))
        y = np.searchsorted(classes, y)
    else:
        classes, y = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"train needs at least 2 classes; the data has {len(classes)}")
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, test_size=args.test_size, seed=args.seed)
    sparse = is_sparse(x)
    density = f" (sparse, {x.nnz / x.shape[0]:.1f} non-zeros per sample)" if sparse else ""
    describe = f"{source}: {x.shape[0]} samples, {x.shape[1]} features{density}, {len(classes)} classes"
    if features is not None and len(json.dumps(features).encode("utf-8")) > _MAX_HEADER_BYTES // 2:
        print(f"the header's {len(features)} feature names are too long to save with the model; saving none")
        features = None
    standardize = not (sparse or args.no_standardize)
    if sparse and not args.no_standardize:
        print("sparse input: not standardized (centring would make it dense)")
    if standardize:
        if own_files:  # the statistics of all the ranks' training rows, so every replica sees one scaling
            sums = comm.allreduce(np.stack([x_train.sum(axis=0, dtype=np.float64),
                                            np.square(x_train, dtype=np.float64).sum(axis=0),
                                            np.full(x_train.shape[1], x_train.shape[0], dtype=np.float64)]))
            mean = sums[0] / sums[2]
            std = np.sqrt(np.maximum(sums[1] / sums[2] - mean * mean, 0.0))
        else:
            mean = x_train.mean(axis=0, dtype=np.float64)
            std = x_train.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        scale = lambda a: ((a - mean) / std).astype(args.dtype)  # noqa: E731
        x_train, x_test = scale(x_train), scale(x_test)

    def finish(net):
        if standardize:
            _fold_standardization(net, mean, std)  # the saved model takes raw inputs
        net.classes_, net.feature_names_ = classes, features
        return net

    return (x_train, y_train), (x_test, y_test), classes, source, describe, finish


def _text_data(args):
    """Texts split for training and turned into bags of words by a BagOfWords fitted on the training texts:
    (train, test, classes, source, describe, finish); ``finish(net)`` returns the TextClassifier to save."""
    from .text import BagOfWords, TextClassifier

    if args.data is None:
        texts, y, _ = datasets.load_sentiment()
        y = np.array(["negative", "positive"])[y]
        source = "UCI review sentences (bundled)"
    else:
        column = lambda c: int(c) if c.lstrip("-").isdigit() else c  # noqa: E731
        texts, y, names = datasets.load_text(args.data, text_column=column(args.text_column),
                                             label_column=column(args.label_column), return_classes=True)
        if names is not None:
            y = names[y]  # the labels as the file writes them, so the model predicts them
        source = args.data
    classes, y = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"train needs at least 2 classes; the data has {len(classes)}")
    rows_train, rows_test, y_train, y_test = datasets.train_test_split(np.arange(len(texts)), y,
                                                                       test_size=args.test_size, seed=args.seed)
    featurizer = BagOfWords(ngram_range=(1, args.ngrams), min_df=args.min_df, dtype=np.dtype(args.dtype))
    x_train = featurizer.fit_transform([texts[i] for i in rows_train])
    x_test = featurizer.transform([texts[i] for i in rows_test])
    n_words = len(featurizer.vocabulary_)
    describe = (f"{source}: {len(texts)} texts, {len(classes)} classes; a vocabulary of {n_words:,} "
                f"{'words' if args.ngrams == 1 else f'1- to {args.ngrams}-grams'} (min_df {args.min_df}) from the "
                f"training texts, {x_train.nnz / x_train.shape[0]:.1f} per text")
    return ((x_train, y_train), (x_test, y_test), classes, source, describe,
            lambda net: TextClassifier(featurizer, net, classes.tolist()))


def train(args):
    if not args.distributed:
        return _train(args)
    try:
        from mpi4py import MPI
    except ImportError:
        raise ValueError("--distributed needs mpi4py: pip install 'pyfastnn[mpi]', then run "
                         "mpiexec -n N pyfastnn train --distributed ...") from None
    from .distributed import abort_on_error

    comm = MPI.COMM_WORLD
    if args.text and "{rank}" in (args.data or ""):
        raise ValueError("--distributed --text needs every rank to read the same --data (the vocabulary "
                         "comes from all the training texts); {rank} in the path is for numeric data")
    if args.threads is None and not os.environ.get("PYFASTNN_NUM_THREADS"):
        # The ranks on one machine share its cores.
        local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        args.threads = max(1, _backend.usable_cpus() // local)
    args.comm = comm
    # An error on one rank must end the job, not leave the others waiting in a collective: abort_on_error
    # prints it and ends every rank (with one rank it lets the error through, to main's message).
    with abort_on_error(comm), contextlib.ExitStack() as quiet:
        if comm.Get_rank() != 0:
            quiet.enter_context(contextlib.redirect_stdout(quiet.enter_context(open(os.devnull, "w"))))
        return _train(args)


def _shard(args, part):
    """This rank's rows of (x, y): r::N after a shuffle seeded by --seed, or all of them when the rank read
    its own file."""
    comm = args.comm
    if "{rank}" in (args.data or ""):
        return part
    from .distributed import shard_rows

    rows = shard_rows(part[0].shape[0], comm.Get_rank(), comm.Get_size(), seed=args.seed)
    return part[0][rows], part[1][rows]


def _train(args):
    comm = getattr(args, "comm", None)
    if args.backend:
        _backend.set_backend(args.backend)
    if args.threads:
        _backend.set_num_threads(args.threads)
    if not args.no_save:
        _check_output(args.save, "--save")
    if args.plot:
        _check_output(args.plot, "--plot")
    if args.checkpoint:
        if comm is None or comm.Get_rank() == 0:  # the rank that writes it
            _check_output(args.checkpoint, "--checkpoint")
    elif args.resume:
        raise ValueError("--resume needs --checkpoint PATH (the checkpoint to continue from)")
    defaulted = [name for name in _TRAIN_DEFAULTS[args.text] if getattr(args, name) is None]
    for name in defaulted:
        setattr(args, name, _TRAIN_DEFAULTS[args.text][name])
    if args.lr is None:
        defaulted.insert(defaulted.index("optimizer") + 1 if "optimizer" in defaulted else 0, "lr")
        args.lr = 0.05 if args.optimizer == "sgd" else 1e-3
    prepare = _text_data if args.text else _numeric_data
    (x_train, y_train), (x_test, y_test), classes, source, describe, finish = prepare(args)
    n_train, n_test = len(y_train), len(y_test)
    if comm is not None:
        x_train, y_train = _shard(args, (x_train, y_train))
        x_test, y_test = _shard(args, (x_test, y_test))
        n_train, n_test = comm.allreduce(len(y_train)), comm.allreduce(len(y_test))
        describe += (f"; {comm.Get_size()} ranks, each training on its shard (batch {args.batch_size} per "
                     f"rank, {len(y_train)} training rows on rank 0)")

    sizes = [x_train.shape[1], *args.layers, len(classes)]
    out_act = "softmax" if args.loss == "cross_entropy" else ("sigmoid" if args.loss == "binary_cross_entropy" else "linear")
    try:
        net = MLP(sizes, activation=args.activation, output_activation=out_act, dtype=args.dtype,
                  seed=args.seed)
    except MemoryError as exc:
        raise MemoryError(f"the network {sizes} does not fit in memory ({exc})") from None
    if args.optimizer == "sgd":
        optimizer = SGD(lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    else:
        optimizer = Adam(lr=args.lr, weight_decay=args.weight_decay)
    batch = None if args.batch_size == "full" else args.batch_size
    targets_train = y_train if args.loss == "cross_entropy" else datasets.one_hot(y_train, len(classes), args.dtype)
    targets_test = y_test if args.loss == "cross_entropy" else datasets.one_hot(y_test, len(classes), args.dtype)
    if args.loss == "hinge":
        targets_train, targets_test = 2 * targets_train - 1, 2 * targets_test - 1

    print(f"data: {describe}; train {n_train} / test {n_test}")
    if defaulted:
        shown = {"layers": ",".join(map(str, args.layers))}
        print("defaults: " + " ".join(f"--{name.replace('_', '-')} {shown.get(name, getattr(args, name))}"
                                      for name in defaulted))
    print(f"network: {sizes} {args.activation}/{out_act}, loss {args.loss}, {optimizer}, batch {args.batch_size}, "
          f"{args.epochs} epochs, backend {_backend.get_backend()}, {_backend.get_num_threads()} threads, {args.dtype}")
    if args.plot:
        _matplotlib()  # fail before training, not after
    start = time.perf_counter()
    trained = []  # the epochs this run trains (a resumed run's History also holds the earlier ones)
    history = net.fit(x_train, targets_train, loss=args.loss, optimizer=optimizer, batch_size=batch,
                      epochs=args.epochs, seed=args.seed, validation_data=(x_test, targets_test),
                      progress=not args.quiet, comm=comm, callbacks=[lambda epoch, logs: trained.append(epoch)],
                      checkpoint=args.checkpoint, resume=args.resume)
    elapsed = time.perf_counter() - start
    accuracy = net.accuracy(x_test, y_test)
    if comm is not None:  # over every rank's test rows
        accuracy = comm.allreduce(accuracy * len(y_test)) / n_test
    model = finish(net)
    resumed = f" (resumed after epoch {len(history) - len(trained)})" if len(trained) < len(history) else ""
    print(f"trained in {elapsed:.2f} s ({len(trained) * n_train / elapsed:,.0f} samples/s){resumed}")
    print(f"test accuracy: {accuracy:.4f}")
    # Save before plotting: a failing plot must not lose the trained model.
    if comm is not None and comm.Get_rank() != 0:
        return 0  # the replicas are identical: rank 0 saves and plots
    if not args.no_save:
        model.save(args.save)
        if args.text:
            print(f"model saved to {args.save} (pyfastnn predict {args.save} \"some text\", or pyfastnn.load in "
                  f"Python: it predicts on raw strings; classes {classes.tolist()})")
        else:
            print(f"model saved to {args.save} (it takes raw inputs; in Python net = pyfastnn.load(path), "
                  f"then net.classes_[net.predict_labels(X)] gives the labels: {_shorten(classes.tolist())})")
    if args.plot:
        plot_history(history, args.plot, title=f"{source}: {sizes} {args.activation}, {optimizer}")
        print(f"curves written to {args.plot}")
    return 0


def _shorten(items, most=20):
    """A list for a message: its first ``most`` items, then how many more."""
    return str(items) if len(items) <= most else f"{str(items[:most])[:-1]}, ... ({len(items) - most} more)]"


def predict(args):
    from .io import load
    from .text import TextClassifier

    model = load(args.model)
    if not isinstance(model, TextClassifier):
        raise ValueError(f"{args.model} holds a network on {model.layer_sizes[0]} numbers, not a text model: "
                         "`pyfastnn predict` classifies texts (train one with `pyfastnn train --text`); use "
                         "pyfastnn.load(path).predict(X) in Python for numeric data")

    def show(texts):
        if texts:
            proba = model.predict_proba(texts)
            best = np.argmax(proba, axis=1)
            for text, k, p in zip(texts, best, proba[np.arange(len(texts)), best]):
                print(f"{model.classes_[k]}\t{p:.3f}\t{text}")

    for text in args.texts:
        if text != "-":
            show([text])
            continue
        chunk = []
        for line in sys.stdin:
            chunk.append(line.rstrip("\r\n"))
            if len(chunk) == 4096:  # a long stream is classified in chunks, printed as it goes
                show(chunk)
                chunk = []
        show(chunk)
    return 0


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise OSError("plotting needs matplotlib: pip install matplotlib (or pip install 'pyfastnn[bench]')") from None
    return plt


def plot_history(history, path, title=""):
    """Write the curves of a History to a PNG: losses per epoch, and validation accuracy when it was measured."""
    plt = _matplotlib()
    h = history.history
    epochs = history.epochs
    panels = 2 if "val_accuracy" in h else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    ax = axes[0][0]
    ax.plot(epochs, h["loss"], label="training loss (mean over the epoch's batches)")
    if "val_loss" in h:
        ax.plot(epochs, h["val_loss"], label="test loss (after the epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(True, alpha=0.3)
    if panels == 2:
        ax = axes[0][1]
        ax.plot(epochs, h["val_accuracy"], color="tab:green")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.grid(True, alpha=0.3)
        best = max(h["val_accuracy"])
        ax.set_title(f"final {h['val_accuracy'][-1]:.4f}, best {best:.4f}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def info(args):
    from . import cpu_info

    if args.json:
        report = {
            "version": __version__,
            "backend": _backend.get_backend(),
            "backends": _backend.backends(),
            "threads": _backend.get_num_threads(),
            "cpu_info": cpu_info(),
        }
        print(json.dumps(report, indent=2))
        return 0
    print(f"pyfastnn {__version__}")
    print(f"backend: {_backend.get_backend()}   threads: {_backend.get_num_threads()}")
    for name, state in _backend.backends().items():
        print(f"  {name:6s} {'available' if state['available'] else 'unavailable: ' + state['reason']}")
    cpu = cpu_info()
    for key, value in cpu.items():
        print(f"cpu {key}: {value}")
    for dt in ("float32", "float64"):
        if dt in cpu:  # the blocks the GEMM uses and where they came from (cpuid/sysfs model, override, kernel)
            k = cpu[dt]
            print(f"gemm blocks {dt}: mc={k['mc']} kc={k['kc']} nc={k['nc']} ({k['blocks_source']}, {k['kernel']})")
    return 0


def main(argv=None):
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command in ("bench", "experiment"):
            from . import benchmark, experiments

            return {"bench": benchmark.run, "experiment": experiments.run}[args.command](args)
        return {"train": train, "info": info, "predict": predict}[args.command](args)
    except (ValueError, TypeError, OSError, FloatingPointError) as exc:
        print(f"pyfastnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        print(f"pyfastnn {args.command}: error: not enough memory: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
