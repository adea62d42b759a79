"""Checks an installed pyfastnn wheel: the package comes from site-packages (not a source tree), the compiled
extensions were loaded, and the wheel carries its typing files and bundled data with their licenses.

Usage (from a folder outside the source tree, in the environment the wheel was installed into)::

    python path/to/wheel_check.py [--backend cpp]

``.ci/wheel.sh`` runs it on the repaired wheel, and cibuildwheel's test command on every wheel it builds.
Exits non-zero with the reason on the first failed check.
"""

import argparse
import os
import sys
import sysconfig


def fail(msg):
    sys.exit(f"wheel check FAILED: {msg}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpp", choices=["cpp", "numba"],
                        help="the default backend the wheel must come up on (default cpp: the C++ core is built)")
    args = parser.parse_args()

    import pyfastnn as pf
    import pyfastnn.text

    # A source tree's package would shadow the install if the current folder or PYTHONPATH held one.
    package = os.path.dirname(os.path.realpath(pf.__file__))
    sites = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    if not any(package.startswith(site + os.sep) for site in sites):
        fail(f"pyfastnn was imported from {package}, not from the environment's site-packages {sorted(sites)}")
    print(f"pyfastnn {pf.__version__} from {package}")

    backend = pf.get_backend()
    print(f"backend {backend}; backends {pf.backends()}")
    if backend != args.backend:
        fail(f"the default backend is {backend!r}, expected {args.backend!r}")
    if args.backend == "cpp":
        import pyfastnn._core as core

        if not os.path.realpath(core.__file__).startswith(package + os.sep):
            fail(f"pyfastnn._core was loaded from {core.__file__}, outside the installed package")
        info = pf.cpu_info()
        print(f"C++ core {os.path.basename(core.__file__)}: arch {info['arch']}, ISA levels compiled "
              f"{info['compiled_kernels']}, supported here {info['isa_supported']}, in use {info['isa']}")

    kernels = pyfastnn.text.kernel_info()
    print(f"text kernels: {kernels}")
    if not kernels["compiled"]:
        fail(f"the Cython text kernels (pyfastnn.text._bow) are not the compiled ones: {kernels['reason']}")
    # The compiled featurizer must also run, and agree with the pure-Python kernels it replaces.
    texts = pf.datasets.load_sentiment()[0]
    counts = pyfastnn.text.BagOfWords(ngram_range=(1, 2)).fit(texts)
    compiled = counts.transform(texts).toarray()
    from pyfastnn.text import vectorizers

    saved, vectorizers._compiled = vectorizers._compiled, None  # the pure-Python fallback, for comparison
    try:
        fallback = counts.transform(texts).toarray()
    finally:
        vectorizers._compiled = saved
    if compiled.shape != (3000, len(counts.vocabulary_)) or not (compiled == fallback).all():
        fail("the compiled featurizer's counts differ from the pure-Python kernels'")
    print(f"compiled BagOfWords on the bundled sentences: {compiled.shape[1]:,} terms, counts equal to the pure-Python kernels'")

    # Typing files and bundled data, with the data's attribution.
    wanted = ["py.typed", "_core.pyi", "data/digits.npz", "data/DIGITS_LICENSE.txt", "data/sentiment.npz",
              "data/SENTIMENT_LICENSE.txt"]
    missing = [name for name in wanted if not os.path.isfile(os.path.join(package, name))]
    if missing:
        fail(f"the installed package lacks {missing}")
    X, y = pf.datasets.load_digits()
    if X.shape != (1797, 64):
        fail(f"the bundled digits have shape {X.shape}, expected (1797, 64)")
    print(f"installed files present: {', '.join(wanted)}")
    print("wheel check passed")


if __name__ == "__main__":
    main()
