"""Lets threadpoolctl see and limit the compiled core's thread pool, without importing threadpoolctl.

threadpoolctl finds thread pools by listing the shared libraries loaded in the process and matching each
file name against its controllers' prefixes; a controller whose prefix matches is kept if the library exports
one of the controller's ``check_symbols``. The core is ``pyfastnn/_core.<ABI tag>.so`` (``.pyd`` on Windows),
a name other packages' extensions share, so the controller matches the prefix ``_core.`` and then the C
functions the core exports for this purpose (``pyfastnn_get_num_threads``, ``pyfastnn_set_num_threads``),
which only pyfastnn's has.

``threadpool_info()`` lists the pool with ``user_api`` and ``internal_api`` "pyfastnn";
``threadpool_limits(n)`` and ``threadpool_limits(n, user_api="pyfastnn")`` limit it and restore it on exit.
Limits for "blas" or "openmp" leave it alone: it is neither.

Importing threadpoolctl costs a few milliseconds and sets KMP_DUPLICATE_LIB_OK in ``os.environ``, so
``import pyfastnn`` does not import it. The controller is registered at once if threadpoolctl is already
imported, else as soon as it is: a finder at the head of ``sys.meta_path`` waits for that one module name,
wraps its loader to register after the module ran, and then leaves ``sys.meta_path``.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

_MODULE = "threadpoolctl"
_registered: dict[str, ModuleType | None] = {"with": None}  # the threadpoolctl registered with


def _register(threadpoolctl: ModuleType) -> None:
    """Register the pyfastnn controller with an imported threadpoolctl (no-op before 3.0: no ``register``)."""
    if _registered["with"] is threadpoolctl:
        return
    if not hasattr(threadpoolctl, "register") or not hasattr(threadpoolctl, "LibController"):
        return

    from . import __version__
    from ._backend import MAX_THREADS

    class PyfastnnController(threadpoolctl.LibController):
        user_api = "pyfastnn"
        internal_api = "pyfastnn"
        filename_prefixes = ("_core.",)
        check_symbols = ("pyfastnn_get_num_threads", "pyfastnn_set_num_threads")

        # threadpoolctl builds a controller for every library whose name matches, before checking its symbols:
        # so on another package's _core these return None instead of failing.
        def get_num_threads(self) -> int | None:
            get = getattr(self.dynlib, "pyfastnn_get_num_threads", None)
            return None if get is None else get()

        def set_num_threads(self, num_threads: int) -> None:
            set_ = getattr(self.dynlib, "pyfastnn_set_num_threads", None)
            if set_ is not None:
                # threadpoolctl's limits are any positive int (OpenBLAS clamps too); the core takes 1 to 256.
                set_(min(max(int(num_threads), 1), MAX_THREADS))

        def get_version(self) -> str | None:
            return __version__ if hasattr(self.dynlib, "pyfastnn_get_num_threads") else None

    threadpoolctl.register(PyfastnnController)
    _registered["with"] = threadpoolctl


def _register_or_warn(threadpoolctl: ModuleType) -> None:
    # Runs inside the user's `import threadpoolctl` (or sklearn's): a failure here must not fail that import.
    try:
        _register(threadpoolctl)
    except Exception as exc:  # a future threadpoolctl that changed its controller API
        warnings.warn(f"pyfastnn could not register its thread pool with threadpoolctl "
                      f"{getattr(threadpoolctl, '__version__', '?')}: {exc!r}", RuntimeWarning, stacklevel=2)


# The finder and the loader follow importlib's protocols without subclassing importlib.abc, whose import costs
# more than the rest of this module.


class _RegisteringLoader:
    """threadpoolctl's own loader, plus the registration once the module has run."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _remove_finder()
        _register_or_warn(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ...: the real loader's
        if name == "_loader":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self._loader, name)


class _WaitForThreadpoolctl:
    def __init__(self) -> None:
        self._searching = False

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        # Imports of one module are serialised by its import lock, so _searching needs no lock of its own.
        if fullname != _MODULE or self._searching:
            return None
        self._searching = True
        try:
            spec = importlib.util.find_spec(fullname)  # the other finders' answer (this one says None now)
        finally:
            self._searching = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


_finder = _WaitForThreadpoolctl()


def _remove_finder() -> None:
    # Not from find_spec: the import system is iterating over sys.meta_path then.
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def install() -> None:
    """Register the controller with threadpoolctl now if it is imported, else when it is (idempotent)."""
    module = sys.modules.get(_MODULE)
    if module is not None:
        _register_or_warn(module)
    elif _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
