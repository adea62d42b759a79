"""``net.train_step`` per call: through the native plan (pyfastnn/_train_step.py) against the general path it
replaced, and against PyTorch's per-step loop, side by side in one process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train_step.py [--repeat 7]
        [--cases S:1,M:32] [--optimizers sgd,momentum,adam] [--no-torch]

Each case (shape:batch) trains pf.MLP(sizes, seed=0) on consecutive batches of i.i.d. random rows (float32,
int64 labels, softmax + cross-entropy, lr 0.01), warmed up first. Columns, in µs per call (the median over
--repeat runs; the runs of the three alternate, so drift on a shared machine hits all alike):

  plan      ``net.train_step(x, y, optimizer=opt)``, the cpp backend's path
  general   the same calls with the plan switched off (``pyfastnn.network.fast_train_step`` answering None):
            Python validation, a snapshot of every parameter and state array, ``_core.train_epoch``
  torch     nn.Sequential + CrossEntropyLoss + optim (SGD, SGD with momentum, Adam), zero_grad / forward /
            backward / step / loss.item() per batch (pyfastnn/_peers.py's loop); skipped without torch

Both pyfastnn columns give bit-identical weights (tests/test_train_step_fast.py). Threads: 2 for every
library.
"""

import argparse
import statistics
import subprocess
import time

import numpy as np

import pyfastnn as pf
from pyfastnn import benchmark as bm
from pyfastnn import network

LR = 0.01
OPTIMIZERS = {
    "sgd": (lambda: pf.SGD(lr=LR), lambda torch, p: torch.optim.SGD(p, lr=LR)),
    "momentum": (lambda: pf.SGD(lr=LR, momentum=0.9),
                 lambda torch, p: torch.optim.SGD(p, lr=LR, momentum=0.9)),
    "adam": (lambda: pf.Adam(lr=1e-3), lambda torch, p: torch.optim.Adam(p, lr=1e-3)),
}


def pyfastnn_run(sizes, batches, make_opt, plan):
    """Seconds per call of train_step over `batches`, with the plan on or off."""
    fast = network.fast_train_step
    if not plan:
        network.fast_train_step = lambda *args: None
    try:
        net, opt = pf.MLP(sizes, seed=0), make_opt()
        for x, y in batches[:20]:
            net.train_step(x, y, optimizer=opt)
        start = time.perf_counter()
        for x, y in batches:
            net.train_step(x, y, optimizer=opt)
        return (time.perf_counter() - start) / len(batches)
    finally:
        network.fast_train_step = fast


def torch_run(torch, sizes, batches, make_opt):
    net = pf.MLP(sizes, seed=0)
    layers = []
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin] + ([torch.nn.ReLU()] if l < len(net.weights) - 1 else [])
    model, loss_fn = torch.nn.Sequential(*layers), torch.nn.CrossEntropyLoss()
    opt = make_opt(torch, model.parameters())
    tensors = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def step(xb, yb):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    for xb, yb in tensors[:20]:
        step(xb, yb)
    start = time.perf_counter()
    for xb, yb in tensors:
        step(xb, yb)
    return (time.perf_counter() - start) / len(tensors)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--cases", default="S:1,M:32", help="shape:batch pairs (shapes S, M, L)")
    p.add_argument("--optimizers", default="sgd,momentum,adam")
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    pf.set_num_threads(2)
    torch = None
    if not args.no_torch:
        torch, reason = bm.import_torch()
        if torch is None:
            print(f"torch skipped: {reason}")
        else:
            torch.set_num_threads(2)
    print(subprocess.run("lscpu | grep 'Model name'; uptime", shell=True, capture_output=True,
                         text=True, check=False).stdout.strip())
    print(f"{'case':10s} {'optimizer':9s} {'plan µs':>9s} {'general µs':>11s} {'torch µs':>9s} "
          f"{'general/plan':>12s} {'torch/plan':>10s}")
    for case in args.cases.split(","):
        shape, batch = case.split(":")
        sizes, batch = bm.SHAPES[shape], int(batch)
        # Enough calls for ~0.1 s a run at the plan's speed (measured once), at least 50.
        rng = np.random.default_rng(0)
        probe = [(rng.standard_normal((batch, sizes[0])).astype(np.float32),
                  rng.integers(0, sizes[-1], batch)) for _ in range(40)]
        per_call = pyfastnn_run(sizes, probe, OPTIMIZERS["sgd"][0], True)
        n = max(50, int(0.1 / per_call))
        x = rng.standard_normal((n * batch, sizes[0])).astype(np.float32)
        y = rng.integers(0, sizes[-1], n * batch)
        batches = [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(n)]
        for name in args.optimizers.split(","):
            ours, theirs = OPTIMIZERS[name]
            runs = {"plan": [], "general": [], "torch": []}
            for _ in range(args.repeat):
                runs["plan"].append(pyfastnn_run(sizes, batches, ours, True))
                runs["general"].append(pyfastnn_run(sizes, batches, ours, False))
                if torch is not None:
                    runs["torch"].append(torch_run(torch, sizes, batches, theirs))
            med = {k: statistics.median(v) * 1e6 if v else float("nan") for k, v in runs.items()}
            print(f"{case:10s} {name:9s} {med['plan']:9.2f} {med['general']:11.2f} {med['torch']:9.2f} "
                  f"{med['general'] / med['plan']:11.2f}x {med['torch'] / med['plan']:9.2f}x")
    print(subprocess.run("uptime", shell=True, capture_output=True, text=True, check=False).stdout.strip())


if __name__ == "__main__":
    main()
