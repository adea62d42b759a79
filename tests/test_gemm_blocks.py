"""The GEMM's cache block sizes: the analytical model (a pure function of given cache sizes), what this CPU
reports, and the PYFASTNN_GEMM_BLOCKS override and its validation."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_core = pytest.importorskip("pyfastnn._core")

# (size, ways, line[, shared_by]) of L1d, L2, L3 of a few CPUs, and the kernels' (mr, nr, bytes, measured
# blocks).
ZEN3 = {"l1d": (32768, 8, 64), "l2": (524288, 8, 64), "l3": (32 << 20, 16, 64, 16)}
ZEN5 = {"l1d": (49152, 12, 64), "l2": (1 << 20, 16, 64), "l3": (32 << 20, 16, 64, 16)}
SMALL = {"l1d": (16384, 4, 64), "l2": (131072, 4, 64), "l3": (2 << 20, 8, 64, 4)}
AVX2_F32 = (6, 16, 4, (192, 256, 4096))
AVX2_F64 = (6, 8, 8, (96, 256, 4096))
AVX512_F64 = (14, 16, 8, (112, 512, 4096))


def model(kernel, caches):
    return _core._gemm_model_blocks(*kernel, **caches)


def test_model_keeps_measured_blocks_where_they_were_measured_sane():
    # Zen 3: the L1 rule alone gives kc 168 (measured 4% slower than 256), so the measured blocks stand.
    assert model(AVX2_F32, ZEN3) == (192, 256, 4096)
    assert model(AVX2_F64, ZEN3) == (96, 256, 4096)


def test_model_grows_blocks_with_the_caches():
    _, kc3, _ = model(AVX2_F32, ZEN3)
    mc5, kc5, _ = model(AVX2_F32, ZEN5)
    # 48 KiB 12-way L1d: 3 of the 11 ways for the A micro-panel, kc = 3 * 64 sets * 64 B / (6 * 4 B) = 512.
    assert kc5 == 512 > kc3
    # 1 MiB 16-way L2: 7 ways of 64 KiB for the A block, mc = 7 * 65536 / (512 * 4) = 224 -> 222 (a multiple
    # of 6).
    assert mc5 == 222


def test_model_shrinks_blocks_that_no_longer_fit():
    mc, kc, nc = model(AVX2_F32, SMALL)
    # 128 KiB 4-way L2: one 32 KiB way for the A block: mc * kc * 4 B <= 32 KiB.
    assert mc % 6 == 0 and 6 <= mc and mc * kc * 4 <= 32768
    assert nc % 16 == 0 and nc * kc * 4 <= 2 << 20
    # The AVX-512 float64 kernel's kc = 512 (a 64 KiB B micro-panel) is dropped for a 16 KiB L1: the model's
    # own.
    mc, kc, nc = model(AVX512_F64, SMALL)
    assert kc < 512 and kc % 8 == 0 and kc * 16 * 8 <= 16384


@pytest.mark.parametrize("kernel", [AVX2_F32, AVX2_F64, AVX512_F64])
@pytest.mark.parametrize("caches", [ZEN3, ZEN5, SMALL])
def test_model_bounds(kernel, caches):
    mr, nr, _, _ = kernel
    mc, kc, nc = model(kernel, caches)
    assert mc % mr == 0 and mr <= mc <= 8192
    assert 16 <= kc <= 4096
    assert nc % nr == 0 and nr <= nc <= 4096


def test_model_without_caches_keeps_the_kernel_blocks():
    assert model(AVX2_F32, {}) == (192, 256, 4096)
    # Nonsense a hypervisor may report (0 ways, a size that is no whole number of sets) counts as not
    # reported.
    nonsense = {"l1d": (32768, 0, 64), "l2": (1000, 8, 64), "l3": (0, 16, 64)}
    assert model(AVX2_F32, nonsense) == (192, 256, 4096)
    # Only L1 known: kc from it, mc and nc stay.
    assert model(AVX2_F32, {"l1d": ZEN5["l1d"]}) == (192, 512, 4096)


def test_model_rejects_malformed_cache_tuples():
    with pytest.raises(ValueError, match="l2 must be"):
        model(AVX2_F32, {"l2": (1, 2)})


def test_this_cpu_reports_blocks_and_their_source():
    info = _core.cpu_info()
    caches = info["caches"]
    assert caches["source"] in ("cpuid", "sysfs", "none")
    if caches["source"] != "none":
        assert caches["l1d"]["size"] >= 1024 and caches["l1d"]["ways"] >= 1 and caches["l1d"]["line"] >= 16
    for isa, kernels in info["kernels"].items():
        for dt, k in kernels.items():
            assert k["blocks_source"] in ("cpuid", "sysfs", "kernel", "override"), (isa, dt)
            assert k["mc"] % k["mr"] == 0 and k["nc"] % k["nr"] == 0 and k["kc"] >= 16, (isa, dt, k)
            if k["blocks_source"] in ("cpuid", "sysfs"):
                # What the driver uses is the model applied to the caches reported above.
                c = {lv: (caches[lv]["size"], caches[lv]["ways"], caches[lv]["line"], caches[lv]["shared_by"])
                     for lv in ("l1d", "l2", "l3")}
                size = 4 if dt == "float32" else 8
                assert (k["mc"], k["kc"], k["nc"]) == _core._gemm_model_blocks(
                    k["mr"], k["nr"], size, k["measured_blocks"], **c)


@pytest.mark.parametrize("text, expected", [("96,128,512", (96, 128, 512)), (" 6, 16 ,16", (6, 16, 16)),
                                            ("1,1,1048576", (1, 1, 1 << 20))])
def test_parse_blocks(text, expected):
    assert _core._parse_gemm_blocks(text) == expected


@pytest.mark.parametrize("text", ["", "96,128", "96,128,512,4", "96,,512", "a,b,c", "0,128,512", "-6,128,512",
                                  "96,128,1048577", "96.5,128,512", "96,128,512,",
                                  "99999999999999999999,1,1"])
def test_parse_blocks_rejects(text):
    with pytest.raises(ValueError, match=r"PYFASTNN_GEMM_BLOCKS must be three integers MC,KC,NC"):
        _core._parse_gemm_blocks(text)


def _env(**more):
    """The environment of a child that imports the pyfastnn this test imports (the installed one, or the source
    tree's with its in-place build), run from outside the source tree (whose pyfastnn may have no core)."""
    # Without PYFASTNN_BACKEND: these children test the default choice of backend (a forced one turns the
    # override's ValueError into an ImportError naming the forced backend too).
    env = {k: v for k, v in os.environ.items() if k not in ("PYFASTNN_GEMM_BLOCKS", "PYFASTNN_BACKEND")}
    parent = str(Path(_core.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([parent, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return dict(env, **more)


def _run(args, **more):
    return subprocess.run([sys.executable, *args], env=_env(**more), capture_output=True, text=True, timeout=120,
                          check=False, cwd=tempfile.gettempdir())


def _child(code, blocks):
    return _run(["-c", code], PYFASTNN_GEMM_BLOCKS=blocks)


def test_override_sets_the_blocks_and_stays_correct():
    code = """
import numpy as np
from pyfastnn import _core
k = _core.cpu_info()["float32"]
assert (k["mc"], k["kc"], k["nc"], k["blocks_source"]) == (12, 40, 48, "override"), k
rng = np.random.default_rng(1)
a, b = rng.standard_normal((100, 90)).astype(np.float32), rng.standard_normal((90, 110)).astype(np.float32)
out = np.empty((100, 110), np.float32)
_core.gemm(a, b, out)
assert np.allclose(out, a @ b, rtol=1e-4, atol=1e-4)
print("ok")
"""
    r = _child(code, "12,40,48")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_override_malformed_is_a_clear_error():
    # The backend is chosen at import, which reads the variable: a ValueError naming it, what it expects and
    # what it got, rather than a silent switch to another backend or blocks nobody asked for.
    code = """
try:
    import pyfastnn  # noqa: F401
except ValueError as e:
    print(e)
"""
    r = _child(code, "64,abc,512")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("PYFASTNN_GEMM_BLOCKS must be three integers MC,KC,NC, each between 1 and "
                                "1048576, got '64,abc,512'")


def test_info_cli_shows_blocks_and_rejects_a_bad_override():
    r = _run(["-m", "pyfastnn.cli", "info"])
    assert r.returncode == 0, r.stderr
    assert "gemm blocks" in r.stdout
    r = _run(["-m", "pyfastnn.cli", "info"], PYFASTNN_GEMM_BLOCKS="1,2")
    assert r.returncode == 1 and "PYFASTNN_GEMM_BLOCKS must be" in r.stderr
