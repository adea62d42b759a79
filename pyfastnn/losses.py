"""Loss functions by public name and the checks of their targets.

Every loss is the batch mean of per-sample costs, each summed over the outputs (docs/design.md, "Losses"):

    squared_error          Σ (y − f)²                 (no factor 1/2)
    hinge                  Σ max(0, 1 − y·f)          targets y ∈ {−1, +1}
    binary_cross_entropy   −Σ y log f + (1−y) log(1−f) targets y ∈ [0, 1]
    cross_entropy          −Σ y log f                 targets one-hot/probabilities (B, M) or labels (B,)
"""

import numpy as np

from ._validation import as_array

LOSSES = ("squared_error", "hinge", "binary_cross_entropy", "cross_entropy")

#: The loss chosen when none is given, by output activation.
DEFAULT_LOSS = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "sign": "hinge"}


def check_loss(name):
    if not isinstance(name, str):
        raise TypeError(f"loss must be a string, one of {', '.join(LOSSES)}; got {type(name).__name__} {name!r}")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    return name


def default_loss(output_activation):
    return DEFAULT_LOSS.get(output_activation, "squared_error")


def prepare_targets(loss, y, n_outputs, n_samples, dtype):
    """Check targets against the loss and return them as a C-contiguous (B, M) array of ``dtype``.

    Integer labels (shape (B,)) are accepted for cross_entropy and turned into one-hot rows; a 1-D target for a
    single-output network is read as a column.
    """
    y = as_array(y, "targets")
    if y.dtype.kind not in "biuf":
        raise TypeError(f"targets must be numeric; got an array of dtype {y.dtype}")
    if y.ndim == 0 or y.ndim > 2:
        raise ValueError(f"targets must be 1-D or 2-D; got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but the targets have {y.shape[0]}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError("targets contain NaN or infinity")
    if loss == "cross_entropy" and y.ndim == 1 and not (n_outputs == 1 and y.dtype.kind == "f"):
        if n_outputs < 2:
            raise ValueError("integer labels for cross_entropy need a network with at least 2 outputs")
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            bad = int(np.flatnonzero(y != np.round(y))[0])
            raise ValueError(f"cross_entropy labels must be integers; got {y[bad]!r} at index {bad}")
        out_of_range = (y < 0) | (y >= n_outputs)  # checked before the cast, so huge values stay readable
        if np.any(out_of_range):
            bad = int(np.flatnonzero(out_of_range)[0])
            raise ValueError(
                f"cross_entropy labels must lie in 0..{n_outputs - 1} (the network has {n_outputs} outputs); "
                f"got {y[bad]!r} at index {bad}"
            )
        labels = y.astype(np.int64)
        out = np.zeros((n_samples, n_outputs), dtype=dtype)
        out[np.arange(n_samples), labels] = 1
        return out
    if y.ndim == 1:
        if n_outputs != 1:
            raise ValueError(
                f"1-D targets fit a network with 1 output; this one has {n_outputs} "
                "(pass targets of shape (B, M), or integer labels with loss='cross_entropy')"
            )
        y = y[:, None]
    if y.shape[1] != n_outputs:
        raise ValueError(f"targets have {y.shape[1]} columns but the network has {n_outputs} outputs")
    if loss == "hinge" and not np.all((y == 1) | (y == -1)):
        bad = np.argwhere((y != 1) & (y != -1))[0]
        raise ValueError(f"hinge targets must be -1 or +1; got {y[tuple(bad)]!r} at {tuple(int(i) for i in bad)}")
    if loss == "binary_cross_entropy" and (y.size and (y.min() < 0 or y.max() > 1)):
        raise ValueError(f"binary_cross_entropy targets must lie in [0, 1]; got values in [{y.min()}, {y.max()}]")
    if loss == "cross_entropy" and y.size and y.min() < 0:
        bad = np.argwhere(y < 0)[0]
        raise ValueError(
            "cross_entropy targets must be non-negative (one-hot rows or probabilities); "
            f"got {y[tuple(bad)]!r} at {tuple(int(i) for i in bad)}"
        )
    y = np.ascontiguousarray(y, dtype=dtype)
    if not np.all(np.isfinite(y)):  # after the cast: values beyond float32's range become inf
        raise ValueError(f"targets contain NaN or infinity once converted to {np.dtype(dtype).name} (out of its range)")
    return y
