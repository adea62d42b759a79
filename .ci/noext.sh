#!/usr/bin/env bash
# CI: the install without the compiled extensions (as on a machine with no compiler), in its own fresh
# virtual environment: pyfastnn must come up on the Numba backend and the pure-Python text kernels, and the
# whole suite must pass there.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .ci-venv-noext
python3 -m venv .ci-venv-noext
. .ci-venv-noext/bin/activate
PYFASTNN_NO_EXTENSION=1 pip install ".[test]"
# From outside the repo, so Python imports the installed package, not the source tree.
(cd / && python - <<'PY'
import os
import sysconfig
import pyfastnn as pf
print("pyfastnn", pf.__version__, "from", pf.__file__, "backend", pf.get_backend(), pf.backends())
site = os.path.realpath(sysconfig.get_paths()["purelib"])
assert os.path.realpath(pf.__file__).startswith(site + os.sep), f"{pf.__file__} is not the installed package"
assert not pf.backends()["cpp"]["available"], "the C++ extension was installed although PYFASTNN_NO_EXTENSION=1"
assert pf.get_backend() == "numba", f"expected the numba backend, got {pf.get_backend()}"
import pyfastnn.text
assert not pyfastnn.text.kernel_info()["compiled"], "Cython text kernels built despite PYFASTNN_NO_EXTENSION"
from pyfastnn import _numba
print(f"numba kernels compiled in {_numba.compile_all():.1f} s")
PY
)
# The pytest script, not `python -m pytest`: that would put the repo root on sys.path and test the source tree
# (with any in-place build of _core) instead of the install. pytest itself puts tests/ (no __init__.py) on
# sys.path, so the tests import the installed package; conftest.py prints which one, and its backend, in the
# header. No PYFASTNN_BACKEND: the default must be numba here (checked above).
pytest -q
