"""``pyfastnn bench --targets``: pyfastnn's performance targets, each measured side by side with its peer in one
run and printed as a table ``# | what | measured | target | met?`` (also ``benchmarks/bench_train.py
--targets``).

The targets are written down once, in ``TARGETS`` below: speed as ratios to a peer (PyTorch, scikit-learn,
NumPy) or to the machine's own sgemm rate, all measured in the same run, so they hold on any CPU. The rows
reuse the machinery of :mod:`pyfastnn.benchmark` (``Meter``: sized runs after an idle gap, redone when other
processes used the CPUs; ``measure_shape``: the peers' runs alternate, medians of the repeats; ``gemm_rates``;
``sanity_check``; ``EqualThreads``) and the peers of :mod:`pyfastnn._peers`, plus two measurements of their own:

* the Fashion-MNIST-shaped run (row ``fashion``): 784-256-128-10, Adam lr 1e-3, batch 128, shuffled epochs,
  float32, every library from the same initial weights, on a generated stand-in of Fashion-MNIST's shape
  (60,000 training and 10,000 test rows of 784 pixels in (0, 1), 10 classes; ``fashion_standin``): the
  libraries' epochs alternate (pyfastnn ``fit(epochs=1)``, a PyTorch epoch, scikit-learn ``partial_fit``, each
  keeping its optimizer state), and each one's time is the median of its epochs;
* pf.gemm right after a NumPy call (row ``gemm-after-numpy``): a loop alternating ``np.matmul`` and ``pf.gemm``
  on the same operands with no gap, as a hand-written training loop does, each call timed.
"""

import collections
import json
import math
import os
import platform
import statistics
import time
import warnings

import numpy as np

from . import _backend, _peers
from . import benchmark as bm

Goal = collections.namedtuple("Goal", "quantity op threshold")
Target = collections.namedtuple("Target", "key what target goals")

# The targets: one row each; a row is met when every goal holds (quantity op threshold).
TARGETS = (
    Target("fit-M-256", "`fit`, M, B=256: real FLOP rate ÷ NumPy sgemm rate (and × PyTorch)", "≥ 0.92",
           (Goal("of_sgemm", ">=", 0.92),)),
    Target("fit-S-1", "`fit`, S, B=1 vs PyTorch", "≥ 50×", (Goal("vs_torch", ">=", 50.0),)),
    Target("fit-M-1", "`fit`, M, B=1 vs PyTorch", "≥ 8×", (Goal("vs_torch", ">=", 8.0),)),
    Target("step-S-1", "`net.train_step` from Python, S, B=1: µs a call, × PyTorch's loop", "≤ 6 µs (≥ 15×)",
           (Goal("us_per_call", "<=", 6.0), Goal("vs_torch", ">=", 15.0))),
    Target("step-M-32", "`net.train_step` from Python, M, B=32 vs PyTorch", "≥ 2.5×",
           (Goal("vs_torch", ">=", 2.5),)),
    Target("fashion", "Fashion-MNIST-shaped 784-256-128-10, Adam lr 1e-3, batch 128, shuffled, `fit` vs "
           "scikit-learn and PyTorch", "≥ 3× both, accuracy within 0.01",
           (Goal("vs_sklearn", ">=", 3.0), Goal("vs_torch", ">=", 3.0), Goal("acc_vs_sklearn", ">=", -0.01),
            Goal("acc_vs_torch", ">=", -0.01))),
    Target("gemm", "`pf.gemm` vs NumPy, float32: n = 2048 and Δ·W of M at B=256", "≥ 0.95 each",
           (Goal("n2048", ">=", 0.95), Goal("delta_w", ">=", 0.95))),
    Target("numba-M-1", "Numba backend `fit`, M, B=1 vs PyTorch", "≥ 1.5×", (Goal("vs_torch", ">=", 1.5),)),
    Target("gemm-after-numpy", "`pf.gemm` right after `np.matmul` (alternating, no gap), Δ·W shape, vs NumPy",
           "≥ 0.9 × the ratio with idle gaps", (Goal("of_idle", ">=", 0.9),)),
)

FASHION = {"sizes": [784, 256, 128, 10], "lr": 1e-3, "batch": 128, "epochs": 10, "train": 60_000, "test": 10_000}
FASHION_EPOCHS = {"full": 10, "quick": 2, "smoke": 1}
SMOKE_FASHION_ROWS = (512, 256)
DELTA_W = (256, 512, 784)      # Δ·W of M at B=256: (256×512)·(512×784)
GEMM_BIG = 2048
SMOKE_DELTA_W, SMOKE_GEMM_BIG = (32, 64, 96), 128
WAIT_BUDGET_S = 60.0           # the most the whole run waits for a quiet machine (full mode)


# ------------------------------------------------------------------------------------------------------------
# The Fashion-MNIST stand-in


def fashion_standin(rows, seed=0, latent=12, hidden=32, label_noise=0.2, pixel_noise=0.5):
    """Rows shaped like Fashion-MNIST whose labels a network can learn: (x (rows, 784) float32 in (0, 1),
    y (rows,) int64 in 0..9).

    Each row is a point z ~ N(0, I) of a ``latent``-dimensional space drawn as an image (a fixed random linear
    map to 784 pixels, plus pixel noise, through a logistic), and labelled by a fixed random teacher network
    on z (tanh hidden layer) with Gumbel noise on its logits: about 13 % of the labels are not the teacher's
    choice, so no model reaches 100 % and accuracies are comparable between libraries.
    """
    rng = np.random.default_rng(seed)
    basis = (rng.standard_normal((latent, 784)) * (2.0 / math.sqrt(latent))).astype(np.float32)
    t1 = rng.standard_normal((latent, hidden)) / math.sqrt(latent)
    t2 = rng.standard_normal((hidden, 10)) * (3.0 / math.sqrt(hidden))
    x = np.empty((rows, 784), np.float32)
    y = np.empty(rows, np.int64)
    for lo in range(0, rows, 10_000):  # in chunks: the temporaries of all 70,000 rows would take ~0.5 GB
        hi = min(rows, lo + 10_000)
        z = rng.standard_normal((hi - lo, latent)).astype(np.float32)
        a = z @ basis + pixel_noise * rng.standard_normal((hi - lo, 784), dtype=np.float32)
        np.negative(a, out=a)
        np.exp(a, out=a)
        a += 1.0
        np.reciprocal(a, out=a, dtype=np.float32)
        x[lo:hi] = a
        logits = np.tanh(z @ t1) @ t2 + label_noise * rng.gumbel(size=(hi - lo, 10))
        y[lo:hi] = logits.argmax(axis=1)
    return x, y


# ------------------------------------------------------------------------------------------------------------
# Measurements


class _Run:
    """What every row needs: the mode, the meter, the peers that can run and why the others cannot."""

    def __init__(self, mode, settings, torch, torch_reason, sk_reason, say):
        self.mode = mode
        self.say = say
        self.meter = bm.Meter(settings)
        self.torch = torch
        self.shapes = bm.SMOKE_SHAPES if mode == "smoke" else bm.SHAPES
        states = _backend.backends()
        # The short reasons the table prints; the long ones go to the notes.
        self.missing = {}
        self.notes = []
        for peer, reason in bm.unavailable_peers(bm.PEERS, torch_reason, sk_reason).items():
            backend = bm.BACKEND_OF.get(peer)
            self.missing[peer] = (f"{backend} backend unavailable" if backend else
                                  "torch not installed" if peer == "torch" else "scikit-learn not installed")
            if peer in ("cpp fit", "numba-be", "torch", "sklearn"):
                self.notes.append(f"{peer}: {reason}")
        self.cpp = states["cpp"]["available"]
        self._pools = {}

    def pool(self, name):
        if name not in self._pools:
            self._pools[name] = bm.make_pool(self.shapes[name], 256, smoke=self.mode == "smoke")
        return self._pools[name]

    def rates(self, name, batch, peers):
        """{peer: median samples/s} of the peers that can run, measured side by side (``measure_shape``)."""
        peers = [p for p in peers if p not in self.missing]
        if not peers:
            return {}
        x, y = self.pool(name)
        cell = bm.measure_shape(self.shapes[name], [batch], peers, self.meter, x, y, self.torch)[batch]
        for peer, text in cell.notes.items():
            self.notes.append(f"{name} B={batch} {peer}: {text}")
        self.say(f"{name} B={batch}: " + ", ".join(f"{p} {bm.fmt_rate(v)}/s" for p, v in cell.rates.items()))
        return cell.rates

    def ratio(self, rates, a, b):
        """(rates[a] / rates[b], None) or (None, why not)."""
        for p in (a, b):
            if p in self.missing:
                return None, self.missing[p]
            if p not in rates:
                return None, f"{p} not measured"
        return rates[a] / rates[b], None


def gemm_after_numpy(meter, shape):
    """GFLOP/s medians of np.matmul and pf.gemm (cpp) on (m×k)·(k×n) for ``shape=(m, k, n)`` in a loop that
    alternates the two with no gap, each call timed. Returns ({"numpy": (median, best), "pf.gemm": ...}, how
    many parallel regions pyfastnn's pool ran on one thread meanwhile (None if the core does not say), the
    pairs of calls per timed block)."""
    from . import _core, gemm

    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    outs = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
    flops = 2.0 * m * k * n
    calls = {"numpy": [], "pf.gemm": []}

    def loop(_rows, pairs):
        for v in calls.values():
            v.clear()  # a run the meter redoes replaces the previous one's times
        for _ in range(pairs):
            t0 = time.perf_counter()
            np.matmul(a, b, out=outs[0])
            t1 = time.perf_counter()
            gemm(a, b, out=outs[1])
            calls["numpy"].append(t1 - t0)
            calls["pf.gemm"].append(time.perf_counter() - t1)

    stats = getattr(_core, "_thread_stats", dict)
    with _backend.use_backend("cpp"):
        loop(0, 3)  # warm-up
        pair = max(bm._timed(loop, 0, 3) / 3, 1e-9)
        pairs = 3 if meter.s.fixed_steps else max(20, math.ceil(meter.s.target_s / pair))
        serial0 = stats().get("serial_regions")
        rates = {name: [] for name in calls}
        for _ in range(max(3, meter.s.repeat)):
            meter.timed(loop, 0, pairs)
            for name, times in calls.items():
                rates[name].append(flops / statistics.median(times) / 1e9)
        serial1 = stats().get("serial_regions")
    serial = None if serial0 is None or serial1 is None else serial1 - serial0
    return {name: (statistics.median(v), max(v)) for name, v in rates.items()}, serial, pairs


def fashion_run(run, epochs, rows_train, rows_test, say=None):
    """The Fashion-MNIST-shaped run: {library: {"epoch_s": [...], "accuracy": float}} plus {library: reason}
    for the libraries that cannot run. The libraries' epochs alternate, each after an idle gap."""
    from .optim import Adam

    f = FASHION
    x, y = fashion_standin(rows_train + rows_test)
    x_test, y_test = x[rows_train:], y[rows_train:]
    x, y = x[:rows_train], y[:rows_train]
    start = bm.fresh_net(f["sizes"])
    libs, missing = {}, {}

    # make(xs, ys) -> (epoch(e), accuracy()): a model from the initial weights that trains on (xs, ys).
    if "cpp fit" in run.missing:
        missing["pyfastnn"] = run.missing["cpp fit"]
    else:
        def make_pf(xs, ys):
            net, opt = start.copy(), Adam(lr=f["lr"])

            def epoch(e):
                with _backend.use_backend("cpp"):
                    net.fit(xs, ys, optimizer=opt, batch_size=f["batch"], epochs=1, shuffle=True, seed=e,
                            progress=False)

            return epoch, lambda: net.accuracy(x_test, y_test)

        libs["pyfastnn"] = make_pf
    if "torch" in run.missing:
        missing["PyTorch"] = run.missing["torch"]
    else:
        torch = run.torch

        def make_torch(xs, ys):
            tp = _peers.TorchMLP(start.weights, start.biases, f["lr"], optimizer="adam")
            xt, yt = tp.tensors(xs, ys)
            gen = torch.Generator().manual_seed(0)

            def epoch(e):
                tp.train_epoch(xt, yt, f["batch"], order=torch.randperm(xt.shape[0], generator=gen))

            def accuracy():
                with torch.no_grad():
                    pred = tp.model(torch.from_numpy(x_test)).argmax(dim=1).numpy()
                return float(np.mean(pred == y_test))

            return epoch, accuracy

        libs["PyTorch"] = make_torch
    if "sklearn" in run.missing:
        missing["scikit-learn"] = run.missing["sklearn"]
    else:
        def make_sklearn(xs, ys):
            sk = _peers.SklearnMLP(start.weights, start.biases, f["lr"], f["batch"], solver="adam", shuffle=True)

            def epoch(e):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ConvergenceWarning: partial_fit is one epoch by design
                    sk.train_epoch(xs, ys)

            return epoch, lambda: float(sk.clf.score(x_test, y_test))

        libs["scikit-learn"] = make_sklearn

    # Warm-up on throwaway models (torch and the BLAS start their threads, buffers are allocated).
    for make in libs.values():
        make(x[: 4 * f["batch"]], y[: 4 * f["batch"]])[0](0)
    made = {name: make(x, y) for name, make in libs.items()}
    meter = run.meter
    out = {name: {"epoch_s": []} for name in made}
    for e in range(epochs):
        for name, (epoch, _acc) in made.items():
            # Not meter.timed: a disturbed epoch cannot be redone without training one epoch more.
            meter.wait_quiet()
            mark = meter.monitor.start()
            t0 = time.perf_counter()
            epoch(e)
            out[name]["epoch_s"].append(time.perf_counter() - t0)
            meter.foreign.append(meter.monitor.foreign(mark))
            meter.runs += 1
        if say is not None:
            say(f"epoch {e + 1}/{epochs}: "
                + ", ".join(f"{name} {d['epoch_s'][-1]:.2f} s" for name, d in out.items()))
    for name, (_epoch, accuracy) in made.items():
        out[name]["accuracy"] = accuracy()
    return out, missing


# ------------------------------------------------------------------------------------------------------------
# The table


def judge(target, values):
    """"yes" when every goal of ``target`` holds on ``values`` ({quantity: float or None}), "no" when one
    fails, "n/a" when none fails but some could not be measured."""
    held = []
    for goal in target.goals:
        v = values.get(goal.quantity)
        held.append(None if v is None else (v >= goal.threshold if goal.op == ">=" else v <= goal.threshold))
    if False in held:
        return "no"
    return "yes" if all(held) else "n/a"


def _fmt_load(load):
    return "unknown" if load is None else " / ".join(f"{a:.2f}" for a in load)


def _num(value, reason, spec):
    return f"n/a ({reason})" if value is None else format(value, spec)


def _times(value, reason, peer):
    """"2.3× peer", or "peer: n/a (reason)"."""
    return f"{peer}: n/a ({reason})" if value is None else f"{value:.2f}× {peer}"


def _gemm_ratio(rates):
    """(pf.gemm / NumPy, None) or (None, why not) from gemm_rates' result."""
    if "pf.gemm cpp" not in rates:
        return None, "cpp backend unavailable"
    return rates["pf.gemm cpp"][0] / rates["numpy sgemm"][0], None


def measure(mode="full", threads=None, epochs=None, repeat=None, say=None):
    """Measure every row of TARGETS. Returns (rows, facts, notes, ok): rows are dicts with key, what, measured
    (text), target (text), met ("yes" / "no" / "n/a"), values ({quantity: float or None}); facts are (name,
    text) pairs for the header; ok is False when a sanity check found a peer computing another update."""
    say = say or (lambda text: None)
    t_start = time.perf_counter()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    threads = threads or bm.usable_cpus()
    settings = bm.Settings.for_mode(mode, repeat=repeat)
    if settings.wait_budget_s is None:  # on a shared machine the run still ends in minutes (the notes say how busy)
        settings.wait_budget_s = WAIT_BUDGET_S
    epochs = epochs or FASHION_EPOCHS[mode]
    rows_train, rows_test = SMOKE_FASHION_ROWS if mode == "smoke" else (FASHION["train"], FASHION["test"])
    torch, torch_reason = bm.import_torch()
    sk_version, sk_reason = bm.sklearn_version()
    values = {t.key: {} for t in TARGETS}
    reasons = {t.key: {} for t in TARGETS}
    checks = []
    with bm.EqualThreads(threads, torch) as eq:
        run = _Run(mode, settings, torch, torch_reason, sk_reason, say)
        meter = run.meter
        smoke = mode == "smoke"

        say("GEMM rates (NumPy sgemm, pf.gemm)")
        n = bm.SMOKE_GEMM_N if smoke else bm.GEMM_N
        square = bm.gemm_rates(meter, n, cpp=run.cpp)
        sgemm = square["numpy sgemm"][0]
        big_n = SMOKE_GEMM_BIG if smoke else GEMM_BIG
        big = bm.gemm_rates(meter, big_n, cpp=run.cpp)
        dw_shape = SMOKE_DELTA_W if smoke else DELTA_W
        dw = bm.gemm_rates(meter, None, cpp=run.cpp, shape=dw_shape)
        for what, rates in ((f"{n}³", square), (f"{big_n}³", big), ("Δ·W", dw)):
            say(f"GEMM {what}: " + ", ".join(f"{k} {v[0]:.1f} GFLOP/s" for k, v in rates.items()))
        v, r = values["gemm"], reasons["gemm"]
        v["n2048"], r["n2048"] = _gemm_ratio(big)
        v["delta_w"], r["delta_w"] = _gemm_ratio(dw)
        gemm_text = (f"n = {big_n}: {_num(v['n2048'], r['n2048'], '.2f')}; Δ·W {dw_shape[0]}×{dw_shape[1]}·"
                     f"{dw_shape[1]}×{dw_shape[2]}: {_num(v['delta_w'], r['delta_w'], '.2f')}")
        if run.cpp:
            gemm_text += (f" ({big['pf.gemm cpp'][0]:.0f} vs {big['numpy sgemm'][0]:.0f} and "
                          f"{dw['pf.gemm cpp'][0]:.0f} vs {dw['numpy sgemm'][0]:.0f} GFLOP/s)")

        say("pf.gemm right after np.matmul")
        v, r = values["gemm-after-numpy"], reasons["gemm-after-numpy"]
        if run.cpp:
            alt, serial, pairs = gemm_after_numpy(meter, dw_shape)
            v["ratio"] = alt["pf.gemm"][0] / alt["numpy"][0]
            v["idle_ratio"] = values["gemm"]["delta_w"]
            v["of_idle"] = v["ratio"] / v["idle_ratio"]
            after_text = (f"{v['ratio']:.2f} (idle gaps: {v['idle_ratio']:.2f}; {v['of_idle']:.2f} of it; "
                          f"{alt['pf.gemm'][0]:.0f} vs {alt['numpy'][0]:.0f} GFLOP/s)")
            run.notes.append(f"gemm-after-numpy: {pairs} alternating pairs per block, {max(3, settings.repeat)} "
                             "blocks, the median call of each block, the median block"
                             + (f"; the oversubscription guard ran {serial} parallel regions on one thread "
                                "meanwhile" if serial is not None else ""))
        else:
            v["of_idle"], r["of_idle"] = None, "cpp backend unavailable"
            after_text = f"n/a ({r['of_idle']})"

        for name in ("S", "M"):
            x, y = run.pool(name)
            ok, text = bm.sanity_check(run.shapes[name], x, y, torch)
            checks.append(ok)
            run.notes.append(f"sanity check {name} {run.shapes[name]}: {text}")
            say(f"{name}: {text.split(' (')[0]}")

        s1 = run.rates("S", 1, ["cpp fit", "cpp step", "torch"])
        m1 = run.rates("M", 1, ["cpp fit", "numba-be", "torch"])
        m32 = run.rates("M", 32, ["cpp step", "torch"])
        m256 = run.rates("M", 256, ["cpp fit", "torch"])

        sizes_m = run.shapes["M"]
        v, r = values["fit-M-256"], reasons["fit-M-256"]
        fit = m256.get("cpp fit")
        if fit is None:
            r["of_sgemm"] = run.missing.get("cpp fit", "not measured")
            v["of_sgemm"] = None
        else:
            v["gflops_real"] = fit * bm.real_flops_per_sample(sizes_m) / 1e9
            v["of_sgemm"] = v["gflops_real"] / sgemm
        v["vs_torch"], r["vs_torch"] = run.ratio(m256, "cpp fit", "torch")
        fit_text = _num(v["of_sgemm"], r.get("of_sgemm"), ".2f")
        if fit is not None:
            fit_text += f" ({v['gflops_real']:.1f} of {sgemm:.1f} GFLOP/s)"
        fit_text += f"; {_times(v['vs_torch'], r['vs_torch'], 'PyTorch')}"

        texts = {}
        for key, rates, peer in (("fit-S-1", s1, "cpp fit"), ("fit-M-1", m1, "cpp fit"),
                                 ("step-M-32", m32, "cpp step"), ("numba-M-1", m1, "numba-be")):
            v, r = values[key], reasons[key]
            v["vs_torch"], r["vs_torch"] = run.ratio(rates, peer, "torch")
            texts[key] = (f"n/a ({r['vs_torch']})" if v["vs_torch"] is None else
                          f"{v['vs_torch']:.1f}× ({bm.fmt_rate(rates[peer])} vs {bm.fmt_rate(rates['torch'])} "
                          "samples/s)")
        v, r = values["step-S-1"], reasons["step-S-1"]
        step = s1.get("cpp step")
        v["us_per_call"] = None if step is None else 1e6 / step
        r["us_per_call"] = run.missing.get("cpp step", "not measured")
        v["vs_torch"], r["vs_torch"] = run.ratio(s1, "cpp step", "torch")
        texts["step-S-1"] = (f"{_num(v['us_per_call'], r['us_per_call'], '.1f')} µs a call; "
                             f"{_times(v['vs_torch'], r['vs_torch'], 'PyTorch')}"
                             + (f" ({1e6 / s1['torch']:.0f} µs a step)" if "torch" in s1 else ""))

        say(f"Fashion-MNIST-shaped run: {epochs} epoch(s) of {rows_train:,} rows per library, alternating")
        fashion, fashion_missing = fashion_run(run, epochs, rows_train, rows_test, say)
        v, r = values["fashion"], reasons["fashion"]
        med = {lib: statistics.median(d["epoch_s"]) for lib, d in fashion.items()}
        for lib, q in (("scikit-learn", "sklearn"), ("PyTorch", "torch")):
            if "pyfastnn" in fashion and lib in fashion:
                v[f"vs_{q}"] = med[lib] / med["pyfastnn"]
                v[f"acc_vs_{q}"] = fashion["pyfastnn"]["accuracy"] - fashion[lib]["accuracy"]
            else:
                v[f"vs_{q}"] = v[f"acc_vs_{q}"] = None
                r[f"vs_{q}"] = r[f"acc_vs_{q}"] = fashion_missing.get("pyfastnn") or fashion_missing[lib]
        for lib, d in fashion.items():
            v[f"accuracy {lib}"] = d["accuracy"]
            v[f"s_per_epoch {lib}"] = med[lib]
        fashion_text = (f"{_times(v['vs_sklearn'], r.get('vs_sklearn'), 'scikit-learn')}, "
                        f"{_times(v['vs_torch'], r.get('vs_torch'), 'PyTorch')}; accuracy "
                        + ", ".join(f"{lib} {d['accuracy']:.3f}" for lib, d in fashion.items())
                        + "; s/epoch " + ", ".join(f"{lib} {med[lib]:.2f}" for lib in fashion))
        busy = meter.busy()
        summary = meter.summary()

    texts.update({"fit-M-256": fit_text, "fashion": fashion_text, "gemm": gemm_text,
                  "gemm-after-numpy": after_text})
    rows = []
    for t in TARGETS:
        rows.append({"key": t.key, "what": t.what, "measured": texts[t.key], "target": t.target,
                     "met": judge(t, values[t.key]), "values": values[t.key], "reasons": reasons[t.key]})

    from . import __version__, cpu_info

    info = cpu_info()
    isa = (f"{info.get('isa')} (float32 kernel {info.get('float32', {}).get('kernel')})"
           if info.get("available") else f"compiled core unavailable: {info.get('reason')}")
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    facts = [
        ("CPU", (f"{bm.cpu_model()}; {os.cpu_count()} logical CPUs ({bm.usable_cpus()} usable); "
                 f"{platform.system()} {platform.machine()}")),
        ("threads", f"{threads} for every library (pyfastnn, torch, NumPy's BLAS)"
                    + (f"; NumPy's BLAS not limited: {eq.blas_reason}" if eq.blas_reason else "")),
        ("load average (1 / 5 / 15 min)", f"{_fmt_load(load_start)} at the start, {_fmt_load(load_end)} at the end"),
        ("sgemm rate", f"NumPy float32 {n}×{n}×{n}: {sgemm:.1f} GFLOP/s (median; best {square['numpy sgemm'][1]:.1f})"
                       + (f"; pf.gemm {square['pf.gemm cpp'][0]:.1f}" if "pf.gemm cpp" in square else "")),
        ("BLAS", bm.blas_info()),
        ("pyfastnn", f"{__version__}, ISA {isa}"),
        ("versions", (f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}, "
                      f"scikit-learn {sk_version or 'not installed'}, python {platform.python_version()}")),
        ("shapes", f"S = {run.shapes['S']}, M = {run.shapes['M']}" + (" (smoke: tiny)" if smoke else "")),
        ("run", f"mode {mode}; {settings.repeat} repeat(s) per cell, median; "
                + (f"{settings.fixed_steps} steps per run" if settings.fixed_steps else
                   f"runs of >= {settings.target_s} s after a {settings.quiet_gap_s} s idle gap")
                + f"; Fashion-shaped run: {epochs} epoch(s), {rows_train:,} training and {rows_test:,} test rows"),
    ]
    real, conv = bm.real_flops_per_sample(sizes_m), bm.flops_per_sample(sizes_m)
    notes = [
        (f"fit-M-256: real FLOPs = 6·Σ N_l·N_(l−1) − 2·N_0·N_1 = {real:,} per sample for M "
         f"(pyfastnn.benchmark.flops_per_sample, the other tables' convention, counts 6·Σ = {conv:,}: it includes "
         "the input layer's Δ product, which no backend computes); the sgemm rate is the one above"),
        ("fashion: STAND-IN DATA, not Fashion-MNIST (no network access to data hubs here): "
         f"pyfastnn._bench_targets.fashion_standin, {rows_train:,} + {rows_test:,} rows × 784 pixels in (0, 1), "
         "10 classes, labels from a fixed random teacher network plus noise; accuracy on the held-out rows. "
         "Every library starts from the same initial weights, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8, no "
         "weight decay: scikit-learn alpha=0), batch 128, a new order every epoch. The epochs alternate between "
         "libraries (pyfastnn fit(epochs=1) keeping its Adam object, a PyTorch epoch over torch.randperm, "
         "scikit-learn partial_fit with shuffle=True), each after an idle gap; the ratio is of median epoch "
         "times. fit and partial_fit pay their input checks every epoch here, not once."),
        ("step-S-1 / step-M-32: `net.train_step(x, y, optimizer=pf.SGD(lr=0.01))` once per batch from a Python "
         "loop, against PyTorch's zero_grad/backward/step loop"),
    ]
    for key, why in fashion_missing.items():
        notes.append(f"fashion: {key} n/a ({why})")
    notes += run.notes
    if summary:
        notes.append(summary)
    if busy is not None:
        notes.append(f"WARNING: the machine was busy: other processes used {busy:.2f} CPUs on average during the "
                     "timed runs; the ratios are unreliable")
    notes.append(f"total time {time.perf_counter() - t_start:.0f} s")
    return rows, facts, notes, all(checks)


def table(rows):
    """The rows as a Markdown table: # | what | measured | target | met?"""
    lines = ["| # | what | measured | target | met? |", "|---:|---|---|---|---|"]
    for i, row in enumerate(rows, 1):
        lines.append(f"| {i} | {row['what']} | {row['measured']} | {row['target']} | {row['met']} |")
    return "\n".join(lines)


def report(rows, facts, notes, command, mode):
    lines = ["# pyfastnn performance targets", ""]
    if mode == "smoke":
        lines += ["**Smoke run: tiny sizes, a few steps; the numbers mean nothing.**", ""]
    lines += [f"- command: `{command}`"] + [f"- {k}: {v}" for k, v in facts] + [""]
    lines += [table(rows), ""]
    lines += [("Ratios > 1: pyfastnn is faster. Every row is measured side by side in this run (runs of the "
               "peers alternate, each after an idle gap; medians of the repeats)."), "", "## Notes", ""]
    lines += [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def to_json(rows, facts, notes):
    """The results as JSON text: facts, rows (with their numeric values) and notes."""
    clean = [{**row, "values": {k: (None if v is None else float(v)) for k, v in row["values"].items()}}
             for row in rows]
    return json.dumps({"facts": dict(facts), "rows": clean, "notes": notes}, indent=2, ensure_ascii=False)


def run_command(args, mode, command, say):
    """``pyfastnn bench --targets``: measure, print the report, write DIR/targets.md and DIR/targets.json;
    returns the exit code (1 when a sanity check found peers computing different updates)."""
    for flag in ("shapes", "batches", "peers"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} does not apply with --targets (its rows have fixed shapes, batches and "
                             f"peers); got --{flag} {','.join(map(str, getattr(args, flag)))}")
    os.makedirs(args.out, exist_ok=True)
    warning = bm.pinning_warning(command)
    if warning:
        say(f"WARNING: {warning}")
    rows, facts, notes, ok = measure(mode, args.threads, args.epochs, args.repeat, say)
    if warning:
        notes.insert(0, f"WARNING: {warning}")
    text = report(rows, facts, notes, command, mode)
    paths = [os.path.join(args.out, "targets.md"), os.path.join(args.out, "targets.json")]
    for path, content in zip(paths, (text, to_json(rows, facts, notes))):
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
    print(text, end="")
    say(f"wrote {', '.join(paths)}")
    if not ok:
        say("error: a sanity check found peers computing different updates (CHECK MISMATCH in the notes)")
        return 1
    return 0
