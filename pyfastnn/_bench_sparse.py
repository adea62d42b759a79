"""The sparse benchmark: bag-of-words rows through pyfastnn's embedding-table first layer, against PyTorch's
EmbeddingBag and scikit-learn, side by side in one process (used by ``pyfastnn bench`` and
benchmarks/bench_sparse.py).

The task (issue #10): V words, documents of ~45 tokens drawn from a Zipf distribution of word frequencies
(~35 distinct words, i.e. non-zeros, per row; the counts are the values), hidden 128 ReLU, 2 classes softmax +
cross-entropy, plain SGD, batch 64, float32. Columns, in samples/s:

  cpp fit / numba-be / numpy-be   pyfastnn ``net.fit(csr, y, batch_size=64, shuffle=False)`` on that backend
  torch bag        ``nn.EmbeddingBag(V, 128, mode="sum", sparse=True)`` with ``per_sample_weights`` (the counts),
                   + bias, ReLU, ``nn.Linear(128, 2)``, ``CrossEntropyLoss``, ``optim.SGD``: PyTorch's fast path
  torch bag dense  the same with the default ``sparse=False``: the gradient of the whole table every step
  sklearn          ``MLPClassifier(hidden_layer_sizes=(128,), solver="sgd", momentum=0, alpha=0,
                   batch_size=64)`` on the same CSR matrix, one ``partial_fit`` per pass (with 2 classes
                   scikit-learn uses one logistic output instead of the softmax pair: the same cost)

Besides the rates, the table gives the memory traffic a pyfastnn step needs — the rows of the table E = W¹ᵀ
that the forward pass reads (one per non-zero) and that the update reads and writes (one per distinct word of
the batch) — and the bandwidth that traffic takes at the measured rate, next to NumPy's copy bandwidth on a
buffer of E's size measured in the same run.
"""

import math
import statistics
import time

import numpy as np

from . import _backend
from .benchmark import _update_error, fmt_rate, smoke_from_env, usable_cpus

HIDDEN, CLASSES, BATCH, LR = 128, 2, 64, 0.05
MEAN_TOKENS = 45        # tokens per document (Poisson): ~35 distinct words at V = 50,000
ZIPF_EXPONENT = 1.07    # word frequency ∝ 1 / rank^s, as measured on English text
VOCABS = {"full": (50_000, 1_000_000), "quick": (50_000,), "smoke": (2_000,)}
POOL_DOCS = {"full": 1 << 18, "quick": 1 << 16, "smoke": 512}
# A timed run lasts at least this long (the dense table's runs: 0.2 s). pyfastnn's fit copies and checks all of W¹
# once per epoch (the snapshot that lets a diverging epoch be undone: ~0.09 s at V = 1,000,000), so runs as short
# as the dense table's would measure that copy more than the training; epochs of ~1 s are what training a large
# vocabulary looks like.
RUN_SECONDS = 1.0
SPARSE_PEERS = ("cpp fit", "numba-be", "numpy-be", "torch bag", "torch bag dense", "sklearn")
PEER_DOC = {
    "cpp fit": "pyfastnn `net.fit(csr, y, batch_size=64, shuffle=False)`, cpp backend (embedding-table kernels)",
    "numba-be": "pyfastnn `fit` on the numba backend",
    "numpy-be": "pyfastnn `fit` on the numpy (reference) backend",
    "torch bag": "PyTorch `nn.EmbeddingBag(V, 128, mode=\"sum\", sparse=True)` + per_sample_weights, bias, ReLU, "
                 "`nn.Linear(128, 2)`, `optim.SGD`",
    "torch bag dense": "the same with `sparse=False` (PyTorch's default: a dense gradient of the table)",
    "sklearn": "scikit-learn `MLPClassifier((128,), solver=\"sgd\", momentum=0, alpha=0, batch_size=64)`, "
               "`partial_fit` per pass, on the CSR matrix",
}
BACKEND_OF = {"cpp fit": "cpp", "numba-be": "numba", "numpy-be": "numpy"}


def add_options(parser, threads_help="threads (default: all usable)"):
    """The command-line options every sparse benchmark takes: the mode, the vocabularies, threads, repeats."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="V = 50,000 only, one repeat")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, every code path, numbers meaningless")
    parser.add_argument("--vocab", help="comma-separated vocabulary sizes (default 50000,1000000)")
    parser.add_argument("--threads", type=int, default=None, help=threads_help)
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per cell (median reported)")


def read_options(args):
    """(mode, vocabularies, threads) from the options of :func:`add_options`."""
    mode = "smoke" if args.smoke or smoke_from_env() else ("quick" if args.quick else "full")
    vocabs = [int(v) for v in args.vocab.split(",")] if args.vocab else list(VOCABS[mode])
    return mode, vocabs, args.threads or usable_cpus()


def zipf_documents(n_docs, vocab, seed=0):
    """(X, y): a float32 CSR count matrix (n_docs, vocab) with canonical (sorted, summed) entries, and labels.

    Word ranks follow a Zipf law; a random permutation maps ranks to columns (frequent words are not
    neighbours in memory). A label is the sign of the document's score under random per-word weights, so the
    task can be learnt."""
    import scipy.sparse

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1) ** ZIPF_EXPONENT
    cdf = np.cumsum(p / p.sum())
    lengths = np.maximum(rng.poisson(MEAN_TOKENS, n_docs), 1)
    ranks = np.minimum(np.searchsorted(cdf, rng.random(lengths.sum())), vocab - 1)
    columns = rng.permutation(vocab)[ranks].astype(np.int32)
    rows = np.repeat(np.arange(n_docs), lengths)
    x = scipy.sparse.csr_matrix((np.ones(len(columns), np.float32), (rows, columns)), shape=(n_docs, vocab))
    x.sum_duplicates()
    score = x @ rng.standard_normal(vocab).astype(np.float32)
    return x, (score > np.median(score)).astype(np.int64)


def traffic(x, batch=BATCH, hidden=HIDDEN, itemsize=4):
    """Bytes of E one pyfastnn step moves per sample: a row read per non-zero (forward), and per distinct word
    of the batch a row read and written (update). Returns (bytes per sample, mean distinct words per batch)."""
    distinct = [len(np.unique(x.indices[x.indptr[lo]:x.indptr[min(lo + batch, x.shape[0])]]))
                for lo in range(0, x.shape[0] - batch + 1, batch)]
    per_batch = statistics.mean(distinct)
    row = hidden * itemsize
    return (x.nnz / x.shape[0]) * row + 2 * per_batch * row / batch, per_batch


def copy_bandwidth(nbytes, repeat=5):
    """GB/s of a NumPy copy between two buffers of ``nbytes`` (bytes read + written), the best of ``repeat``."""
    n = max(nbytes // 4, 1 << 16)
    a = np.ones(n, np.float32)
    b = np.empty_like(a)
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best / 1e9


class TorchBag:
    """The same network in PyTorch: EmbeddingBag (sum, per-sample weights) + bias, ReLU, Linear, SGD."""

    def __init__(self, torch, weights, biases, lr, sparse):
        nn = torch.nn
        self.torch = torch
        vocab, hidden = weights[0].shape[1], weights[0].shape[0]
        self.bag = nn.EmbeddingBag(vocab, hidden, mode="sum", sparse=sparse)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.out = nn.Linear(hidden, weights[1].shape[0])
        with torch.no_grad():
            self.bag.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights[0].T, dtype=np.float32)))
            self.bias.copy_(torch.from_numpy(np.asarray(biases[0], np.float32)))
            self.out.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights[1], dtype=np.float32)))
            self.out.bias.copy_(torch.from_numpy(np.asarray(biases[1], np.float32)))
        self.loss_fn = nn.CrossEntropyLoss()
        self.opt = torch.optim.SGD([self.bag.weight, self.bias, *self.out.parameters()], lr=lr)

    def tensors(self, x, y):
        t = self.torch
        return (t.from_numpy(x.indptr.astype(np.int64)), t.from_numpy(x.indices.astype(np.int64)),
                t.from_numpy(x.data), t.from_numpy(y))

    def train_epoch(self, tensors, rows, batch):
        indptr, indices, data, y = tensors
        relu = self.torch.relu
        for lo in range(0, rows, batch):
            hi = min(lo + batch, rows)
            a, b = int(indptr[lo]), int(indptr[hi])
            self.opt.zero_grad()
            h = relu(self.bag(indices[a:b], indptr[lo:hi] - a, per_sample_weights=data[a:b]) + self.bias)
            self.loss_fn(self.out(h), y[lo:hi]).backward()
            self.opt.step()

    def weights(self):
        return ([self.bag.weight.detach().numpy().T.copy(), self.out.weight.detach().numpy().copy()],
                [self.bias.detach().numpy().copy(), self.out.bias.detach().numpy().copy()])


def _fresh_net(vocab):
    from .network import MLP

    net = MLP([vocab, HIDDEN, CLASSES], seed=0)
    net._use_embedding_layout()  # where sparse training puts it; done here so no timed run pays the copy
    return net


def make_peer(peer, x, y, torch=None, lr=LR, batch=BATCH, optimizer=None):
    """run(rows, epochs): ``epochs`` passes over the first ``rows`` documents, for one column of the table.

    ``optimizer``: for the pyfastnn peers only, the optimizer to train with instead of plain SGD at ``lr``."""
    from .optim import SGD

    vocab = x.shape[1]
    net = _fresh_net(vocab)
    slices = {}

    def first(rows):  # the first rows as a CSR, cut once per size (a user's data is one matrix too)
        if rows not in slices:
            slices[rows] = (x[:rows], y[:rows])
        return slices[rows]

    if peer in BACKEND_OF:
        backend, opt = BACKEND_OF[peer], optimizer if optimizer is not None else SGD(lr=lr)

        def run(rows, epochs):
            xr, yr = first(rows)
            with _backend.use_backend(backend):
                net.fit(xr, yr, batch_size=batch, epochs=epochs, shuffle=False, progress=False, optimizer=opt)

        return run
    if peer in ("torch bag", "torch bag dense"):
        if torch is None:
            raise ValueError("the torch peers need the torch module")
        tb = TorchBag(torch, net.weights, net.biases, lr, sparse=peer == "torch bag")
        tensors = tb.tensors(x, y)

        def run(rows, epochs):
            for _ in range(epochs):
                tb.train_epoch(tensors, rows, batch)

        return run
    if peer == "sklearn":
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(hidden_layer_sizes=(HIDDEN,), solver="sgd", learning_rate_init=lr, momentum=0.0,
                            nesterovs_momentum=False, alpha=0.0, batch_size=batch, shuffle=False, random_state=0)
        clf.partial_fit(x[:batch], y[:batch], classes=np.arange(CLASSES))

        def run(rows, epochs):
            xr, yr = first(rows)
            for _ in range(epochs):
                clf.partial_fit(xr, yr)

        return run
    raise ValueError(f"unknown sparse peer {peer!r}; valid: {', '.join(SPARSE_PEERS)}")


def sanity_check(x, y, peers, torch=None, steps=4, lr=0.5):
    """The same few steps from the same weights in pyfastnn (the reference backend and those of ``peers``) and
    PyTorch's sparse EmbeddingBag: (ok, text) with each one's mismatch relative to the update."""
    from .optim import SGD

    rows = steps * BATCH
    xr, yr = x[:rows], y[:rows]
    start = _fresh_net(x.shape[1])
    w0 = [w.copy() for w in start.weights] + [b.copy() for b in start.biases]
    results = {}
    for name in dict.fromkeys(["numpy", *(BACKEND_OF[p] for p in peers if p in BACKEND_OF)]):
        net = start.copy()
        with _backend.use_backend(name):
            net.fit(xr, yr, batch_size=BATCH, epochs=1, shuffle=False, progress=False, optimizer=SGD(lr=lr))
        results[name] = net.weights + net.biases
    if torch is not None:
        tb = TorchBag(torch, start.weights, start.biases, lr, sparse=True)
        tb.train_epoch(tb.tensors(xr, yr), rows, BATCH)
        w, b = tb.weights()
        results["torch bag"] = w + b
    ref = results.pop("numpy")
    errors = {name: _update_error(w0, got, ref) for name, got in results.items()}
    ok = all(e < 1e-3 for e in errors.values())
    text = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
    return ok, f"{steps} SGD steps from the same weights, mismatch relative to the update vs numpy: {text}" + (
        "" if ok else " (CHECK MISMATCH)")


def measure(meter, vocab, peers, mode="full", torch=None, progress=None):
    """One row of the sparse table: {"rates": {peer: samples/s}, "notes", "traffic", "bandwidth", ...}."""
    x, y = zipf_documents(POOL_DOCS[mode], vocab, seed=1)
    result = {"vocab": vocab, "nnz": x.nnz / x.shape[0], "rates": {}, "samples": {}, "notes": {}}
    bytes_per_sample, distinct = traffic(x)
    result["traffic"] = bytes_per_sample
    result["distinct"] = distinct
    plans = {}
    target, most = meter.s.target_s, meter.s.max_run_s
    meter.s.target_s, meter.s.max_run_s = max(target, RUN_SECONDS), max(most, 3 * RUN_SECONDS)
    try:
        for peer in peers:
            run = make_peer(peer, x, y, torch)
            rows, epochs, est = meter.calibrate(run, BATCH, x.shape[0])
            if peer in ("numpy-be", "sklearn", "torch bag dense") and est > meter.s.max_run_s:
                result["notes"][peer] = f"skipped: one run would take ~{est:.1f} s (> {meter.s.max_run_s:.0f} s)"
                continue
            plans[peer] = (run, rows, epochs)
        for _ in range(meter.s.repeat):
            for peer, (run, rows, epochs) in plans.items():
                result["samples"].setdefault(peer, []).append(rows * epochs / meter.timed(run, rows, epochs))
    finally:
        meter.s.target_s, meter.s.max_run_s = target, most
    result["rates"] = {p: statistics.median(v) for p, v in result["samples"].items()}
    result["bandwidth"] = copy_bandwidth(vocab * HIDDEN * 4)
    if progress is not None:
        progress(result)
    return result


def table(results, peers):
    """Markdown: a row per vocabulary size; samples/s of each peer, cpp fit / each peer, and the traffic."""
    others = [p for p in peers if p != "cpp fit"]
    head = ["V", "nnz/row", *peers, *(f"cpp/{p}" for p in others if "cpp fit" in peers),
            "E bytes/sample", "cpp GB/s", "copy GB/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for r in results:
        rates = r["rates"]
        fit = rates.get("cpp fit")
        row = [f"{r['vocab']:,}", f"{r['nnz']:.1f}", *(fmt_rate(rates.get(p)) for p in peers)]
        if "cpp fit" in peers:
            row += ["-" if fit is None or rates.get(p) is None else f"{fit / rates[p]:.1f}" for p in others]
        row.append(f"{r['traffic'] / 1e3:.1f}k")
        row.append("-" if fit is None else f"{fit * r['traffic'] / 1e9:.1f}")
        row.append(f"{r['bandwidth']:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
