"""PyTorch modules for the pyfastnn units that torch has no exact built-in for: step, sign, piecewise_linear.

This module imports torch at the top: only :mod:`pyfastnn.export` imports it, when torch is asked for.

Each unit computes what pyfastnn's backends compute, value for value: step(0) = 1/2, sign(0) = 0, a NaN input
gives NaN (``torch.sign`` and ``torch.heaviside`` would give 0), piecewise_linear(z) = clip(z + 1/2, 0, 1) in
the tensor's dtype. Their gradients are pyfastnn's too: piecewise_linear's is 1 strictly inside (0, 1) and 0
at the kinks (``torch.clamp`` counts the kinks in); step's and sign's is 0, or, when ``straight_through``,
that of the nearest piecewise-linear unit (1 on |z| < 1/2 for step, on |z| < 1 for sign), as
``MLP(..., straight_through=True)`` trains them.
"""

import torch

__all__ = ["PiecewiseLinear", "Sign", "Step"]


def _keep_nan(z, values):
    return torch.where(torch.isnan(z), z, values)


class _ThresholdUnit(torch.autograd.Function):
    """step or sign forward; backward 0, or the straight-through estimator on |z| < half_width."""

    @staticmethod
    def forward(ctx, z, kind, half_width):
        ctx.save_for_backward(z)
        ctx.half_width = half_width
        s = torch.sign(z)
        # sign(z) is exactly -1, 0 or 1, so (s + 1)/2 is exactly 0, 1/2 or 1: Heaviside with H(0) = 1/2.
        return _keep_nan(z, s if kind == "sign" else (s + 1) * 0.5)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        if not ctx.half_width:
            return torch.zeros_like(grad), None, None
        return grad * (z.abs() < ctx.half_width).to(grad.dtype), None, None


class _PiecewiseLinearUnit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        a = torch.clamp(z + 0.5, 0.0, 1.0)
        ctx.save_for_backward(a)
        return a

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return grad * ((a > 0) & (a < 1)).to(grad.dtype)


class _Threshold(torch.nn.Module):
    kind = ""
    half_width = 0.0

    def __init__(self, straight_through=False):
        super().__init__()
        self.straight_through = bool(straight_through)

    def forward(self, z):
        return _ThresholdUnit.apply(z, self.kind, self.half_width if self.straight_through else 0.0)

    def extra_repr(self):
        return f"straight_through={self.straight_through}"


class Step(_Threshold):
    """Heaviside step with H(0) = 1/2, pyfastnn's ``step``; elementwise, any shape.

    Parameters
    ----------
    straight_through : bool
        Backpropagate through the unit as through clip(z + 1/2, 0, 1) (gradient 1 on |z| < 1/2) instead of
        with its zero derivative.
    """

    kind = "step"
    half_width = 0.5


class Sign(_Threshold):
    """sign(z) with sign(0) = 0, pyfastnn's ``sign``; elementwise, any shape.

    Parameters
    ----------
    straight_through : bool
        Backpropagate through the unit as through clip(z, -1, 1) (gradient 1 on |z| < 1) instead of with its
        zero derivative.
    """

    kind = "sign"
    half_width = 1.0


class PiecewiseLinear(torch.nn.Module):
    """clip(z + 1/2, 0, 1), pyfastnn's ``piecewise_linear``; elementwise, any shape."""

    def forward(self, z):
        return _PiecewiseLinearUnit.apply(z)
