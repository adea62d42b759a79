#!/usr/bin/env bash
# The GEMM on arm64: cross-compiles the standalone harness tests/native/gemm_check.cpp with the NEON and
# reference micro-kernels and runs it under qemu-user. Needs aarch64-linux-gnu-g++ and qemu-aarch64 (Debian:
# apt-get install g++-aarch64-linux-gnu qemu-user); without them it says "skipped" and succeeds.
# Usage: bash .ci/neon.sh [gemm_check options]   (default --quick: sizes up to 64, about a minute under qemu;
#        --full for the whole size list, much longer under emulation)
set -euo pipefail
cd "$(dirname "$0")/.."
cxx=aarch64-linux-gnu-g++
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
if ! command -v "$cxx" >/dev/null; then echo "skipped: $cxx not found"; exit 0; fi
if [ -z "$qemu" ]; then echo "skipped: qemu-aarch64 (qemu-user) not found"; exit 0; fi
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--quick)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# -static: qemu-user then needs no aarch64 sysroot for the dynamic loader and libstdc++.
"$cxx" -std=c++17 -O2 -static -pthread -Wall -Icsrc tests/native/gemm_check.cpp csrc/gemm/gemm.cpp \
    csrc/gemm/kernels/*.cpp csrc/gemm/blocking.cpp csrc/dispatch.cpp csrc/threads.cpp -o "$work/gemm_check"
"$qemu" "$work/gemm_check" --expect-default neon "${args[@]}"
# PYFASTNN_ISA=reference must still force the reference kernels on arm64.
PYFASTNN_ISA=reference "$qemu" "$work/gemm_check" --isa reference --expect-default reference --sizes 1,7,13,33
