"""pyfastnn: fully connected feedforward neural networks trained by backpropagation, with a compiled core.

Quick start::

    import pyfastnn as pf
    X, y = pf.datasets.load_digits()
    net = pf.MLP([64, 128, 10], seed=0)
    net.fit(X, y, optimizer=pf.SGD(lr=0.1, momentum=0.9), epochs=20)
"""

__version__ = "0.1.0"

from . import datasets, schedules
from ._backend import backends, get_backend, get_num_threads, set_backend, set_num_threads, use_backend
from .activations import ACTIVATIONS
from .gradcheck import gradcheck
from .io import load
from .losses import LOSSES
from .network import MLP
from .optim import SGD, Adam, Optimizer
from .train import History, fit


# Read PYFASTNN_BACKEND and PYFASTNN_NUM_THREADS now, so a bad value fails at import with its name in the message.
get_backend()
get_num_threads()


def __getattr__(name):
    # The scikit-learn estimators load on first use: scikit-learn is optional and slow to import.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'pyfastnn' has no attribute {name!r}")


def gemm(a, b, out=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """out = alpha·op(a)·op(b) + beta·out on the current backend; op(x) = xᵀ when trans_x.

    a and b: 2-D float32 or float64 arrays of the same dtype. ``out`` (C-contiguous, same dtype) is allocated
    when None (then beta must be 0). Returns out.
    """
    from ._gemm import gemm as _gemm

    return _gemm(a, b, out, trans_a, trans_b, alpha, beta)


def cpu_info():
    """What the compiled core detected about this CPU and which kernels it chose (empty without the core)."""
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
