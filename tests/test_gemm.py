"""Tests of the compiled GEMM (pyfastnn._core.gemm) against NumPy, at every ISA level this machine supports."""

import itertools
import os
import time

import numpy as np
import pytest

_core = pytest.importorskip("pyfastnn._core")

DTYPES = [np.float32, np.float64]
TRANS = list(itertools.product([False, True], repeat=2))
ALPHA_BETA = [(1.0, 0.0), (0.5, 2.0), (-1.0, 1.0)]


@pytest.fixture
def threads():
    """Restores the thread count a test changes."""
    before = _core.get_num_threads()
    yield
    _core.set_num_threads(before)


def _operands(m, n, k, trans_a, trans_b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def _reference(a, b, c0, trans_a, trans_b, alpha, beta):
    """alpha op(a) op(b) + beta c0 in float64 (beta == 0 ignores c0, as BLAS does)."""
    at = (a.T if trans_a else a).astype(np.float64)
    bt = (b.T if trans_b else b).astype(np.float64)
    r = alpha * (at @ bt)
    if beta != 0:
        r = r + beta * c0.astype(np.float64)
    return r, np.abs(alpha) * (np.abs(at) @ np.abs(bt)) + np.abs(beta) * np.abs(c0.astype(np.float64))


def _check(out, ref, scale, k, dtype):
    # Error bound of a length-k dot product: ~k * eps * sum|a_i b_i|; the factor 4 leaves room for any
    # summation order (packed blocks, FMA or not) without letting real bugs (O(1) relative errors) through.
    eps = np.finfo(dtype).eps
    tol = 4 * max(k, 1) * eps * scale + np.finfo(dtype).tiny
    bad = np.abs(out.astype(np.float64) - ref) > tol
    assert not bad.any(), f"{bad.sum()} of {bad.size} entries off; worst {np.abs(out - ref).max():.3g}"


def _run(m, n, k, trans_a, trans_b, dtype, alpha=1.0, beta=0.0, seed=0):
    a, b = _operands(m, n, k, trans_a, trans_b, dtype, seed)
    c0 = np.random.default_rng(seed + 1).standard_normal((m, n)).astype(dtype)
    out = c0.copy()
    if beta == 0:
        out.fill(np.nan)  # beta == 0 must not read out
    _core.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)
    ref, scale = _reference(a, b, c0, trans_a, trans_b, alpha, beta)
    _check(out, ref, scale, k, dtype)
    return out


# Odd sizes around the tile sizes (MR 4/6/14, NR 4..32): a combinatorial subset that covers each size in each
# dimension without the full 7**3 product.
SIZES = [1, 2, 7, 31, 33, 127, 257]
SHAPES = sorted({(m, n, k) for m, n, k in itertools.product(SIZES, repeat=3)
                 if (SIZES.index(m) + 2 * SIZES.index(n) + 3 * SIZES.index(k)) % 4 == 0}
                | {(300, 520, 190), (33, 65, 520), (7, 257, 1), (129, 31, 2)})


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("trans", TRANS, ids=lambda t: f"tA{int(t[0])}tB{int(t[1])}")
def test_shapes(isa, dtype, trans):
    for i, (m, n, k) in enumerate(SHAPES):
        alpha, beta = ALPHA_BETA[i % len(ALPHA_BETA)]
        _run(m, n, k, *trans, dtype, alpha, beta, seed=i)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("alpha,beta", ALPHA_BETA)
def test_alpha_beta(isa, dtype, alpha, beta):
    for trans in TRANS:
        _run(45, 70, 61, *trans, dtype, alpha, beta)
        _run(150, 97, 300, *trans, dtype, alpha, beta)  # packed path, several K blocks for beta handling


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_large_blocks(isa, dtype, threads):
    # Past mc, kc and nc of every kernel so every blocking loop runs more than once, with edges everywhere.
    for nthreads in (1, 2):
        _core.set_num_threads(nthreads)
        _run(700, 530, 600, False, False, dtype, 0.5, 2.0)
        _run(530, 4200, 70, True, True, dtype, -1.0, 1.0)


@pytest.fixture
def packed_only():
    """Forces the packed path (no direct loop) for small problems; restores the parameters after."""
    before = _core._get_gemm_params()
    _core._set_gemm_params({**before, "direct_max_work": 0, "direct_max_m": 0})
    yield before
    _core._set_gemm_params(before)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("small_m_tiles,inplace_max_k", [(1, 64), (0, 64), (1, 0)])
def test_packed_few_rows(isa, dtype, packed_only, small_m_tiles, inplace_max_k):
    # m = 1..33 on the packed path: the 14-row tiles and, where the kernel has one and it pads less, the short
    # tile (AVX-512: 8 rows; 8, 16, 24, 32 fill it exactly), with n and k off every tile size. n > NR / 2 so the
    # problem is not sent to the direct loop as a narrow output. k <= inplace_max_k reads full micro-panels of
    # op(A) (given transposed) and op(B) (not transposed) in place and packs only the partial ones.
    _core._set_gemm_params({**packed_only, "direct_max_work": 0, "direct_max_m": 0, "small_m_tiles": small_m_tiles,
                            "inplace_max_k": inplace_max_k})
    for m in range(1, 34):
        for i, trans in enumerate(TRANS):
            n = (33, 70, 45, 129)[(m + i) % 4]
            k = (1, 7, 64, 45, 300)[(m + 2 * i) % 5]
            alpha, beta = ALPHA_BETA[(m + i) % len(ALPHA_BETA)]
            _run(m, n, k, *trans, dtype, alpha, beta, seed=m)
    for m in (40, 64, 96, 120, 128, 129):  # the rest of the short tile's range, and just past it
        _run(m, 64, 32, True, False, dtype, -0.5, 0.9, seed=m)
        _run(m, 128, 64, False, True, dtype, 1.0, 0.0, seed=m)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_inplace_operands_blocks_and_threads(isa, dtype, packed_only, threads):
    # In-place operands across several K blocks (kc = 16 < k) and M/N blocks, split over two threads.
    _core._set_gemm_params({**packed_only, "kc": 16, "mc": 40, "nc": 64, "parallel_min_work": 0})
    for nthreads in (1, 2):
        _core.set_num_threads(nthreads)
        for i, trans in enumerate(TRANS):
            _run(131, 150, 45, *trans, dtype, *ALPHA_BETA[i % 3], seed=i)
            _run(64, 96, 64, *trans, dtype, 1.0, 0.0, seed=i)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_packed_transposed_a_k_tails(isa, dtype, packed_only, threads):
    # op(A) given transposed is packed four k steps per pass: k = 1..9 leaves every tail length (0..3) after
    # zero, one or two full passes, with m off every tile size (a partial last panel) and, on two threads, the
    # panels split between them. Nothing is read in place (inplace_max_k = 0), so every k goes through pack_a.
    _core._set_gemm_params({**packed_only, "inplace_max_k": 0, "parallel_min_work": 0})
    for nthreads in (1, 2):
        _core.set_num_threads(nthreads)
        for k in range(1, 10):
            _run(37, 45, k, True, False, dtype, seed=k)
            _run(61, 33, k, True, True, dtype, -0.5, 2.0, seed=k)
        # Several K blocks whose lengths are not multiples of four (k = 23 in blocks of 6, 6, 6, 5), two M blocks.
        _core._set_gemm_params({**packed_only, "inplace_max_k": 0, "parallel_min_work": 0, "kc": 7, "mc": 30})
        _run(53, 40, 23, True, False, dtype, 0.5, 2.0, seed=nthreads)
        _core._set_gemm_params({**packed_only, "inplace_max_k": 0, "parallel_min_work": 0})


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_narrow_transposed_b(isa, dtype):
    # The direct loop's path for few columns of op(B) given transposed (an output layer A·Wᵀ): n up to 16,
    # rows in blocks of 4 and a tail, k across its chunks of 256, both layouts of A, alpha/beta.
    for i, (m, n, k) in enumerate(itertools.product([1, 3, 4, 9, 33], [1, 7, 10, 16], [1, 13, 256, 257, 600])):
        alpha, beta = ALPHA_BETA[i % len(ALPHA_BETA)]
        _run(m, n, k, i % 2 == 1, True, dtype, alpha, beta, seed=i)


def test_small_m_kernel_info():
    # Where a kernel has a short tile for few rows, cpu_info names it; it shares NR and has fewer rows.
    for per_dtype in _core.cpu_info()["kernels"].values():
        for k in per_dtype.values():
            if "small_m_kernel" in k:
                rows, cols = (int(x) for x in k["small_m_kernel"].rsplit("_", 1)[1].split("x"))
                assert cols == k["nr"] and rows < k["mr"] and k["small_m_max"] > 0


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_k_zero(isa, dtype):
    a = np.empty((5, 0), dtype)
    b = np.empty((0, 6), dtype)
    out = np.full((5, 6), np.nan, dtype)
    _core.gemm(a, b, out)
    assert np.array_equal(out, np.zeros((5, 6), dtype))
    out = np.full((5, 6), 3.0, dtype)
    _core.gemm(a, b, out, beta=0.5)
    assert np.array_equal(out, np.full((5, 6), 1.5, dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_empty_output(dtype):
    for m, n, k in [(0, 4, 3), (4, 0, 3), (0, 0, 0)]:
        a, b = _operands(m, n, k, False, False, dtype)
        _core.gemm(a, b, np.empty((m, n), dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_nan_out_beta_zero(isa, dtype):
    for m, n, k in [(3, 5, 4), (100, 100, 100), (300, 300, 300)]:
        a, b = _operands(m, n, k, False, False, dtype)
        out = np.full((m, n), np.nan, dtype)
        _core.gemm(a, b, out, beta=0.0)
        assert np.isfinite(out).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_alpha_zero(isa, dtype):
    a, b = _operands(50, 60, 70, False, False, dtype)
    out = np.full((50, 60), 2.0, dtype)
    _core.gemm(a, b, out, alpha=0.0, beta=1.5)
    assert np.array_equal(out, np.full((50, 60), 3.0, dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_threads_agree(isa, dtype, threads):
    for trans in TRANS:
        a, b = _operands(400, 380, 300, *trans, dtype)
        outs = []
        for nthreads in (1, 2):
            _core.set_num_threads(nthreads)
            out = np.full((400, 380), np.nan, dtype)
            _core.gemm(a, b, out, trans_a=trans[0], trans_b=trans[1])
            outs.append(out)
        ref, scale = _reference(a, b, outs[0], *trans, 1.0, 0.0)
        _check(outs[0], ref, scale, 300, dtype)
        _check(outs[1], outs[0].astype(np.float64), scale, 300, dtype)


def test_thread_count(threads):
    _core.set_num_threads(3)
    assert _core.get_num_threads() == 3
    _run(300, 300, 300, False, False, np.float32)  # more threads than cores still works
    for bad in (0, -1):
        with pytest.raises(ValueError, match="between 1 and"):
            _core.set_num_threads(bad)
    assert _core.get_num_threads() == 3


def test_isa_selection():
    info = _core.cpu_info()
    assert info["isa_supported"][0] == "reference"
    assert info["isa"] == _core.get_isa() == info["isa_supported"][-1] or "PYFASTNN_ISA" in os.environ
    assert set(info["isa_supported"]) <= set(info["compiled_kernels"])
    for key in ("arch", "vendor", "features", "os_avx", "os_avx512", "float32", "float64"):
        assert key in info
    for dt in ("float32", "float64"):
        assert {"kernel", "mr", "nr", "mc", "kc", "nc"} <= set(info[dt])
    with pytest.raises(ValueError, match="unknown ISA"):
        _core.set_isa("sse9")
    unsupported = [i for i in ("reference", "avx2", "avx512", "neon") if i not in info["isa_supported"]]
    for name in unsupported:
        with pytest.raises(ValueError, match="not supported"):
            _core.set_isa(name)
    assert _core.get_isa() == info["isa"]


# ---- argument checking: never crash, always a clear TypeError / ValueError ----

def test_errors_dtype():
    a32, b32, o32 = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32), np.empty((3, 5), np.float32)
    with pytest.raises(TypeError, match="same dtype"):
        _core.gemm(a32.astype(np.float64), b32, o32)
    with pytest.raises(TypeError, match="same dtype"):
        _core.gemm(a32, b32, o32.astype(np.float64))
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.gemm(a32.astype(np.int32), b32.astype(np.int32), o32.astype(np.int32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        _core.gemm([[1.0]], [[1.0]], np.empty((1, 1)))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        _core.gemm(np.ones((1, 1)), np.ones((1, 1)), None)


def test_errors_layout_and_shape():
    a, b, out = np.ones((3, 4)), np.ones((4, 5)), np.empty((3, 5))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.gemm(np.ones((4, 3)).T, b, out)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.gemm(a, b, np.empty((5, 3)).T)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.gemm(a, np.ones((4, 10))[:, ::2], out)
    with pytest.raises(ValueError, match="2-D"):
        _core.gemm(np.ones(4), b, out)
    with pytest.raises(ValueError, match="2-D"):
        _core.gemm(a, np.ones((1, 4, 5)), out)
    with pytest.raises(ValueError, match="2-D"):
        _core.gemm(a, b, np.empty((3, 5, 1)))
    with pytest.raises(ValueError, match="inner dimensions"):
        _core.gemm(a, np.ones((5, 5)), out)
    with pytest.raises(ValueError, match="inner dimensions"):
        _core.gemm(a, b, out, trans_a=True)
    with pytest.raises(ValueError, match=r"out must have shape \(3, 5\)"):
        _core.gemm(a, b, np.empty((5, 3)))
    _core.gemm(a, np.ones((5, 4)), out, trans_b=True)  # and the transposed shapes are accepted


def test_errors_readonly_and_overlap():
    a, b = np.ones((4, 4)), np.ones((4, 4))
    out = np.empty((4, 4))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _core.gemm(a, b, out)
    with pytest.raises(ValueError, match="share memory"):
        _core.gemm(a, b, a)
    buf = np.zeros((8, 4))
    with pytest.raises(ValueError, match="share memory"):
        _core.gemm(buf[:4], b, buf[3:7])  # partial overlap
    _core.gemm(buf[:4], b, buf[4:])  # adjacent, not overlapping: fine


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_after_threaded_gemm(threads):
    _core.set_num_threads(2)
    a, b = _operands(400, 400, 400, False, False, np.float32)
    out = np.empty((400, 400), np.float32)
    _core.gemm(a, b, out)  # the pool now has live worker threads
    expected = out.copy()
    pid = os.fork()
    if pid == 0:  # child: its pool threads are gone; the first parallel gemm must rebuild the pool, not hang
        code = 1
        try:
            res = np.empty_like(out)
            _core.gemm(a, b, res)
            code = 0 if np.allclose(res, expected, rtol=1e-5, atol=1e-3) else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("forked child hung in gemm")
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"
