"""Sparse training with each optimizer against plain SGD: pyfastnn's cpp fit on bench_sparse.py's task, the
optimizers' runs alternating in one process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_sparse_optimizers.py [--quick | --smoke]
        [--vocab 50000,1000000] [--threads 2] [--repeat 5]

Momentum and Adam update the first layer lazily (only the rows of the table E = W¹ᵀ a batch uses, with their
state): each such row moves 2 (momentum) or 3 (Adam) rows of memory where plain SGD moves one, so the ratio to
SGD shows what the optimizer's step costs on top of the forward and backward passes. Task and timing machinery
as in benchmarks/bench_sparse.py.
"""

import argparse
import statistics
import sys

import pyfastnn as pf
from pyfastnn import _bench_sparse as bs
from pyfastnn import benchmark as bm

OPTIMIZERS = {
    "SGD": lambda: pf.SGD(lr=bs.LR),
    "momentum 0.9 (lazy)": lambda: pf.SGD(lr=bs.LR, momentum=0.9),
    "Adam (lazy)": lambda: pf.Adam(lr=1e-3),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bs.add_options(parser)
    args = parser.parse_args(argv)
    mode, vocabs, threads = bs.read_options(args)
    if not pf.backends()["cpp"]["available"]:
        print(f"the cpp backend is not available: {pf.backends()['cpp']['reason']}", file=sys.stderr)
        return 1
    print(f"# pyfastnn sparse training by optimizer ({mode})\n")
    print(f"- CPU: {bm.cpu_model()}; {threads} threads; pyfastnn {pf.__version__} (cpp fit)")
    print(f"- task: Zipf({bs.ZIPF_EXPONENT}) documents of ~{bs.MEAN_TOKENS} tokens, hidden {bs.HIDDEN} ReLU, "
          f"{bs.CLASSES} classes softmax-CE, batch {bs.BATCH}, float32\n")
    settings = bm.Settings.for_mode(mode, repeat=args.repeat)
    names = list(OPTIMIZERS)
    lines = ["| V | " + " | ".join(f"{n} samples/s" for n in names) + " | "
             + " | ".join(f"{n} / SGD" for n in names[1:]) + " |",
             "|" + "|".join("---:" for _ in range(2 * len(names))) + "|"]
    with bm.EqualThreads(threads):
        meter = bm.Meter(settings)
        # Runs of at least bs.RUN_SECONDS, as in bench_sparse (fit's per-epoch snapshot of W¹ amortised).
        meter.s.target_s, meter.s.max_run_s = max(meter.s.target_s, bs.RUN_SECONDS), 3 * bs.RUN_SECONDS
        for vocab in vocabs:
            x, y = bs.zipf_documents(bs.POOL_DOCS[mode], vocab, seed=1)
            plans = {}
            for name in names:
                run = bs.make_peer("cpp fit", x, y, optimizer=OPTIMIZERS[name]())
                rows, epochs, _ = meter.calibrate(run, bs.BATCH, x.shape[0])
                plans[name] = (run, rows, epochs)
            samples = {name: [] for name in names}
            for _ in range(meter.s.repeat):
                for name, (run, rows, epochs) in plans.items():
                    samples[name].append(rows * epochs / meter.timed(run, rows, epochs))
            rate = {name: statistics.median(v) for name, v in samples.items()}
            lines.append(f"| {vocab:,} | " + " | ".join(bm.fmt_rate(rate[n]) for n in names) + " | "
                         + " | ".join(f"{rate[n] / rate['SGD']:.2f}" for n in names[1:]) + " |")
            print(f"- V={vocab:,} done", flush=True)
    print()
    print("\n".join(lines))
    if meter.summary():
        print(f"\n- {meter.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
