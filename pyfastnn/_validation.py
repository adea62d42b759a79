"""Inputs as the kernels take them: every "array-like → checked array or CSR" rule in one place.

The network, the training loop and the estimators call these; the kernels then trust shapes, dtypes and index
ranges (the compiled core re-checks what memory safety depends on).
"""

import sys

import numpy as np

from ._ref import CSR


def is_sparse(x):
    """Whether x is a scipy.sparse matrix or array. scipy is not imported for this: a sparse x means scipy.sparse
    is loaded already."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(x)


def check_inputs(x, n_features, dtype, what="X"):
    """Validate inputs; return them as a C-contiguous 2-D array of ``dtype`` (dense x) or as a :class:`CSR`
    (scipy.sparse x, any format), plus whether x was a single sample (1-D)."""
    if isinstance(x, CSR):
        x = _sparse_from_csr(x)
    if is_sparse(x):
        return _check_sparse(x, n_features, dtype, what)
    x = as_array(x, what, "or a scipy.sparse matrix")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold numbers; got an array of dtype {x.dtype}")
    single = x.ndim == 1
    if single:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what} must be 1-D (one sample) or 2-D (samples × features); got shape {x.shape}")
    _check_shape(x.shape, n_features, what)
    return _finite(x, dtype, what, lambda k: "sample {}, feature {}".format(*np.unravel_index(k, x.shape))), single


def as_array(x, what, alternatives=""):
    """x as a NumPy array (not yet checked): an ndarray, a list or tuple of numbers, or anything NumPy converts
    through ``__array__`` or the buffer protocol (a pandas DataFrame or Series, a torch tensor, a memoryview).
    Anything else is a TypeError naming ``what``; ``alternatives`` extends the list of what is accepted."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        try:
            return np.asarray(x)
        except ValueError as exc:  # ragged lists
            raise ValueError(f"{what} must be a rectangular array of numbers: {exc}") from None
    if hasattr(x, "__array__") or isinstance(x, memoryview):
        try:
            return np.asarray(x)
        except Exception as exc:  # e.g. a torch tensor that requires grad: say what failed, as a TypeError
            raise TypeError(f"{what} could not be read as an array ({type(x).__name__}): {exc}") from None
    raise TypeError(
        f"{what} must be a NumPy array, a list of numbers, an object with __array__ (a DataFrame, a tensor)"
        f"{' ' + alternatives if alternatives else ''}; got {type(x).__name__}"
    )


def _finite(given, dtype, what, where):
    """``given`` as a C-contiguous array of ``dtype``, which must hold only finite numbers: NaN or infinity is an
    error naming the first (``where(k)`` describes flat index k), and so are finite values that overflow the
    dtype (float64 data beyond float32's range, for a float32 network)."""
    with np.errstate(over="ignore"):
        x = np.ascontiguousarray(given, dtype=dtype)
    if np.all(np.isfinite(x)):
        return x
    if given.dtype.kind == "f" and np.all(np.isfinite(given)):
        top, limit = float(np.max(np.abs(given))), float(np.finfo(dtype).max)
        raise ValueError(f"{what} holds values up to {top:.3g}, beyond the {np.dtype(dtype)} range (±{limit:.3g}) of "
                         "this network: scale the data, or use a float64 network")
    k = int(np.flatnonzero(~np.isfinite(x.reshape(-1)))[0])
    raise ValueError(f"{what} contains NaN or infinity (first at {where(k)})")


def _check_shape(shape, n_features, what):
    if shape[0] == 0:
        raise ValueError(f"{what} is empty: it has no samples")
    if shape[1] != n_features:
        raise ValueError(f"{what} has {shape[1]} features per sample but the network expects {n_features}")


def _sparse_from_csr(x):
    import scipy.sparse

    return scipy.sparse.csr_matrix((x.data, x.indices, x.indptr), shape=x.shape, copy=False)


def _check_sparse(x, n_features, dtype, what):
    """A scipy.sparse x as a CSR of ``dtype``: converted once (the arrays are shared when they already have the
    kernels' dtypes), with every index checked, so that no entry can point outside the network's inputs."""
    single = x.ndim == 1
    if x.ndim not in (1, 2):
        raise ValueError(f"{what} must be 1-D (one sample) or 2-D (samples × features); got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold numbers; got a sparse matrix of dtype {x.dtype}")
    shape = (1, x.shape[0]) if single else x.shape
    _check_shape(shape, n_features, what)
    try:
        csr = (x.reshape(shape) if single else x).tocsr()
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"{what} is not a valid sparse matrix: {exc}") from None
    indptr, indices, data = csr.indptr, csr.indices, csr.data
    rows = shape[0]
    if not (isinstance(indptr, np.ndarray) and isinstance(indices, np.ndarray) and isinstance(data, np.ndarray)):
        raise TypeError(f"{what}: the sparse matrix's indptr, indices and data must be NumPy arrays")
    if indptr.ndim != 1 or indptr.shape[0] != rows + 1 or indptr.dtype.kind not in "iu":
        raise ValueError(f"{what}: indptr must be {rows + 1} integers (one more than the rows); got "
                         f"{indptr.dtype} {indptr.shape}")
    if indices.ndim != 1 or indices.dtype.kind not in "iu" or data.ndim != 1 or indices.shape != data.shape:
        raise ValueError(f"{what}: indices and data must be 1-D arrays of equal length; got {indices.dtype} "
                         f"{indices.shape} and {data.dtype} {data.shape}")
    nnz = indices.shape[0]
    if indptr[0] != 0 or indptr[-1] != nnz:
        raise ValueError(f"{what}: indptr must start at 0 and end at the number of stored entries ({nnz}); it "
                         f"runs from {indptr[0]} to {indptr[-1]}")
    if rows > 1 and np.any(indptr[1:] < indptr[:-1]):
        row = int(np.flatnonzero(indptr[1:] < indptr[:-1])[0])
        raise ValueError(f"{what}: indptr must not decrease; indptr[{row + 1}] = {indptr[row + 1]} < "
                         f"indptr[{row}] = {indptr[row]}")
    if nnz:
        low, high = indices.min(), indices.max()
        if low < 0 or high >= n_features:
            bad = int(np.flatnonzero((indices < 0) | (indices >= n_features))[0])
            raise ValueError(f"{what}: column index {indices[bad]} (entry {bad}) is outside 0..{n_features - 1}")
    if n_features > np.iinfo(np.int32).max:
        raise ValueError(f"sparse input needs fewer than 2**31 features; the network has {n_features}")
    data = _finite(data, dtype, what,
                   lambda k: f"sample {np.searchsorted(indptr, k, side='right') - 1}, feature {indices[k]}")
    indptr = np.ascontiguousarray(indptr, dtype=np.int64)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    return CSR(indptr, indices, data, int(n_features)), single


def take_rows(x, rows):
    """The rows ``rows`` (integer indices) of a checked input: an array's or a CSR's."""
    if not isinstance(x, CSR):
        return x[rows]
    part = _sparse_from_csr(x)[np.asarray(rows)]
    return CSR(part.indptr.astype(np.int64, copy=False), part.indices.astype(np.int32, copy=False), part.data,
               x.n_cols)


def largest_magnitude(x):
    """max |x| over an array's entries or a CSR's stored entries (0 when there are none)."""
    values = x.data if isinstance(x, CSR) else x
    return float(np.max(np.abs(values))) if values.size else 0.0
