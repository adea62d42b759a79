"""Sparse (bag-of-words) training throughput: pyfastnn's embedding-table first layer against PyTorch's
EmbeddingBag (sparse and dense gradients) and scikit-learn, side by side in one process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_sparse.py [--quick | --smoke]
        [--vocab 50000,1000000] [--threads 2] [--repeat 5] [--peers "cpp fit,torch bag,..."]

The task, the columns and how the traffic column is computed: pyfastnn/_bench_sparse.py. The timing
machinery (warm-up, sizing runs to ~0.2 s, alternating peers, idle gaps so another library's spinning threads
are asleep, redoing runs disturbed by other processes) is pyfastnn/benchmark.py's, as for the dense shapes.
"""

import argparse
import sys

import pyfastnn as pf
from pyfastnn import _bench_sparse as bs
from pyfastnn import benchmark as bm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bs.add_options(parser, "threads for every library (default: all usable)")
    parser.add_argument("--peers", default=None, help=f"comma-separated, from: {', '.join(bs.SPARSE_PEERS)}")
    args = parser.parse_args(argv)
    mode, vocabs, threads = bs.read_options(args)
    wanted = [p.strip() for p in args.peers.split(",")] if args.peers else list(bs.SPARSE_PEERS)
    unknown = sorted(set(wanted) - set(bs.SPARSE_PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; valid: {', '.join(bs.SPARSE_PEERS)}")
    peers = [p for p in bs.SPARSE_PEERS if p in wanted]
    torch, torch_reason = bm.import_torch() if any(p.startswith("torch") for p in peers) else (None, None)
    sk_version, sk_reason = bm.sklearn_version() if "sklearn" in peers else (None, None)
    backends = pf.backends()
    skipped = {}
    for p in peers:
        if p in bs.BACKEND_OF and not backends[bs.BACKEND_OF[p]]["available"]:
            skipped[p] = backends[bs.BACKEND_OF[p]]["reason"]
        elif p.startswith("torch") and torch is None:
            skipped[p] = torch_reason
        elif p == "sklearn" and sk_version is None:
            skipped[p] = sk_reason
    peers = [p for p in peers if p not in skipped]
    warning = bm.pinning_warning("python benchmarks/bench_sparse.py")
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    print(f"# pyfastnn sparse benchmark ({mode})\n")
    print(f"- CPU: {bm.cpu_model()}; {threads} threads for every library; pyfastnn {pf.__version__} "
          f"({', '.join(n for n, i in backends.items() if i['available'])}); "
          f"torch {torch.__version__ if torch else '-'}; scikit-learn {sk_version or '-'}")
    print(f"- task: Zipf({bs.ZIPF_EXPONENT}) documents of ~{bs.MEAN_TOKENS} tokens, hidden {bs.HIDDEN} ReLU, "
          f"{bs.CLASSES} classes softmax-CE, plain SGD lr {bs.LR}, batch {bs.BATCH}, float32")
    for p, reason in skipped.items():
        print(f"- {p} skipped: {reason}")
    settings = bm.Settings.for_mode(mode, repeat=args.repeat)
    results = []
    with bm.EqualThreads(threads, torch):
        meter = bm.Meter(settings)
        for vocab in vocabs:
            x, y = bs.zipf_documents(512, vocab, seed=2)
            ok, text = bs.sanity_check(x, y, peers, torch if "torch bag" in peers else None)
            print(f"- V={vocab:,}: {text}", flush=True)
            results.append(bs.measure(meter, vocab, peers, mode, torch))
            for p, note in results[-1]["notes"].items():
                print(f"- V={vocab:,} {p}: {note}")
    print()
    print(bs.table(results, peers))
    print()
    for r in results:
        print(f"- V={r['vocab']:,}: {r['nnz']:.1f} non-zeros per row, {r['distinct']:.0f} distinct words per batch "
              f"of {bs.BATCH}; a pyfastnn step moves {r['traffic'] / 1e3:.1f} kB of E per sample")
    if meter.summary():
        print(f"- {meter.summary()}")
    for p in peers:
        print(f"- {p}: {bs.PEER_DOC[p]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
