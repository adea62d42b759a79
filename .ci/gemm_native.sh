#!/usr/bin/env bash
# The standalone GEMM harness (tests/native/gemm_check.cpp) built for this machine: every micro-kernel level the
# CPU supports against a double-precision triple loop, without Python. About 1.5 CPU-minutes with the full size
# list on an AVX-512 x86-64 core. Usage: bash .ci/gemm_native.sh [gemm_check options, e.g. --quick]
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${CXX:-g++}" -std=c++17 -O2 -pthread -Wall -Icsrc tests/native/gemm_check.cpp csrc/gemm/gemm.cpp csrc/gemm/blocking.cpp \
    csrc/gemm/kernels/*.cpp csrc/dispatch.cpp csrc/threads.cpp -o "$work/gemm_check"
"$work/gemm_check" "$@"
