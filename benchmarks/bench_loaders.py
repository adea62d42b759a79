"""Time and peak memory of the CSV readers on an MNIST-like file, side by side in one run.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_loaders.py [--rows 60000]
        [--cols 785] [--repeat 1] [--before DIR] [--gzip]

The file is written to a temporary directory: ``--rows`` lines of ``--cols`` comma-separated integers, the
first ``--cols - 1`` digit-like pixels (mostly 0, the rest 1-255, as in MNIST) and the last a label 0-9, under
a header line ``p0,...,label``.

Each reader runs in a fresh subprocess, its modules imported before the clock starts (a first call pays
those imports once: about a second for pandas). The table gives the wall time of the call (best of
``--repeat`` subprocesses), its peak resident memory minus the resident size just before it (Linux's VmHWM
after resetting it through /proc/self/clear_refs, else ``ru_maxrss``; either also sees what pyarrow and
pandas allocate outside Python's allocator), and the ratio of both to ``np.loadtxt``. Rows:

  load_csv engine=...      pyfastnn.datasets.load_csv with each engine available here (float32 X, int64 y)
  load_csv (DIR)           with ``--before DIR``: load_csv of the pyfastnn tree in DIR (an older version)
  pandas.read_csv          then ``.to_numpy(np.float32)``, when pandas is installed
  np.loadtxt               ``delimiter=",", skiprows=1, dtype=np.float32``

Every reader's data (X and y side by side) is checked against np.loadtxt's array, by checksums the
subprocess prints after the measurement.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Run in the subprocess: read, then print seconds, peak-minus-start RSS in KiB and a checksum of the array.
CHILD = textwrap.dedent(
    """
    import resource, sys, time
    import numpy as np
    {setup}
    path = sys.argv[1]

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key))

    try:  # reset the peak (VmHWM) to the current size, so the imports' own peak does not hide the call's
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        start = status("VmRSS:")
    except OSError:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = {call}
    seconds = time.perf_counter() - t0
    try:
        peak = status("VmHWM:")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    A = np.column_stack(result) if isinstance(result, tuple) else result  # after the peak is read
    A = np.ascontiguousarray(A, dtype=np.float64)
    print(seconds, peak - start, float(A.sum()), float((A * np.arange(1, A.shape[1] + 1)).sum()), A.shape)
    """
)


def write_csv(path, rows, cols, seed=0):
    """An MNIST-like CSV: about 80 % zero pixels, the rest 1-255, then a label 0-9."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write(",".join(f"p{j}" for j in range(cols - 1)) + ",label\n")
        for start in range(0, rows, 5000):
            n = min(5000, rows - start)
            pixels = rng.integers(1, 256, (n, cols - 1)) * (rng.random((n, cols - 1)) < 0.2)
            block = np.column_stack([pixels, rng.integers(0, 10, n)])
            f.write("\n".join(",".join(map(str, row)) for row in block.tolist()) + "\n")


def readers(before):
    """(name, setup, call, PYTHONPATH) of every reader available here."""
    out = []
    load = "pyfastnn.datasets.load_csv(path{kw})"
    sys.path.insert(0, ROOT)
    import inspect

    import pyfastnn.datasets

    engines = []
    if "engine" in inspect.signature(pyfastnn.datasets.load_csv).parameters:
        for engine in ("pyarrow", "pandas", "numpy"):
            try:
                engine == "numpy" or __import__(engine)
                engines.append(engine)
            except ImportError:
                pass
    for engine in engines:
        # The engine's module is imported before the clock starts, as pandas is for pandas.read_csv.
        module = {"pyarrow": "; import pyarrow.csv, pyarrow.compute", "pandas": "; import pandas",
                  "numpy": ""}[engine]
        setup = "import pyfastnn.datasets" + module
        out.append((f"load_csv engine={engine!r}", setup,
                    load.format(kw=f", engine={engine!r}"), ROOT))
    if before:
        out.append((f"load_csv ({before})", "import pyfastnn.datasets", load.format(kw=""),
                    os.path.abspath(before)))
    try:
        import pandas  # noqa: F401
        out.append(("pandas.read_csv", "import pandas", "pandas.read_csv(path).to_numpy(np.float32)", ROOT))
    except ImportError:
        pass
    out.append(("np.loadtxt", "", 'np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)', ROOT))
    return out


def run(name, setup, call, pythonpath, path):
    env = dict(os.environ, PYTHONPATH=pythonpath)
    code = CHILD.format(setup=setup, call=call)
    # From the file's directory: `python -c` puts the working directory first on sys.path, where a source
    # tree would shadow PYTHONPATH's pyfastnn.
    done = subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True,
                          check=False, cwd=os.path.dirname(path))
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    seconds, kib, s1, s2, *shape = done.stdout.split(maxsplit=4)
    return float(seconds), int(kib) / 1024, (float(s1), float(s2), " ".join(shape))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--cols", type=int, default=785)
    parser.add_argument("--repeat", type=int, default=1, help="runs per reader (best time shown)")
    parser.add_argument("--before", metavar="DIR", help="also time load_csv of the pyfastnn tree in DIR")
    parser.add_argument("--gzip", action="store_true", help="gzip the file (every reader reads it)")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.cols < 2 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1, --cols at least 2")

    cpu = "unknown"
    try:
        cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True,
                             check=False).stdout.strip()
    except OSError:
        pass
    versions = [f"numpy {np.__version__}"]
    for mod in ("pandas", "pyarrow"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} absent")
    print(cpu)
    print(f"Python {sys.version.split()[0]}, {', '.join(versions)}, {os.cpu_count()} CPUs")
    pinned = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    if pinned:
        print(f"warning: {', '.join(pinned)} set; run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits.csv")
        write_csv(path, args.rows, args.cols)
        if args.gzip:
            import gzip
            import shutil
            with open(path, "rb") as src, gzip.open(path + ".gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            path += ".gz"
        size = os.path.getsize(path) / 2**20
        print(f"file: {args.rows} x {args.cols} ({size:.0f} MiB{', gzipped' if args.gzip else ''}); "
              f"X alone is {args.rows * (args.cols - 1) * 4 / 2**20:.0f} MiB as float32")
        results = []
        for name, setup, call, pythonpath in readers(args.before):
            runs = [run(name, setup, call, pythonpath, path) for _ in range(args.repeat)]
            best = min(r[0] for r in runs)
            results.append((name, best, max(r[1] for r in runs), runs[0][2]))
        ref_t, ref_m, ref_sum = results[-1][1:]
        print(f"\n{'reader':<30} {'seconds':>8} {'x loadtxt':>9} {'peak MiB':>9} {'x loadtxt':>9}  same data")
        for name, t, m, sums in results:
            print(f"{name:<30} {t:8.2f} {t / ref_t:9.2f} {m:9.0f} {m / max(ref_m, 1e-9):9.2f}  "
                  f"{'yes' if sums == ref_sum else 'NO: ' + str(sums)}")


if __name__ == "__main__":
    main()
