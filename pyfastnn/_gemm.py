"""Argument checks of the public ``pf.gemm`` before it reaches a backend kernel."""

from __future__ import annotations

import numbers

import numpy as np

from . import _backend


def _operand(name: str, x: object) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array; got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64; got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {x.shape}")
    return np.ascontiguousarray(x)


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray | None, trans_a: bool, trans_b: bool, alpha: float,
         beta: float) -> np.ndarray:
    a = _operand("a", a)
    b = _operand("b", b)
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have the same dtype; got {a.dtype} and {b.dtype}")
    for name, v in (("alpha", alpha), ("beta", beta)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name} must be a real number; got {v!r}")
    for name, v in (("trans_a", trans_a), ("trans_b", trans_b)):
        if not isinstance(v, (bool, np.bool_)):  # bool("no") is True: a truthy string would transpose
            raise TypeError(f"{name} must be True or False; got {type(v).__name__} {v!r}")
    m, k = a.shape[::-1] if trans_a else a.shape
    k2, n = b.shape[::-1] if trans_b else b.shape
    if k != k2:
        raise ValueError(
            f"inner dimensions differ: op(a) is {m}×{k} and op(b) is {k2}×{n} (trans_a={trans_a}, trans_b={trans_b})"
        )
    if out is None:
        if beta != 0:
            raise ValueError("beta != 0 needs an out array to accumulate into")
        out = np.empty((m, n), dtype=a.dtype)
    else:
        if not isinstance(out, np.ndarray) or out.dtype != a.dtype or out.shape != (m, n):
            got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
            raise ValueError(f"out must be a {a.dtype} array of shape {(m, n)}; got {got}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be C-contiguous and writable")
        if np.shares_memory(out, a) or np.shares_memory(out, b):
            raise ValueError("out must not overlap a or b")
    _backend.kernels().gemm(a, b, out, bool(trans_a), bool(trans_b), float(alpha), float(beta))
    return out
