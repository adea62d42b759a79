"""Momentum, Nesterov and Adam against plain SGD (fused into the weight-gradient GEMM, and the earlier two-pass
step), then the Fashion-MNIST-shaped Adam fit against scikit-learn and PyTorch, all side by side in one process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_fused_optimizers.py [--quick | --smoke]
        [--threads 2] [--repeat 5] [--epochs 2] [--no-peers]

Part 1, the optimizer's cost: cpp ``fit`` (shuffle=False, float32, ReLU, softmax-CE) on i.i.d. random rows, for
the Fashion shape 784-256-128-10 at batch 128 and M = 784-512-256-10 at batches 32 and 256. Plain SGD folds its
update into the weight-gradient GEMM; momentum and Adam run either fused (each block of ∂C/∂W applied to W and its
state as the GEMM produces it, the default) or two-pass (the gradient stored, then a pass over W, ∂C/∂W and the
state), switched by ``pyfastnn._core._fused_optimizer_steps``. Every column's runs alternate; samples/s are medians.

Part 2, the issue's Fashion row: 60,000 x 784 float32 rows of 10 classes (a synthetic stand-in of Fashion-MNIST's
shape: class templates plus noise, so accuracy means something), 784-256-128-10 ReLU, Adam lr 1e-3, batch 128,
shuffled every epoch, no weight decay, ``--epochs`` epochs per timed run: pyfastnn ``fit``, scikit-learn
``MLPClassifier(solver="adam", alpha=0)`` (one ``partial_fit`` per epoch) and PyTorch (nn.Sequential, optim.Adam,
a randperm per epoch), all from the same initial weights, with the same thread count. Accuracy on 10,000 held-out
rows after every library has trained the same number of epochs.
"""

import argparse
import statistics
import sys
import time

import numpy as np

import pyfastnn as pf
from pyfastnn import benchmark as bm

CASES = [("Fashion", [784, 256, 128, 10], 128), ("M", [784, 512, 256, 10], 32), ("M", [784, 512, 256, 10], 256)]
OPTIMIZERS = {
    "momentum 0.9": lambda: pf.SGD(lr=0.01, momentum=0.9),
    "Nesterov 0.9": lambda: pf.SGD(lr=0.01, momentum=0.9, nesterov=True),
    "Adam": lambda: pf.Adam(lr=1e-3),
}
FASHION_ROWS, FASHION_TEST, FASHION_SIZES, FASHION_BATCH = 60000, 10000, [784, 256, 128, 10], 128


def _core():
    import pyfastnn._core as core

    return core


def fit_run(sizes, batch, x, y, make_opt, fused):
    """run(rows, epochs) training a fresh network's copy by cpp fit, with the fused step on or off."""
    core = _core()
    net, opt = bm.fresh_net(sizes), make_opt()

    def run(rows, epochs):
        core._fused_optimizer_steps(fused)
        try:
            with pf.use_backend("cpp"):
                net.fit(x[:rows], y[:rows], batch_size=batch, epochs=epochs, shuffle=False, progress=False,
                        optimizer=opt)
        finally:
            core._fused_optimizer_steps(True)

    return run


def optimizer_table(meter, smoke):
    print("## The optimizer's cost: samples/s of cpp fit, and ratios to plain SGD in the same run\n")
    for name, sizes, batch in CASES:
        x, y = bm.make_pool(sizes, batch, smoke=smoke)
        pool_rows = (x.shape[0] // batch) * batch
        runs = {("SGD", "-"): fit_run(sizes, batch, x, y, lambda: pf.SGD(lr=0.01), True)}
        for opt_name, make in OPTIMIZERS.items():
            for mode in ("fused", "two-pass"):
                runs[(opt_name, mode)] = fit_run(sizes, batch, x, y, make, mode == "fused")
        plans = {key: meter.calibrate(run, batch, pool_rows)[:2] for key, run in runs.items()}
        samples = {key: [] for key in runs}
        for _ in range(meter.s.repeat):
            for key, run in runs.items():
                rows, epochs = plans[key]
                samples[key].append(rows * epochs / meter.timed(run, rows, epochs))
        rate = {key: statistics.median(v) for key, v in samples.items()}
        sgd = rate[("SGD", "-")]
        print(f"### {name} = {'-'.join(map(str, sizes))}, batch {batch}: plain SGD {bm.fmt_rate(sgd)} samples/s\n")
        print("| optimizer | fused samples/s | two-pass samples/s | fused / SGD | two-pass / SGD | fused / two-pass |")
        print("|---|---:|---:|---:|---:|---:|")
        for opt_name in OPTIMIZERS:
            f, t = rate[(opt_name, "fused")], rate[(opt_name, "two-pass")]
            print(f"| {opt_name} | {bm.fmt_rate(f)} | {bm.fmt_rate(t)} | {f / sgd:.2f} | {t / sgd:.2f} | {f / t:.2f} |")
        print()


def fashion_like(rows, seed=0):
    """Rows in [0, 1] of 10 classes: a random template per class, blurred by noise (not separable by a glance)."""
    rng = np.random.default_rng(seed)
    templates = rng.random((10, 784), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    x = 0.05 * templates[y] + 0.95 * rng.random((rows, 784), dtype=np.float32)
    return x.astype(np.float32), y.astype(np.int64)


class PfAdam:
    def __init__(self, weights, biases, epochs_seed=0):
        self.net = bm.fresh_net(FASHION_SIZES)
        for dst, src in zip(self.net.weights + self.net.biases, weights + biases):
            dst[...] = src
        self.opt = pf.Adam(lr=1e-3)
        self.seed = epochs_seed

    def train(self, x, y, epochs):
        self.seed += 1
        with pf.use_backend("cpp"):
            self.net.fit(x, y, batch_size=FASHION_BATCH, epochs=epochs, shuffle=True, seed=self.seed,
                         progress=False, optimizer=self.opt)

    def predict(self, x):
        return self.net.predict(x).argmax(axis=1)


class TorchAdam:
    def __init__(self, torch, weights, biases):
        self.torch = torch
        layers = []
        for l, (w, b) in enumerate(zip(weights, biases)):
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
            if l < len(weights) - 1:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.gen = torch.Generator().manual_seed(0)

    def train(self, x, y, epochs):
        torch = self.torch
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(epochs):
            perm = torch.randperm(xt.shape[0], generator=self.gen)
            for lo in range(0, xt.shape[0], FASHION_BATCH):
                idx = perm[lo : lo + FASHION_BATCH]
                self.opt.zero_grad()
                loss = self.loss_fn(self.model(xt[idx]), yt[idx])
                loss.backward()
                self.opt.step()

    def predict(self, x):
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(x)).argmax(dim=1).numpy()


class SklearnAdam:
    def __init__(self, weights, biases):
        from sklearn.neural_network import MLPClassifier

        self.clf = MLPClassifier(hidden_layer_sizes=tuple(w.shape[0] for w in weights[:-1]), activation="relu",
                                 solver="adam", learning_rate_init=1e-3, alpha=0.0, batch_size=FASHION_BATCH,
                                 shuffle=True, random_state=0)
        # The first partial_fit makes the parameters (float32, from x's dtype); the shared weights overwrite them,
        # and the Adam moments that step left are zeroed (scikit-learn stores W^l transposed).
        self.clf.partial_fit(np.zeros((FASHION_BATCH, 784), np.float32), np.arange(FASHION_BATCH) % 10,
                             classes=np.arange(10))
        for c, i, w, b in zip(self.clf.coefs_, self.clf.intercepts_, weights, biases):
            c[...] = w.T
            i[...] = b
        opt = self.clf._optimizer
        opt.t = 0
        for m in opt.ms + opt.vs:
            m[...] = 0

    def train(self, x, y, epochs):
        for _ in range(epochs):
            self.clf.partial_fit(x, y)

    def predict(self, x):
        return self.clf.predict(x)


def fashion_table(meter, torch, threads, epochs, smoke):
    rows = 2048 if smoke else FASHION_ROWS
    x, y = fashion_like(rows + (512 if smoke else FASHION_TEST))
    x_train, y_train, x_test, y_test = x[:rows], y[:rows], x[rows:], y[rows:]
    net0 = bm.fresh_net(FASHION_SIZES)
    w0 = [np.ascontiguousarray(w, dtype=np.float32) for w in net0.weights]
    b0 = [np.ascontiguousarray(b, dtype=np.float32) for b in net0.biases]
    libs = {"pyfastnn fit": PfAdam(w0, b0)}
    notes = []
    try:
        libs["scikit-learn"] = SklearnAdam(w0, b0)
    except ImportError as exc:
        notes.append(f"scikit-learn skipped: {exc}")
    if torch is not None:
        libs["PyTorch"] = TorchAdam(torch, w0, b0)
    else:
        notes.append("PyTorch skipped: not importable")
    for lib in libs.values():  # warm-up (threads, allocations); every library trains the same epochs in all
        lib.train(x_train[: 8 * FASHION_BATCH], y_train[: 8 * FASHION_BATCH], 1)
    samples = {name: [] for name in libs}
    for _ in range(meter.s.repeat):
        for name, lib in libs.items():
            samples[name].append(rows * epochs / meter.timed(lambda r, e, lib=lib: lib.train(x_train, y_train, e),
                                                             rows, epochs))
    rate = {name: statistics.median(v) for name, v in samples.items()}
    acc = {name: float(np.mean(lib.predict(x_test) == y_test)) for name, lib in libs.items()}
    mine = rate["pyfastnn fit"]
    print(f"## Fashion-shaped Adam fit: {rows} x 784 float32, 784-256-128-10, Adam lr 1e-3, batch 128, shuffled, "
          f"{epochs} epoch(s) per timed run, {threads} threads\n")
    print("| library | samples/s | pyfastnn / this | held-out accuracy |")
    print("|---|---:|---:|---:|")
    for name in libs:
        print(f"| {name} | {bm.fmt_rate(rate[name])} | {mine / rate[name]:.2f} | {acc[name]:.3f} |")
    for note in notes:
        print(f"\n- {note}")
    print()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode_group = p.add_mutually_exclusive_group()
    mode_group.add_argument("--quick", action="store_true", help="one repeat, little waiting for quiet")
    mode_group.add_argument("--smoke", action="store_true", help="every code path in seconds; numbers mean nothing")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=None, help="timed runs per column (default 5; quick 1)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed run of the Fashion-shaped fit")
    p.add_argument("--only", choices=["optimizers", "fashion"], default=None, help="run one part only")
    p.add_argument("--no-peers", action="store_true", help="part 1 only (same as --only optimizers)")
    args = p.parse_args(argv)
    if args.threads < 1 or args.epochs < 1:
        p.error("--threads and --epochs must be >= 1")
    if not pf.backends()["cpp"]["available"]:
        print(f"the cpp backend is not available: {pf.backends()['cpp']['reason']}", file=sys.stderr)
        return 1
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    part1, part2 = args.only != "fashion", args.only != "optimizers" and not args.no_peers
    torch, _reason = bm.import_torch() if part2 else (None, None)
    print(f"# Momentum / Nesterov / Adam fused into the GEMM ({mode})\n")
    print(f"- CPU: {bm.cpu_model()}; {args.threads} threads; pyfastnn {pf.__version__} (ISA "
          f"{_core().get_isa()}); load average at start {' '.join(f'{v:.2f}' for v in _loadavg())}\n")
    settings = bm.Settings.for_mode(mode, repeat=args.repeat)
    t0 = time.perf_counter()
    with bm.EqualThreads(args.threads, torch):
        meter = bm.Meter(settings)
        if part1:
            optimizer_table(meter, args.smoke)
        if part2:
            fashion_table(meter, torch, args.threads, 1 if args.smoke else args.epochs, args.smoke)
        summary = meter.summary()
    if summary:
        print(f"- noise: {summary}")
    print(f"- load average at the end {' '.join(f'{v:.2f}' for v in _loadavg())}; {time.perf_counter() - t0:.0f} s")
    return 0


def _loadavg():
    try:
        import os

        return os.getloadavg()
    except (AttributeError, OSError):
        return (float("nan"),) * 3


if __name__ == "__main__":
    sys.exit(main())
