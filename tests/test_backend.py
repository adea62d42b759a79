"""Backend selection and the kernel contract shared by _core, _numba and _ref."""

import importlib
import inspect

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn import _backend, _ref
from pyfastnn._backend import BACKENDS


def _available():
    return [name for name, info in pf.backends().items() if info["available"]]


@pytest.fixture
def restore_backend():
    previous = _backend._state["name"]
    yield
    _backend._state["name"] = previous


# ---- the kernel contract ------------------------------------------------------------------------------------


def test_ref_lists_the_contract():
    assert isinstance(_ref.KERNELS, tuple) and len(_ref.KERNELS) == len(set(_ref.KERNELS)) >= 9
    for name in ("gemm", "forward", "backward", "sgd_update", "adam_update"):
        assert name in _ref.KERNELS
    for name in _ref.KERNELS:
        assert callable(getattr(_ref, name))


def _docstring_parameters(fn):
    """Parameter names from a pybind11 docstring's first line ``name(a: T, b: U = 1) -> R``, or None."""
    first = (getattr(fn, "__doc__", None) or "").lstrip().split("\n", 1)[0]
    name = getattr(fn, "__name__", "")
    if not first.startswith(name + "(") or ")" not in first:
        return None
    inner, depth, parts, current = first[len(name) + 1 :], 0, [], ""
    for ch in inner:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    names = [part.split(":")[0].split("=")[0].strip() for part in parts if part.strip()]
    return names if all(n.isidentifier() for n in names) else None


def _signature(fn):
    try:
        return list(inspect.signature(fn).parameters)
    except (ValueError, TypeError):
        return _docstring_parameters(fn)  # pybind11: no inspectable signature; None if not parseable either


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_implements_the_contract(backend):
    if backend not in _available():
        pytest.skip(f"{backend}: {pf.backends()[backend]['reason']}")
    module = _backend.kernels(backend)
    for name in _ref.KERNELS:
        fn = getattr(module, name, None)
        assert callable(fn), f"{backend} lacks kernel {name}"
        want = _signature(getattr(_ref, name))
        got = _signature(fn)
        if got is not None:
            assert got == want, f"{backend}.{name}{got} differs from _ref.{name}{want}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_kernel_a_module_has_matches_ref(backend):
    # Also for a backend still being built (importable, some kernels missing): what exists already conforms.
    try:
        module = importlib.import_module(_backend._MODULES[backend])
    except ImportError as exc:
        pytest.skip(f"{backend}: {exc}")
    present = [k for k in _ref.KERNELS if hasattr(module, k)]
    if not present:
        pytest.skip(f"{backend} has no kernels yet")
    for name in present:
        got = _signature(getattr(module, name))
        if got is not None:
            assert got == _signature(getattr(_ref, name)), f"{backend}.{name}"


def test_docstring_parameter_parser():
    def f():
        pass

    f.__doc__ = "f(a: object, b: list[tuple[int, int]], trans_a: bool = False, alpha: typing.SupportsFloat | x = 1.0) -> None"
    assert _docstring_parameters(f) == ["a", "b", "trans_a", "alpha"]
    f.__doc__ = "Overloaded function."
    assert _docstring_parameters(f) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_availability_matches_the_module(backend):
    # A backend is available exactly when its module imports and has every kernel; otherwise the reason says so.
    info = pf.backends()[backend]
    try:
        module = importlib.import_module(_backend._MODULES[backend])
    except ImportError:
        assert not info["available"] and "cannot import" in info["reason"]
        return
    missing = [k for k in _ref.KERNELS if not hasattr(module, k)]
    assert info["available"] == (not missing)
    for k in missing:
        assert k in info["reason"]


def test_backends_structure():
    info = pf.backends()
    assert list(info) == ["cpp", "numba", "numpy"]
    for name, entry in info.items():
        assert set(entry) == {"available", "reason"}
        assert isinstance(entry["available"], bool) and isinstance(entry["reason"], str)
        assert (entry["reason"] == "") == entry["available"], name
    assert info["numpy"]["available"]
    assert pf.get_backend() in _available()


# ---- choosing a backend -------------------------------------------------------------------------------------


def test_set_backend_and_use_backend_restore(restore_backend):
    start = pf.get_backend()
    for name in _available():
        pf.set_backend(name)
        assert pf.get_backend() == name
        for inner in _available():
            with pf.use_backend(inner) as chosen:
                assert chosen == inner and pf.get_backend() == inner
                assert _backend.kernels() is _backend.kernels(inner)
            assert pf.get_backend() == name
        assert _backend._local.name is None
    pf.set_backend(start)
    assert pf.get_backend() == start


def test_use_backend_restores_after_an_exception():
    start = pf.get_backend()
    with pytest.raises(RuntimeError), pf.use_backend("numpy"):
        raise RuntimeError("boom")
    assert pf.get_backend() == start
    assert _backend._local.name is None


def test_use_backend_nests():
    start = pf.get_backend()
    with pf.use_backend("numpy"):
        with pf.use_backend("numpy"):
            assert pf.get_backend() == "numpy"
        assert _backend._local.name == "numpy"
    assert _backend._local.name is None and pf.get_backend() == start


def test_failed_set_backend_keeps_the_current_one(restore_backend):
    start = pf.get_backend()
    for bad in ["nope"] + [n for n in BACKENDS if n not in _available()]:
        with pytest.raises(ValueError):
            pf.set_backend(bad)
        assert pf.get_backend() == start




def test_env_selects_numpy(run_python):
    r = run_python("import pyfastnn as pf; print(pf.get_backend())", PYFASTNN_BACKEND="numpy")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numpy"


def test_env_with_spaces_is_stripped(run_python):
    r = run_python("import pyfastnn as pf; print(pf.get_backend())", PYFASTNN_BACKEND="  numpy ")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numpy"


@pytest.mark.parametrize(
    "name",
    [n for n in BACKENDS if n not in _available()]
    or [pytest.param(None, marks=pytest.mark.skip(reason="every backend is available"))],
)
def test_env_naming_an_unavailable_backend_fails_and_says_why(name, run_python):
    r = run_python("import pyfastnn as pf; pf.get_backend()", PYFASTNN_BACKEND=name)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "PYFASTNN_BACKEND" in last and name in last and "not available" in last


def test_default_without_env_is_the_first_available(run_python):
    r = run_python("import pyfastnn as pf; print(pf.get_backend())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == _available()[0]


# ---- threads ------------------------------------------------------------------------------------------------


def test_get_num_threads_after_set():
    start = pf.get_num_threads()
    assert isinstance(start, int) and start >= 1
    try:
        for n in (1, 3, 2):
            pf.set_num_threads(n)
            assert pf.get_num_threads() == n
    finally:
        pf.set_num_threads(start)
    assert pf.get_num_threads() == start


def test_num_threads_env(run_python):
    r = run_python("import pyfastnn as pf; print(pf.get_num_threads())", PYFASTNN_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


# ---- pf.gemm against NumPy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", _available())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (-0.5, 0.0), (2.0, 1.0), (0.75, -1.5)])
def test_gemm_matches_numpy(backend, dtype, trans_a, trans_b, alpha, beta):
    rng = np.random.default_rng(42)
    m, k, n = 13, 7, 11  # odd, not multiples of any tile
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    want = alpha * (opa.astype(np.float64) @ opb.astype(np.float64)) + beta * c0.astype(np.float64)
    with pf.use_backend(backend):
        if beta == 0.0:
            out = np.full((m, n), np.nan, dtype)  # beta = 0 must not read out
            got = pf.gemm(a, b, out=out, trans_a=trans_a, trans_b=trans_b, alpha=alpha)
            assert got is out
            fresh = pf.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha)
            assert fresh.dtype == dtype and fresh.shape == (m, n)
            np.testing.assert_allclose(fresh, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
        else:
            out = c0.copy()
            got = pf.gemm(a, b, out=out, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)
            assert got is out
    assert got.dtype == dtype
    np.testing.assert_allclose(
        got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32 else 1e-12
    )


def test_gemm_accepts_non_contiguous_operands():
    rng = np.random.default_rng(0)
    big = rng.standard_normal((10, 12))
    a = big[::2, 1::2]  # (5, 6), strided
    b = np.asfortranarray(rng.standard_normal((6, 4)))
    np.testing.assert_allclose(pf.gemm(a, b), a @ b, rtol=1e-12)
    np.testing.assert_allclose(pf.gemm(a.T, b, trans_a=True), a @ b, rtol=1e-12)


def test_gemm_empty_dimensions():
    a = np.ones((3, 0))
    b = np.ones((0, 4))
    out = np.full((3, 4), 2.0)
    pf.gemm(a, b, out=out, beta=0.5)
    np.testing.assert_array_equal(out, np.full((3, 4), 1.0))
    assert pf.gemm(np.ones((0, 2)), np.ones((2, 3))).shape == (0, 3)
