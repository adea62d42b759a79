"""Backend selection: which module runs the kernels of the contract in ``_ref.KERNELS``.

Chosen once, at import: the environment variable PYFASTNN_BACKEND if set, else the first available of
cpp → numba → numpy. Naming a backend that is unavailable is an error, never a silent switch.
"""

from __future__ import annotations

import contextlib
import importlib
import numbers
import os
import threading
import warnings
from typing import Any

from . import _ref

BACKENDS = ("cpp", "numba", "numpy")
_MODULES = {"cpp": "pyfastnn._core", "numba": "pyfastnn._numba", "numpy": "pyfastnn._ref"}

_lock = threading.Lock()
_cache = {}  # name -> (module or None, reason or None)
_state = {"name": None}
class _Override(threading.local):
    name = None  # a class default: reading it in a thread that never set it raises and catches nothing


_local = _Override()  # use_backend overrides per thread


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
        # A malformed PYFASTNN_GEMM_BLOCKS is a usage error, not an unavailable backend (which would silently
        # switch to the next one): say so at first use.
        error = getattr(module, "_gemm_blocks_error", lambda: "")()
        if error:
            raise ValueError(error)
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
    if name is None:  # the per-call path of train_step: the backend in use, once it has been probed
        module = _cache.get(_local.name or _state["name"], (None,))[0]
        if module is not None:
            return module
    return _check_name(name or get_backend())


# ---------------------------------------------------------------------------------------------------------------
# Threads


# The compiled core's limit (max_threads in csrc/threads.h; a test checks they agree), applied without the
# core too so that a count means the same on every backend.
MAX_THREADS = 256

# The count while no compiled core holds it (the core is the truth once loaded); None until first read.
_threads: dict[str, int | None] = {"n": None}
_threads_lock = threading.Lock()


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask (``taskset``, cpusets), else the logical CPU count."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13+: the affinity mask on every OS that has one
        return os.process_cpu_count() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity API here (macOS, Windows before 3.13)
        return os.cpu_count() or 1


def _env_limit(name: str) -> int | None:
    """The thread limit in environment variable ``name`` (PYFASTNN_NUM_THREADS or OMP_NUM_THREADS), or None.

    A bad PYFASTNN_NUM_THREADS raises ImportError (the variable is pyfastnn's own); a bad OMP_NUM_THREADS is
    ignored with a warning, since a variable shared with other libraries must not break ``import pyfastnn``.
    An OMP_NUM_THREADS list for nested levels ("4,2") counts by its first entry, the outer level.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    own = name == "PYFASTNN_NUM_THREADS"
    try:
        n = int(raw if own else raw.split(",")[0])
    except ValueError:
        n = 0
    if n >= 1:
        return n
    message = f"{name} must be a positive integer; got {raw!r}"
    if own:
        raise ImportError(message)
    warnings.warn(f"{message}; pyfastnn ignores it", RuntimeWarning, stacklevel=4)
    return None


def _default_threads() -> int:
    """The thread count when ``set_num_threads`` was never called.

    The CPUs this process may run on, at most PYFASTNN_NUM_THREADS when set, else at most OMP_NUM_THREADS
    when set (joblib's loky workers, as used by scikit-learn's ``n_jobs``, set it to their share of the CPUs),
    and at most MAX_THREADS (with a warning when that cap is what decides).
    """
    cpus = usable_cpus()
    own = _env_limit("PYFASTNN_NUM_THREADS")
    limit = own if own is not None else _env_limit("OMP_NUM_THREADS")
    n = cpus if limit is None else min(cpus, limit)
    if own is not None and own > MAX_THREADS:
        warnings.warn(f"PYFASTNN_NUM_THREADS={own} is above pyfastnn's maximum of {MAX_THREADS} threads; "
                      f"using at most {MAX_THREADS}", RuntimeWarning, stacklevel=3)
    elif n > MAX_THREADS:
        warnings.warn(f"this process may run on {cpus} CPUs but pyfastnn uses at most {MAX_THREADS} threads; "
                      f"set PYFASTNN_NUM_THREADS (1 to {MAX_THREADS}) to choose the count and silence this "
                      "warning",
                      RuntimeWarning, stacklevel=3)
    return min(n, MAX_THREADS)


def _thread_core() -> Any:
    """The compiled core, the owner of pyfastnn's only thread pool, or None."""
    return _probe("cpp")[0]


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 to 256) in the compiled kernels; on error nothing changes.

    The numba and numpy backends have no pool of their own: their matrix products thread in NumPy's BLAS
    (threadpoolctl's user_api "blas").
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"number of threads must be an int; got {type(n).__name__} {n!r}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"number of threads must be between 1 and {MAX_THREADS}; got {n}")
    n = int(n)
    core = _thread_core()
    with _threads_lock:
        if core is not None:
            core.set_num_threads(n)
        _threads["n"] = n


def get_num_threads() -> int:
    """The threads the compiled kernels use.

    Set by ``set_num_threads`` or threadpoolctl's ``threadpool_limits``; by default the CPUs this process may
    run on (its affinity mask), at most PYFASTNN_NUM_THREADS, else at most OMP_NUM_THREADS, when set.
    """
    core = _thread_core()
    with _threads_lock:
        n = _threads["n"]
        if n is None:
            n = _threads["n"] = _default_threads()
            if core is not None:
                core.set_num_threads(n)
    # The core, not _threads, once it exists: threadpoolctl changes its count without going through Python.
    return n if core is None else int(core.get_num_threads())
