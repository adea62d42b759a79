"""solver="lbfgs" of pf.MLPClassifier against scikit-learn's MLPClassifier on digits, side by side in one run.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lbfgs.py [--hidden 64] [--max-iter 200]
        [--alpha 1e-4] [--repeat 3] [--threads 1]

Both start from the same weights (scikit-learn's initialisation, copied into pyfastnn's network), so with a
float64 network they follow the same L-BFGS iterates up to rounding; pyfastnn also runs in float32. Digits
(1,797 × 64, scaled to [0, 1]) is split 75/25; the table gives the final objective (``loss_``), iterations,
train and test accuracy, and the median fit time over --repeat runs, the runs of the three alternating. All
use the same thread count (pyfastnn's and NumPy's BLAS).
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLP

import pyfastnn as pf
from pyfastnn.benchmark import EqualThreads, pinning_warning


def _fit_from(start, est, x, y):
    """Fit ``est`` from the initial weights of the fitted scikit-learn model ``start`` (max_iter=1 builds the
    network, then the weights are overwritten and the real fit runs warm)."""
    params = est.get_params()
    est.set_params(max_iter=1, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(x, y)
    for mine, ref in zip(est.coefs_ + est.intercepts_, start.coefs_ + start.intercepts_):
        mine[...] = ref
    est.set_params(max_iter=params["max_iter"])
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(x, y)
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    warning = pinning_warning("python benchmarks/bench_lbfgs.py")
    if warning:
        print(warning)

    x, y = pf.datasets.load_digits()
    x = x.astype(np.float64)
    xtr, xte, ytr, yte = pf.datasets.train_test_split(x, y, test_size=0.25, seed=0)
    common = dict(hidden_layer_sizes=(args.hidden,), solver="lbfgs", alpha=args.alpha, max_iter=args.max_iter,
                  random_state=0)
    init = SkMLP(**{**common, "max_iter": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init.fit(xtr, ytr)  # its weights after one iteration: the common starting point
    makers = {
        "scikit-learn (float64)": lambda: SkMLP(**common),
        "pyfastnn float64": lambda: pf.MLPClassifier(**common),
        "pyfastnn float32": lambda: pf.MLPClassifier(dtype="float32", **common),
    }
    times = {name: [] for name in makers}
    models = {}
    with EqualThreads(args.threads):
        for _ in range(args.repeat):
            for name, make in makers.items():
                est = make()
                times[name].append(_fit_from(init, est, xtr, ytr))
                models[name] = est
    ref = statistics.median(times["scikit-learn (float64)"])
    print(f"digits {xtr.shape[0]} train / {xte.shape[0]} test rows, hidden ({args.hidden},), alpha {args.alpha}, "
          f"max_iter {args.max_iter}, {args.threads} thread(s), backend {pf.get_backend()}, median of "
          f"{args.repeat}")
    print(f"{'':24s} {'loss_':>12s} {'n_iter_':>8s} {'train acc':>10s} {'test acc':>9s} {'fit s':>8s} "
          f"{'speed-up':>9s}")
    for name, est in models.items():
        t = statistics.median(times[name])
        print(f"{name:24s} {est.loss_:12.6g} {est.n_iter_:8d} {est.score(xtr, ytr):10.4f} "
              f"{est.score(xte, yte):9.4f} {t:8.3f} {ref / t:8.2f}x")


if __name__ == "__main__":
    main()
