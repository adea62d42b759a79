#!/usr/bin/env bash
# The C++ core and the Cython text kernels built with -fsanitize=address,undefined, running the kernel, network
# and text tests.
# Usage: bash .ci/sanitize.sh   (inside an activated virtual environment that has the test extra installed)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive HEAD 2>/dev/null | tar -x -C "$work" || cp -r csrc pyfastnn tests setup.py pyproject.toml README.md "$work"/
cd "$work"
python -m pip install -q "pybind11>=2.12" "setuptools>=77" "Cython>=3.0"
PYFASTNN_SANITIZE=1 PYFASTNN_REQUIRE_EXTENSION=1 python setup.py -q build_ext --inplace 2>&1 | grep -v -i "warn" || true
ls pyfastnn/_core*.so pyfastnn/text/_bow*.so >/dev/null  # the build must have produced both extensions
# Python itself is not instrumented, so the sanitizer runtimes are preloaded; CPython's own allocations are
# not tracked as leaks (detect_leaks=0), but every out-of-bounds access or UB in our code aborts the run.
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# `python -m pytest` puts this folder first on sys.path, so the sanitized build is the one imported.
python -c "
import pyfastnn._core as c, pyfastnn.text._bow as b
assert c.__file__.startswith('$work') and b.__file__.startswith('$work'), (c.__file__, b.__file__)"
python -m pytest -q -p no:cacheprovider tests/test_gemm.py tests/test_kernels.py tests/test_math.py tests/test_errors.py \
    tests/test_sparse.py tests/test_sparse_cpp.py tests/test_text.py tests/test_train_step_fast.py \
    tests/test_fused_optimizer.py tests/test_gemm_blocks.py
# The fuzzing suites (their fast profile) and the overlap checks against the compiled core only.
python -m pytest -q -p no:cacheprovider tests/test_fuzz.py tests/test_fuzz_core.py tests/test_kernel_aliasing.py \
    -k "not numba and not numpy"
