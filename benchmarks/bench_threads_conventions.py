"""What following the thread conventions buys: GridSearchCV with n_jobs=2, and a process pinned to one CPU.

1. ``GridSearchCV(pf.MLPClassifier(...), n_jobs=2)`` on the digits (4 candidates × 3 folds). joblib's loky
   workers get OMP_NUM_THREADS = their share of the CPUs; pyfastnn now takes it as its limit ("new"). The old
   behaviour, one thread per CPU in every worker, is reproduced by PYFASTNN_NUM_THREADS=<CPUs> in the workers'
   environment ("old"). n_jobs=1 (all CPUs in one process) is the reference. Wall time of the first fit (cold:
   the workers start and import) and of a second fit in the same process (warm: the workers are reused).
2. ``taskset -c <cpu>``: ``fit`` of a 64-256-256-10 network on the digits (batch 64) with the new default, 1
   thread, against 2 threads on that one CPU (the old default there was os.cpu_count()).

Each measurement runs in a fresh process; the configurations alternate, ``--repeat`` times; medians are printed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_threads_conventions.py [--repeat 5]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


def _grid_child(n_jobs):
    import warnings

    import joblib
    from sklearn.model_selection import GridSearchCV

    import pyfastnn as pf

    warnings.simplefilter("ignore")  # ConvergenceWarning of the short fits
    x, y = pf.datasets.load_digits()
    grid = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 3e-3]}
    times = []
    for _ in range(2):  # cold, then warm (loky reuses its workers)
        search = GridSearchCV(pf.MLPClassifier((256,), max_iter=40, random_state=0), grid, cv=3, n_jobs=n_jobs)
        t0 = time.perf_counter()
        search.fit(x, y)
        times.append(time.perf_counter() - t0)
    if n_jobs > 1:
        threads = joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(pf.get_num_threads)() for _ in range(n_jobs))
    else:
        threads = [pf.get_num_threads()]
    return {"cold": times[0], "warm": times[1], "threads": threads}


def _fit_child(threads):
    import numpy as np

    import pyfastnn as pf

    if threads:
        pf.set_num_threads(threads)
    x, y = pf.datasets.load_digits()
    x = np.ascontiguousarray(x, dtype=np.float32)
    net = pf.MLP([64, 256, 256, 10], seed=0)
    net.fit(x, y, optimizer=pf.SGD(lr=0.01), batch_size=64, epochs=1, progress=False)  # warm-up
    t0 = time.perf_counter()
    net.fit(x, y, optimizer=pf.SGD(lr=0.01), batch_size=64, epochs=10, progress=False)
    return {"fit": time.perf_counter() - t0, "threads": [pf.get_num_threads()]}


def _children_cpu():
    import resource  # Unix only, like taskset; LoadMonitor.available is False without it

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run_child(monitor, args, prefix=(), **env):
    """The child's result, plus "foreign": CPUs other processes kept busy meanwhile (None without /proc/stat)."""
    full = {k: v for k, v in os.environ.items() if k not in ("PYFASTNN_NUM_THREADS", "OMP_NUM_THREADS")}
    full.update(env)
    busy0, cpu0 = (monitor._busy()[0], _children_cpu()) if monitor.available else (0.0, 0.0)
    t0 = time.perf_counter()
    out = subprocess.run([*prefix, sys.executable, __file__, "--child", *args], env=full, capture_output=True,
                         text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    if monitor.available:
        busy = monitor._busy()[0] - busy0 - (_children_cpu() - cpu0)
        result["foreign"] = max(busy, 0.0) / (time.perf_counter() - t0)
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, n = args.child[0], int(args.child[1])
        print(json.dumps(_grid_child(n) if kind == "grid" else _fit_child(n)))
        return 0

    from pyfastnn import _backend, benchmark

    cpus = _backend.usable_cpus()
    print(f"cpu: {benchmark.cpu_model()}; {cpus} usable CPUs; pyfastnn backend {_backend.get_backend()}; "
          f"medians of {args.repeat} runs, each in a fresh process")

    configs = {
        "n_jobs=1 (reference)": (("grid", "1"), {}),
        "n_jobs=2 old: all CPUs per worker": (("grid", "2"), {"PYFASTNN_NUM_THREADS": str(cpus)}),
        "n_jobs=2 new: OMP_NUM_THREADS from loky": (("grid", "2"), {}),
    }
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if shutil.which("taskset") and cpu is not None:
        pin = ("taskset", "-c", str(cpu))
        configs["taskset 1 CPU, 2 threads (old default)"] = (("fit", "2"), {"prefix": pin})
        configs["taskset 1 CPU, new default"] = (("fit", "0"), {"prefix": pin})
    else:
        print("taskset or CPU affinity unavailable: the pinned comparison is skipped")

    monitor = benchmark.LoadMonitor()
    results = {name: [] for name in configs}
    for _ in range(args.repeat):
        for name, (child, env) in configs.items():
            env = dict(env)
            results[name].append(_run_child(monitor, child, env.pop("prefix", ()), **env))

    def median(name, key):
        return statistics.median(r[key] for r in results[name])

    def foreign(name):  # the noise: other processes' CPU use during these runs
        return f"{median(name, 'foreign'):.2f}" if monitor.available else "?"

    print(f"\n{'GridSearchCV on the digits (4 candidates x 3 folds)':<44} {'cold s':>7} {'warm s':>7}  "
          "threads  other processes' CPUs")
    for name in [n for n in configs if n.startswith("n_jobs")]:
        print(f"{name:<44} {median(name, 'cold'):7.2f} {median(name, 'warm'):7.2f}  "
              f"{str(results[name][0]['threads']):<7}  {foreign(name)}")
    old, new = "n_jobs=2 old: all CPUs per worker", "n_jobs=2 new: OMP_NUM_THREADS from loky"
    print(f"new / old: cold {median(new, 'cold') / median(old, 'cold'):.2f}x, "
          f"warm {median(new, 'warm') / median(old, 'warm'):.2f}x (< 1: faster now)")
    pinned = [n for n in configs if n.startswith("taskset")]
    if pinned:
        print(f"\n{'fit 64-256-256-10, 10 epochs, batch 64':<44} {'s':>7}  threads  other processes' CPUs")
        for name in pinned:
            print(f"{name:<44} {median(name, 'fit'):7.2f}  {str(results[name][0]['threads']):<7}  {foreign(name)}")
        print(f"new / old: {median(pinned[1], 'fit') / median(pinned[0], 'fit'):.2f}x (< 1: faster now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
