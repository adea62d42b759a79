"""Training-step throughput of pyfastnn against its peers, side by side in one process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train.py [--quick] [--shapes S,M,L]
        [--batches 1,8,32,256,1024] [--threads 2] [--repeat 5] [--markdown]
    python benchmarks/bench_train.py --profile M:256 --seconds 20     # only the cpp fit loop, for a profiler
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train.py --targets [--quick | --smoke]
        [--epochs 10]                                                # the performance targets, one row each

One training step = forward, softmax + cross-entropy, backward, plain SGD update (lr 0.01), float32, ReLU
hidden layers, on the standard shapes of docs/benchmarks.md. Columns (samples/s, median over --repeat runs):

  cpp fit     pyfastnn "cpp" backend through ``net.fit(X, y, batch_size=B, epochs=E, shuffle=False)``: the
              native epoch loop, how users train (the time includes fit's input checks and per-epoch snapshot)
  cpp step    ``net.train_step(x, y)`` once per batch from a Python loop: shows the per-call overhead
  numba-be    pyfastnn's "numba" backend through fit (when numba is installed)
  numpy-be    pyfastnn's "numpy" (reference) backend through fit
  hand NumPy  hand-written NumPy of the same formulas (pyfastnn/_peers.py)
  torch       PyTorch CPU, nn.Sequential + CrossEntropyLoss + optim.SGD, the usual loop (pyfastnn/_peers.py)
  sklearn     scikit-learn MLPClassifier(solver="sgd", momentum=0, alpha=0, batch_size=B): one partial_fit per
              pass over the rows, one SGD step per B rows (pyfastnn/_peers.py)

Every peer trains on the same i.i.d. random data (already in random order), looping over consecutive
batches. Each (shape, batch, peer) is warmed up and its data set sized so one timed run lasts >= ~0.2 s (at
least 3 steps); runs of the peers alternate, so drift on a shared machine hits all of them alike. Each timed
run follows a short idle gap (so the previous library's spinning worker threads are asleep) and is redone if
other processes used the CPUs meanwhile (/proc/stat). All libraries use the same thread count (pyfastnn,
torch, and NumPy's BLAS through threadpoolctl). GFLOP/s counts 6·B·Σ N_l N_{l-1} FLOPs per step. Before
timing a shape, a few identical steps from the same initial weights are run in pyfastnn, hand NumPy, torch and
scikit-learn and compared ("check ok"), so the table is known to compare the same computation.

``--targets`` prints the table of pyfastnn's performance targets instead (what, measured, target, met?), the
same as ``pyfastnn bench --targets`` (pyfastnn/_bench_targets.py).

The machinery (peers, sizing, alternation, noise detection, sanity check) lives in pyfastnn/benchmark.py and
pyfastnn/_peers.py, shared with the installed `pyfastnn bench` command; this script is its developer front end
(one table over all shapes, --verbose, --profile, the git state). See benchmarks/README.md.
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

import numpy as np

import pyfastnn as pf
from pyfastnn import benchmark as bm

SHAPES = bm.SHAPES
BATCHES = "1,8,32,256,1024"
PEERS = bm.PEERS


def _git_state():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=5, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def print_header(args, torch, skipped, blas_reason):
    info = pf.cpu_info()
    print("# pyfastnn training-step benchmark (bench_train.py)")
    print(f"date     : {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"cpu      : {bm.cpu_model()}; {os.cpu_count()} logical CPUs ({bm.usable_cpus()} usable)")
    print(f"pyfastnn : {pf.__version__} git {_git_state()}; backend cpp isa={info.get('isa')} "
          f"f32 kernel={info.get('float32', {}).get('kernel')}; _core={bm.core_file()}")
    print(f"numpy    : {np.__version__}; BLAS {bm.blas_info()}")
    if torch is not None:
        print(f"torch    : {torch.__version__}; mkldnn={torch.backends.mkldnn.is_available()} "
              f"mkl={torch.backends.mkl.is_available()} threads={torch.get_num_threads()}")
    sk_version, _ = bm.sklearn_version()
    if sk_version:
        print(f"sklearn  : {sk_version}")
    for peer, reason in skipped.items():
        print(f"{peer:9s}: skipped: {reason}")
    print(f"python   : {platform.python_version()}; threads={args.threads} for every library"
          + (f" (NumPy BLAS not limited: {blas_reason})" if blas_reason else ""))
    print(f"run      : shapes={','.join(args.shapes)} batches={','.join(map(str, args.batches))} "
          f"repeat={args.repeat} (median); lr={bm.LR}; float32")
    warning = bm.pinning_warning("python benchmarks/bench_train.py")
    if warning:
        print(f"WARNING: {warning}")
    print(flush=True)


def print_table(all_results, peers, markdown):
    head = ["shape", "batch", *peers, "cpp GFLOP/s", "cpp/torch", "cpp/hand", "cpp/sklearn"]
    rows = []
    for name, sizes, results in all_results:
        fps = bm.flops_per_sample(sizes)
        for batch, cell in results.items():
            rates = cell.rates
            fit = rates.get("cpp fit")
            rows.append([name, str(batch), *(bm.fmt_rate(rates.get(p)) for p in peers),
                         "-" if fit is None else f"{fit * fps / 1e9:.1f}",
                         bm.fmt_ratio(fit, rates.get("torch")), bm.fmt_ratio(fit, rates.get("hand NumPy")),
                         bm.fmt_ratio(fit, rates.get("sklearn"))])
    print("\nsamples/s (median), one training step = forward + softmax-CE + backward + SGD update, float32")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" if i < 1 else "---:" for i in range(len(head))) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        for r in rows:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    worst = (0.0, None)
    for name, _sizes, results in all_results:
        for batch, cell in results.items():
            for peer, text in cell.notes.items():
                print(f"note: {name} B={batch} {peer}: {text}")
            for peer, s in cell.spread.items():
                if s > worst[0]:
                    worst = (s, f"{name} B={batch} {peer}")
    if worst[1] is not None:
        print(f"note: largest spread (max−min)/median over the repeats: {worst[0]:.0%} ({worst[1]})")


def profile_loop(spec, args, meter):
    """Run only the cpp fit loop of one configuration for --seconds (attach py-spy / perf to this)."""
    name, _, batch = spec.partition(":")
    if name.upper() not in SHAPES or not batch.isdigit() or int(batch) < 1:
        sys.exit(f"--profile takes SHAPE:BATCH like M:256 (shapes {', '.join(SHAPES)}); got {spec!r}")
    sizes, batch = SHAPES[name.upper()], int(batch)
    x, y = bm.make_pool(sizes, batch)
    run = bm.make_peer("cpp fit", sizes, batch, x, y)
    rows, epochs, _ = meter.calibrate(run, batch, (x.shape[0] // batch) * batch)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        run(rows, epochs)
        done += rows * epochs
    el = time.perf_counter() - t0
    print(f"profile {name} {sizes} B={batch}: {done / el:.0f} samples/s over {el:.1f} s")


def run_targets(p, args, argv):
    """--targets: the table of pyfastnn/_bench_targets.py, printed; exits 1 on a sanity-check mismatch."""
    from pyfastnn import _bench_targets

    for flag in ("shapes", "batches", "peers", "profile"):
        if getattr(args, flag) is not None:
            p.error(f"--{flag} does not apply with --targets (its rows have fixed shapes, batches and peers)")
    if args.quick and args.smoke:
        p.error("--quick and --smoke exclude each other")
    if args.threads < 1 or (args.repeat is not None and args.repeat < 1) or (args.epochs is not None
                                                                              and args.epochs < 1):
        p.error("--threads, --repeat and --epochs must be >= 1")
    mode = "smoke" if args.smoke else ("quick" if args.quick else "full")
    command = "python benchmarks/bench_train.py " + " ".join(sys.argv[1:] if argv is None else argv)
    warning = bm.pinning_warning(command)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    rows, facts, notes, ok = _bench_targets.measure(mode, args.threads, args.epochs, args.repeat,
                                                    say=lambda text: print(f"targets: {text}", file=sys.stderr,
                                                                           flush=True))
    if warning:
        notes.insert(0, f"WARNING: {warning}")
    facts.insert(0, ("git", _git_state()))
    print(_bench_targets.report(rows, facts, notes, command.strip(), mode), end="")
    if not ok:
        sys.exit("a sanity check found peers computing different updates (CHECK MISMATCH in the notes)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="S and M, batches 1,32,256, one repeat (< 2 minutes)")
    p.add_argument("--shapes", default=None, help="comma-separated subset of S,M,L (default all)")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8,32,256,1024)")
    p.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed runs per cell; the median is shown (default 5)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--verbose", action="store_true", help="print each cell as it is measured, with run sizes")
    p.add_argument("--peers", default=None,
                   help="comma-separated subset of the columns to measure (default all): " + ",".join(PEERS))
    p.add_argument("--profile", metavar="SHAPE:BATCH", help="only run the cpp fit loop of one configuration")
    p.add_argument("--seconds", type=float, default=20.0, help="duration of --profile (default 20)")
    p.add_argument("--targets", action="store_true",
                   help="print the performance targets table instead (a few minutes; --quick: fewer repeats and "
                   "2 Fashion-shaped epochs)")
    p.add_argument("--smoke", action="store_true", help="with --targets: tiny sizes, seconds, numbers meaningless")
    p.add_argument("--epochs", type=int, default=None,
                   help="with --targets: epochs of the Fashion-MNIST-shaped run (default 10)")
    args = p.parse_args(argv)

    if args.targets:
        return run_targets(p, args, argv)
    if args.smoke or args.epochs is not None:
        p.error("--smoke and --epochs apply only with --targets")

    if args.threads < 1:
        p.error("--threads must be >= 1")
    args.shapes = (args.shapes or ("S,M" if args.quick else "S,M,L")).upper().split(",")
    for s in args.shapes:
        if s not in SHAPES:
            p.error(f"unknown shape {s!r}; valid: {', '.join(SHAPES)}")
    try:
        args.batches = [int(b) for b in (args.batches or ("1,32,256" if args.quick else BATCHES)).split(",")]
    except ValueError:
        p.error("--batches takes comma-separated integers")
    if any(b < 1 for b in args.batches):
        p.error("batch sizes must be >= 1")
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be >= 1")
    settings = bm.Settings.for_mode("quick" if args.quick else "full", repeat=args.repeat)
    args.repeat = settings.repeat
    args.peers = [q.strip() for q in args.peers.split(",")] if args.peers else list(PEERS)
    for q in args.peers:
        if q not in PEERS:
            p.error(f"unknown peer {q!r}; valid: {', '.join(PEERS)}")
    meter = bm.Meter(settings)

    if args.profile:
        with bm.EqualThreads(args.threads):
            profile_loop(args.profile, args, meter)
        return
    torch, torch_reason = bm.import_torch() if "torch" in args.peers else (None, None)
    _sk_version, sk_reason = bm.sklearn_version()
    skipped = bm.unavailable_peers(args.peers, torch_reason, sk_reason)
    peers = [q for q in args.peers if q not in skipped]
    with bm.EqualThreads(args.threads, torch) as eq:
        print_header(args, torch, skipped, eq.blas_reason)
        core = bm.core_file()
        core_mtime = bm.file_mtime(core)
        t_start = time.perf_counter()
        all_results = []
        for name in args.shapes:
            sizes = SHAPES[name]
            x, y = bm.make_pool(sizes, max(args.batches))
            _ok, text = bm.sanity_check(sizes, x, y, torch, sklearn="sklearn" in peers)
            print(f"{name} {sizes}: {text}", flush=True)

            def progress(batch, cell, _seconds, name=name):
                if args.verbose:
                    rates = cell.rates
                    print(f"  {name} B={batch}: " + "; ".join(
                        f"{q} {rates[q]:.0f}/s ({cell.plan[q][0]} rows x {cell.plan[q][1]})" for q in rates),
                        flush=True)
                else:
                    print(".", end="", flush=True, file=sys.stderr)

            all_results.append((name, sizes, bm.measure_shape(sizes, args.batches, peers, meter, x, y, torch,
                                                              progress)))
    if not args.verbose:
        print(file=sys.stderr)
    print_table(all_results, peers, args.markdown)
    for peer, reason in skipped.items():
        print(f"note: {peer} column skipped: {reason}")
    print(f"note: total benchmark time {time.perf_counter() - t_start:.0f} s")
    if meter.summary():
        print(f"note: {meter.summary()}")
    if meter.busy() is not None:
        print(f"WARNING: the machine was busy (other processes used {meter.busy():.2f} CPUs on average): the numbers "
              "are unreliable; rerun when it is quiet.")
    if bm.file_mtime(core) != core_mtime:
        print(f"WARNING: {core} changed during the run (the extension was rebuilt): numbers may mix two "
              "builds; rerun.")


if __name__ == "__main__":
    main()
