"""The ``pyfastnn`` command: ``train`` (the main job), ``info``, ``bench`` and ``experiment``."""

import argparse
import json
import os
import sys
import time

import numpy as np

from . import __version__, _backend, datasets
from .activations import HIDDEN_ACTIVATIONS
from .losses import LOSSES
from .network import MLP
from .optim import OPTIMIZERS, SGD, Adam


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
    t.add_argument("--data", metavar="PATH", help="your own data: CSV with a label column, .npz with X and y, or "
                   "MNIST-format IDX files (gzipped or not; give the images file or their folder)")
    t.add_argument("--label-column", default="-1", help="CSV label column: index or header name (default: last)")
    t.add_argument("--layers", type=_layers, default=[256], help="hidden layer sizes, comma-separated (default 256)")
    t.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default="relu", help="hidden activation (default relu)")
    t.add_argument("--loss", choices=LOSSES, default="cross_entropy", help="loss (default cross_entropy)")
    t.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="sgd", help="sgd (default) or adam")
    t.add_argument("--lr", type=_positive(float), default=None, help="learning rate (default 0.05 sgd, 0.001 adam)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    t.add_argument("--weight-decay", type=float, default=1e-3, help="L2 penalty on the weights (default 1e-3)")
    t.add_argument("--batch-size", type=_batch_size, default=32,
                   help="mini-batch size; 1 = per-sample SGD, 'full' = full-batch GD")
    t.add_argument("--epochs", type=_positive(int), default=40, help="number of epochs (default 40)")
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
    t.add_argument("--plot", metavar="PNG", nargs="?", const="pyfastnn-training.png", default=None,
                   help="write the loss and accuracy curves to a PNG (default name pyfastnn-training.png; "
                   "needs matplotlib)")

    i = sub.add_parser("info", help="version, backends, threads and what the compiled core detected about this CPU")
    i.add_argument("--json", action="store_true",
                   help="print one JSON object: version, backend, backends (each with available and reason), "
                   "threads, cpu_info")

    from . import benchmark, experiments  # each adds its own subcommand's options

    benchmark.add_parser(sub)
    experiments.add_parser(sub)
    return parser


def _load(args):
    if args.data is None:
        x, y = datasets.load_digits(dtype=args.dtype)
        return x, y, "UCI 8x8 handwritten digits (bundled)"
    kw = {}
    if args.data.lower().removesuffix(".gz").endswith((".csv", ".tsv", ".txt")):
        label = args.label_column
        kw["label_column"] = int(label) if label.lstrip("-").isdigit() else label
    x, y = datasets.load_data(args.data, **kw)
    return np.asarray(x, dtype=args.dtype), np.asarray(y), args.data


def _fold_standardization(net, mean, std):
    """Make net(x) equal the trained net((x − mean)/std): W' = W/std, b' = b − W' mean."""
    w = net.weights[0]
    w /= std.astype(w.dtype)
    net.biases[0] -= (w.astype(np.float64) @ mean).astype(w.dtype)


def train(args):
    if args.backend:
        _backend.set_backend(args.backend)
    if args.threads:
        _backend.set_num_threads(args.threads)
    if not args.no_save:
        _check_output(args.save, "--save")
    if args.plot:
        _check_output(args.plot, "--plot")
    x, y, source = _load(args)
    if y.ndim != 1:
        raise ValueError(f"train needs one class label per sample; got labels of shape {y.shape}")
    classes, y = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"train needs at least 2 classes; the data has {len(classes)}")
    x_train, x_test, y_train, y_test = datasets.train_test_split(x, y, test_size=args.test_size, seed=args.seed)
    mean = np.zeros(x.shape[1])
    std = np.ones(x.shape[1])
    if not args.no_standardize:
        mean = x_train.mean(axis=0, dtype=np.float64)
        std = x_train.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
    scale = lambda a: ((a - mean) / std).astype(args.dtype)  # noqa: E731

    sizes = [x.shape[1], *args.layers, len(classes)]
    out_act = "softmax" if args.loss == "cross_entropy" else ("sigmoid" if args.loss == "binary_cross_entropy" else "linear")
    try:
        net = MLP(sizes, activation=args.activation, output_activation=out_act, dtype=args.dtype,
                  seed=args.seed)
    except MemoryError as exc:
        raise MemoryError(f"the network {sizes} does not fit in memory ({exc})") from None
    if args.optimizer == "sgd":
        optimizer = SGD(lr=args.lr or 0.05, momentum=args.momentum, weight_decay=args.weight_decay)
    else:
        optimizer = Adam(lr=args.lr or 1e-3, weight_decay=args.weight_decay)
    batch = None if args.batch_size == "full" else args.batch_size
    targets_train = y_train if args.loss == "cross_entropy" else datasets.one_hot(y_train, len(classes), args.dtype)
    targets_test = y_test if args.loss == "cross_entropy" else datasets.one_hot(y_test, len(classes), args.dtype)
    if args.loss == "hinge":
        targets_train, targets_test = 2 * targets_train - 1, 2 * targets_test - 1

    print(f"data: {source}: {x.shape[0]} samples, {x.shape[1]} features, {len(classes)} classes; "
          f"train {len(y_train)} / test {len(y_test)}")
    print(f"network: {sizes} {args.activation}/{out_act}, loss {args.loss}, {optimizer}, batch {args.batch_size}, "
          f"{args.epochs} epochs, backend {_backend.get_backend()}, {_backend.get_num_threads()} threads, {args.dtype}")
    if args.plot:
        _matplotlib()  # fail before training, not after
    start = time.perf_counter()
    history = net.fit(scale(x_train), targets_train, loss=args.loss, optimizer=optimizer, batch_size=batch, epochs=args.epochs,
            seed=args.seed, validation_data=(scale(x_test), targets_test), progress=not args.quiet)
    elapsed = time.perf_counter() - start
    if not args.no_standardize:
        _fold_standardization(net, mean, std)
    accuracy = net.accuracy(x_test, y_test)
    print(f"trained in {elapsed:.2f} s ({args.epochs * len(y_train) / elapsed:,.0f} samples/s)")
    print(f"test accuracy: {accuracy:.4f}")
    # Save before plotting: a failing plot must not lose the trained model.
    if not args.no_save:
        net.save(args.save)
        print(f"model saved to {args.save} (load with pyfastnn.load; it takes raw inputs, classes {classes.tolist()})")
    if args.plot:
        plot_history(history, args.plot, title=f"{source}: {sizes} {args.activation}, {optimizer}")
        print(f"curves written to {args.plot}")
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
    for key, value in cpu_info().items():
        print(f"cpu {key}: {value}")
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
        return {"train": train, "info": info}[args.command](args)
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
