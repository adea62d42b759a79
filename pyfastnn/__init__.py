"""pyfastnn: fully connected feedforward neural networks trained by backpropagation, with a compiled core.

Quick start::

    import pyfastnn as pf
    X, y = pf.datasets.load_digits()
    net = pf.MLP([64, 128, 10], seed=0)
    net.fit(X, y, optimizer=pf.SGD(lr=0.1, momentum=0.9), epochs=20)
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from . import _threadpoolctl, datasets, schedules
from ._backend import backends, get_backend, get_num_threads, set_backend, set_num_threads, use_backend
from .activations import ACTIVATIONS
from .gradcheck import gradcheck
from .io import load
from .losses import LOSSES
from .network import MLP
from .optim import SGD, Adam, Optimizer
from .train import History, fit

if TYPE_CHECKING:
    import numpy as np

    from .estimators import MLPClassifier, MLPRegressor  # loaded lazily at run time (see __getattr__)


# Read PYFASTNN_BACKEND and the thread variables now: a bad value fails at import, naming the variable.
get_backend()
get_num_threads()
_threadpoolctl.install()  # threadpoolctl sees the thread pool (without pyfastnn importing it)


def __getattr__(name: str) -> Any:
    # The scikit-learn estimators load on first use: scikit-learn is optional and slow to import.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'pyfastnn' has no attribute {name!r}")


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, trans_a: bool = False, trans_b: bool = False,
         alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """out = alpha·op(a)·op(b) + beta·out on the current backend; op(x) = xᵀ when trans_x.

    Parameters
    ----------
    a : ndarray, shape (m, k), or (k, m) when trans_a
    b : ndarray, shape (k, n), or (n, k) when trans_b
        2-D float32 or float64 arrays of the same dtype (copied to C order when they are not).
    out : ndarray, shape (m, n), or None
        C-contiguous, writable, of the same dtype and not overlapping a or b; allocated when None (then beta
        must be 0). With beta = 0 its old contents are never read.
    trans_a, trans_b : bool
    alpha, beta : float

    Returns
    -------
    ndarray, shape (m, n)
        ``out``.
    """
    from ._gemm import gemm as _gemm

    return _gemm(a, b, out, trans_a, trans_b, alpha, beta)


def cpu_info() -> dict[str, Any]:
    """What the compiled core detected about this CPU and which kernels it chose.

    ``{"available": True, "arch", "vendor", "features", "isa", "float32", "float64", "num_threads", ...}``
    (the keys of ``pyfastnn._core.cpu_info``), or ``{"available": False, "reason": str}`` without the core.
    """
    try:
        from . import _core
    except ImportError as exc:
        return {"available": False, "reason": str(exc)}
    info = dict(_core.cpu_info()) if hasattr(_core, "cpu_info") else {}
    info["available"] = True
    return info


__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "MLPClassifier",
    "MLPRegressor",
    "SGD",
    "Adam",
    "History",
    "Optimizer",
    "__version__",
    "backends",
    "cpu_info",
    "datasets",
    "fit",
    "gemm",
    "get_backend",
    "get_num_threads",
    "gradcheck",
    "load",
    "schedules",
    "set_backend",
    "set_num_threads",
    "use_backend",
]
