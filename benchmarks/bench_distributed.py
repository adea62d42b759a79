"""Distributed data-parallel training on one machine: 2 MPI ranks × 1 thread against 1 process × 2 threads.

Both sides train the same network with the same global batch (2 ranks × b rows against one process with
2·b rows: the same updates), measured alternately in one run; the ratio of their samples/s is the price of
the per-step allreduce and of the rank-parallel layout. Then a cost model for N machines from the numbers
measured here (see docs/distributed.md).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_distributed.py
    python benchmarks/bench_distributed.py --quick          # fewer steps and repeats

Needs mpi4py and mpiexec (pip install 'pyfastnn[mpi]'). As root Open MPI also needs
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (set here for the child processes).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPES = {"M": [784, 512, 256, 10], "L": [784, 2048, 2048, 10]}


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---- the measured programs (run as child processes) ------------------------------------------------------


def worker(args):
    """Train the shape on random data and print samples/s (rank 0), and with MPI the time of one allreduce
    of the gradient buffer."""
    import pyfastnn as pf

    comm = None
    ranks, rank = 1, 0
    if args.mpi:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        ranks, rank = comm.Get_size(), comm.Get_rank()
    sizes = SHAPES[args.shape]
    rows = args.batch * args.steps
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((rows, sizes[0]), dtype=np.float32)
    y = rng.integers(0, sizes[-1], rows)
    net = pf.MLP(sizes, seed=0)
    opt = pf.SGD(lr=0.01, momentum=0.9)
    fit = dict(optimizer=opt, batch_size=args.batch, progress=False, seed=1, comm=comm)
    net.fit(x, y, epochs=1, **fit)  # warm-up: buffers, page faults, thread pool
    if comm is not None:
        comm.Barrier()
    start = time.perf_counter()
    net.fit(x, y, epochs=args.epochs, **fit)
    if comm is not None:
        comm.Barrier()
    elapsed = time.perf_counter() - start
    out = {"samples_per_s": rows * ranks * args.epochs / elapsed,
           "step_s": elapsed / (args.epochs * args.steps)}
    if comm is not None:
        from mpi4py import MPI

        buf = np.zeros(net.n_parameters + 3, dtype=np.float32)
        for _ in range(3):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        comm.Barrier()
        start = time.perf_counter()
        for _ in range(50):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        out["allreduce_s"] = (time.perf_counter() - start) / 50
        out["gradient_bytes"] = buf.nbytes
    if rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


# ---- the driver -------------------------------------------------------------------------------------------


def run(command, threads, timeout=900):
    env = dict(os.environ, PYFASTNN_NUM_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(found[0][7:])


def measure_pair(shape, batch, steps, epochs, repeats):
    """(2 ranks × 1 thread, per-rank batch ``batch``) and (1 process × 2 threads, batch 2·batch),
    alternated."""
    me = [sys.executable, os.path.abspath(__file__), "--worker", "--shape", shape, "--epochs", str(epochs)]
    dist, single = [], []
    for _ in range(repeats):
        dist.append(run(["mpiexec", "-n", "2", "--bind-to", "core", *me, "--mpi", "--batch", str(batch),
                         "--steps", str(steps)], threads=1))
        single.append(run([*me, "--batch", str(2 * batch), "--steps", str(steps)], threads=2))
    return dist, single


def cost_model(step_compute_s, gradient_bytes, latency_s):
    """The largest N (up to 4096) at which ring-allreduce data parallelism keeps ≥ 80 % efficiency, per link
    speed: efficiency(N) = t_c / (t_c + 2(N−1)·α + 2(N−1)/N · bytes / bandwidth), no overlap assumed."""
    out = {}
    for gbit in (10, 25, 100):
        bandwidth = gbit * 1e9 / 8
        best = 1
        for n in range(2, 4097):
            comm_s = 2 * (n - 1) * latency_s + 2 * (n - 1) / n * gradient_bytes / bandwidth
            if step_compute_s / (step_compute_s + comm_s) >= 0.8:
                best = n
        out[gbit] = best
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    p.add_argument("--batches", default="128,512", help="per-rank batch sizes (default 128,512)")
    p.add_argument("--latency-us", type=float, default=25.0,
                   help="per-message latency α of the network in the cost model (default 25 µs: TCP over "
                   "Ethernet)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shape", default="M", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    import pyfastnn as pf

    steps, repeats = (12, 2) if args.quick else (32, 3)
    print(f"# bench_distributed: {' '.join(sys.argv)}")
    print(f"cpu: {cpu_model()}; {os.cpu_count()} logical CPUs; pyfastnn {pf.__version__} backend "
          f"{pf.get_backend()}; python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    if hasattr(os, "getloadavg"):  # other processes on these CPUs make every number here unreliable
        print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            print(f"warning: {name}={os.environ[name]} is set (run under env -u {name})")
    print("M = [784, 512, 256, 10] float32, SGD with momentum; samples/s, median of alternated runs "
          f"({repeats} each, {steps} steps × 2 epochs per run)\n")
    print("| per-rank batch | 2 ranks × 1 thread | 1 process × 2 threads (batch 2b) | ratio "
          "| allreduce / step | step (2 ranks) |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for batch in (int(b) for b in args.batches.split(",")):
        dist, single = measure_pair("M", batch, steps, 2, repeats)
        d = statistics.median(r["samples_per_s"] for r in dist)
        s = statistics.median(r["samples_per_s"] for r in single)
        ar = statistics.median(r["allreduce_s"] for r in dist)
        step = statistics.median(r["step_s"] for r in dist)
        rows[batch] = (d, s, ar, step, dist[0]["gradient_bytes"])
        print(f"| {batch} | {d:,.0f} | {s:,.0f} | {d / s:.3f} | {ar * 1e3:.3f} ms "
              f"({dist[0]['gradient_bytes'] / 1e6:.2f} MB, {ar / step:.1%} of a step) "
              f"| {step * 1e3:.2f} ms |")
        sys.stdout.flush()

    print("\n## cost model: N machines like this one (2 cores each), ring allreduce, no overlap")
    print(f"per-message latency α = {args.latency_us:g} µs; compute per step measured here (1 process × 2 "
          "threads, batch b per machine)\n")
    print("| shape | batch per machine | compute / step | gradient "
          "| largest N ≥ 80 % at 10 / 25 / 100 Gbit/s |")
    print("|---|---|---|---|---|")
    me = [sys.executable, os.path.abspath(__file__), "--worker", "--epochs", "1"]
    for shape in ("M", "L"):
        params = sum(a * b + a for b, a in zip(SHAPES[shape][:-1], SHAPES[shape][1:]))
        for batch in (int(b) for b in args.batches.split(",")):
            measured = run([*me, "--shape", shape, "--batch", str(batch),
                            "--steps", str(8 if shape == "L" else steps)], threads=2)
            t = measured["step_s"]
            model = cost_model(t, 4 * params, args.latency_us * 1e-6)
            print(f"| {shape} | {batch} | {t * 1e3:.1f} ms | {4 * params / 1e6:.1f} MB | "
                  f"{model[10]} / {model[25]} / {model[100]} |")
            sys.stdout.flush()
    if hasattr(os, "getloadavg"):
        print(f"\nload average after: {os.getloadavg()[0]:.2f} (this run's own processes count for up to 2)")


if __name__ == "__main__":
    main()
