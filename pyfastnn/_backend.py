"""Backend selection: which module runs the kernels of the contract in ``_ref.KERNELS``.

Chosen once, at import: the environment variable PYFASTNN_BACKEND if set, else the first available of
cpp → numba → numpy. Naming a backend that is unavailable is an error, never a silent switch.
"""

import contextlib
import importlib
import numbers
import os
import threading

from . import _ref

BACKENDS = ("cpp", "numba", "numpy")
_MODULES = {"cpp": "pyfastnn._core", "numba": "pyfastnn._numba", "numpy": "pyfastnn._ref"}

_lock = threading.Lock()
_cache = {}  # name -> (module or None, reason or None)
_state = {"name": None}
_local = threading.local()  # use_backend overrides per thread


def _probe(name):
    """Import a backend's module and check that it provides the whole kernel contract."""
    if name in _cache:
        return _cache[name]
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as exc:
        result = (None, f"cannot import {_MODULES[name]}: {exc}")
    else:
        missing = [k for k in _ref.KERNELS if not hasattr(module, k)]
        if missing:
            result = (None, f"{_MODULES[name]} lacks the kernels {', '.join(missing)}")
        else:
            result = (module, None)
    _cache[name] = result
    return result


def backends():
    """Every backend with whether it is available and, if not, why: ``{name: {"available": bool, "reason": str}}``."""
    return {
        name: {"available": _probe(name)[0] is not None, "reason": _probe(name)[1] or ""} for name in BACKENDS
    }


def _check_name(name):
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid names: {', '.join(BACKENDS)}")
    module, reason = _probe(name)
    if module is None:
        raise ValueError(f"backend {name!r} is not available: {reason}")
    return module


def _default():
    env = os.environ.get("PYFASTNN_BACKEND", "").strip()
    if env:
        try:
            _check_name(env)
        except ValueError as exc:
            raise ImportError(f"PYFASTNN_BACKEND={env!r}: {exc}") from None
        return env
    for name in BACKENDS:
        if _probe(name)[0] is not None:
            return name
    raise ImportError("no pyfastnn backend is available")  # numpy always is; kept for clarity


def get_backend():
    """The name of the backend in use in this thread."""
    override = getattr(_local, "name", None)
    if override is not None:
        return override
    with _lock:
        if _state["name"] is None:
            _state["name"] = _default()
        return _state["name"]


def set_backend(name):
    """Use backend ``name`` ("cpp", "numba" or "numpy") from now on; ValueError if it is unknown or unavailable."""
    _check_name(name)
    with _lock:
        _state["name"] = name


@contextlib.contextmanager
def use_backend(name):
    """Use backend ``name`` inside a ``with`` block (in this thread only)."""
    _check_name(name)
    previous = getattr(_local, "name", None)
    _local.name = name
    try:
        yield name
    finally:
        _local.name = previous


def kernels(name=None):
    """The module that implements the kernel contract for backend ``name`` (default: the current one)."""
    return _check_name(name or get_backend())


# ---------------------------------------------------------------------------------------------------------------
# Threads


def _env_threads():
    raw = os.environ.get("PYFASTNN_NUM_THREADS", "").strip()
    if not raw:
        return os.cpu_count() or 1
    try:
        n = int(raw)
    except ValueError:
        raise ImportError(f"PYFASTNN_NUM_THREADS must be a positive integer; got {raw!r}") from None
    if n < 1:
        raise ImportError(f"PYFASTNN_NUM_THREADS must be a positive integer; got {raw!r}")
    return n


_threads = {"n": None}


def set_num_threads(n):
    """Use at most ``n`` threads in the compiled kernels (the numpy backend leaves threading to NumPy's BLAS)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"number of threads must be an int; got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"number of threads must be >= 1; got {n}")
    n = int(n)
    _threads["n"] = n
    for name in ("cpp", "numba"):
        module = _cache.get(name, (None, None))[0]
        if module is None and name == "cpp":
            with contextlib.suppress(ImportError):
                module = importlib.import_module(_MODULES[name])
        if module is not None and hasattr(module, "set_num_threads"):
            module.set_num_threads(n)


def get_num_threads():
    """The thread count set by ``set_num_threads`` or PYFASTNN_NUM_THREADS (default: the number of CPUs)."""
    if _threads["n"] is None:
        set_num_threads(_env_threads())
    return _threads["n"]
