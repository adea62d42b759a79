"""Checking backpropagation against central finite differences."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .network import MLP


def numerical_gradients(net: MLP, x: ArrayLike, y: ArrayLike, loss: str | None = None,
                        eps: float = 1e-6) -> list[tuple[np.ndarray, np.ndarray]]:
    """Central differences (C(θ+ε) − C(θ−ε)) / 2ε for every weight and bias, computed on a float64 copy.

    Returns ``[(dW, db)]`` per layer, dW of shape (N_l, N_{l-1}) and db of shape (N_l,), float64.
    """
    probe = net.astype(np.float64)
    grads = []
    for w, b in zip(probe.weights, probe.biases):
        pair = []
        for p in (w, b):
            g = np.empty_like(p)
            # Views in memory order (g has p's layout): writing flat[i] changes p, also for an F-contiguous
            # embedding table, which reshape(-1) would copy.
            flat, gflat = p.ravel(order="K"), g.ravel(order="K")
            for i in range(flat.size):
                keep = flat[i]
                flat[i] = keep + eps
                up = probe.loss(x, y, loss)
                flat[i] = keep - eps
                down = probe.loss(x, y, loss)
                flat[i] = keep
                gflat[i] = (up - down) / (2 * eps)
            pair.append(g)
        grads.append(tuple(pair))
    return grads


def gradcheck(net: MLP, x: ArrayLike, y: ArrayLike, loss: str | None = None, eps: float = 1e-6) -> float:
    """The largest relative difference between backpropagation and central differences.

    For every parameter array (each W^l and b^l) the difference is max|g_bp − g_fd| / max(max|g_bp|, max|g_fd|)
    (0 where both gradients vanish); the result is the largest over the arrays. Backpropagation runs in the
    network's dtype on the current backend; the differences run on a float64 copy, because differences of
    float32 losses are mostly rounding noise. Costs two forward passes per parameter: use small networks.
    """
    if not (isinstance(eps, float) and eps > 0):
        raise ValueError(f"eps must be a positive float; got {eps!r}")
    _, analytic = net.loss_and_gradients(x, y, loss)
    numeric = numerical_gradients(net, x, y, loss, eps)
    worst = 0.0
    for pair_a, pair_n in zip(analytic, numeric):
        for ga, gn in zip(pair_a, pair_n):
            ga = ga.astype(np.float64)
            scale = max(np.max(np.abs(ga)), np.max(np.abs(gn)))
            if scale > 0:
                worst = max(worst, float(np.max(np.abs(ga - gn)) / scale))
    return worst
