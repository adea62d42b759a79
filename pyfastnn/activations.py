"""Activation functions by public name, and the checks that guard them at the API boundary.

The math lives in the backends (``_ref`` is the readable reference); this module is the registry of names and
offers plain NumPy versions of σ and σ' for users who want to look at them.
"""

import numpy as np

from . import _ref

#: Every activation, in the order of the classic derivation. ``softmax`` is for the output layer only.
ACTIVATIONS = ("step", "sign", "linear", "piecewise_linear", "sigmoid", "tanh", "relu", "softmax")
#: Activations allowed in hidden layers.
HIDDEN_ACTIVATIONS = ACTIVATIONS[:-1]
#: Units whose derivative is zero almost everywhere: plain backpropagation cannot train through them.
ZERO_GRADIENT_ACTIVATIONS = ("step", "sign")


def check_activation(name, *, output=False, what="activation"):
    """Return ``name`` if it is a valid activation (``softmax`` only where ``output``), else raise ValueError."""
    valid = ACTIVATIONS if output else HIDDEN_ACTIVATIONS
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a string, one of {', '.join(valid)}; got {type(name).__name__} {name!r}")
    if name not in valid:
        hint = " (softmax is only allowed at the output)" if name == "softmax" else ""
        raise ValueError(f"unknown {what} {name!r}{hint}; valid names: {', '.join(valid)}")
    return name


def apply(name, z):
    """σ(z) for an array z (rows are samples for softmax)."""
    check_activation(name, output=True)
    z = np.asarray(z, dtype=np.result_type(z, np.float32))
    out = np.empty_like(z)
    _ref.activation_forward(name, z, out)
    return out


def derivative(name, z):
    """σ'(z) elementwise (not for softmax, whose derivative is a Jacobian)."""
    check_activation(name)
    z = np.asarray(z, dtype=np.result_type(z, np.float32))
    a = apply(name, z)
    d = np.ones_like(z)
    _ref.activation_backward(name, a, z, d, False)
    return d
