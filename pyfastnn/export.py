"""A trained network out of pyfastnn and back: PyTorch modules, ONNX graphs, skl2onnx converters.

* :func:`to_torch` / :func:`from_torch`: an :class:`~pyfastnn.MLP` as a ``torch.nn.Sequential`` of ``Linear``
  layers, each followed by its activation module, and such a Sequential back as an MLP (parameters copied
  bit for bit both ways).
* :func:`to_onnx`: the network as an ONNX model (input ``X`` (N, N_0), output ``Y`` (N, N_L), in the
  network's dtype) that onnxruntime runs.
* :func:`register_skl2onnx`: teaches skl2onnx to convert :class:`pyfastnn.MLPClassifier` and
  :class:`pyfastnn.MLPRegressor`, so ``skl2onnx.to_onnx(estimator, X)`` works, also inside a Pipeline.
  Registration is explicit (call it once per process) so that importing pyfastnn never imports skl2onnx.

The optional packages are imported when a function needs them: ``pip install 'pyfastnn[torch]'`` for
PyTorch, ``pip install 'pyfastnn[onnx]'`` for onnx, onnxruntime and skl2onnx.

How each unit is mapped (docs/export.md has the table): relu, sigmoid, tanh, softmax and linear to torch's
``ReLU``, ``Sigmoid``, ``Tanh``, ``Softmax(dim=-1)`` and ``Identity``; step, sign and piecewise_linear to the
modules of :mod:`pyfastnn._torch` (exposed here as :data:`Step`, :data:`Sign`, :data:`PiecewiseLinear`),
which keep pyfastnn's values at 0 and its straight-through gradients. In ONNX: Relu, Sigmoid, Tanh,
Softmax(axis=1), Sign; step as Sign(z)·½ + ½ (exactly 0, ½ or 1); piecewise_linear as Clip(z + ½, 0, 1).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

from .network import MLP

__all__ = ["OPSET", "from_torch", "register_skl2onnx", "to_onnx", "to_torch"]

#: The ONNX opset of :func:`to_onnx` (the onnx extra's oldest onnxruntime, 1.17, runs up to 20); skl2onnx
#: conversions need a target_opset of at least 13.
OPSET = 17
_MIN_OPSET = 13  # Softmax normalises along its axis alone from opset 13 on; Clip takes min/max inputs from 11


def _require(module: str, extra: str, what: str) -> Any:
    """Import an optional package, or raise an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{what} needs the {module} package: pip install 'pyfastnn[{extra}]' ({exc})"
        ) from exc


def __getattr__(name: str) -> Any:
    # The torch modules are importable from here without importing torch with pyfastnn.export.
    if name in ("Step", "Sign", "PiecewiseLinear"):
        _require("torch", "torch", f"pyfastnn.export.{name}")
        from . import _torch

        return getattr(_torch, name)
    raise AttributeError(f"module 'pyfastnn.export' has no attribute {name!r}")


def _check_net(net: Any) -> MLP:
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a pyfastnn.MLP; got {type(net).__name__}")
    net._check_parameters(writable=False)
    return net


def _layers(net: MLP) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(W, b, activation) of every layer: copies taken as inference takes its reads, so an export while
    another thread trains the network sees the weights of an epoch boundary, never a half-updated network.
    order="K" keeps a first layer stored as an embedding table in that layout."""
    guard = net._guard()
    guard.begin_read()
    try:
        return [(w.copy(order="K"), b.copy(), act)
                for w, b, act in zip(net.weights, net.biases, net.activations)]
    finally:
        guard.end_read()


# ---- PyTorch -----------------------------------------------------------------------------------------------

_TORCH_BUILTINS = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "linear": "Identity"}
_TORCH_OWN = {"step": "Step", "sign": "Sign", "piecewise_linear": "PiecewiseLinear"}


def _torch_activation(torch: Any, name: str, straight_through: bool) -> Any:
    from . import _torch

    if name == "softmax":
        return torch.nn.Softmax(dim=-1)
    if name in _TORCH_BUILTINS:
        return getattr(torch.nn, _TORCH_BUILTINS[name])()
    if name == "piecewise_linear":
        return _torch.PiecewiseLinear()
    return getattr(_torch, _TORCH_OWN[name])(straight_through=straight_through)


def to_torch(net: MLP) -> Any:
    """The network as a ``torch.nn.Sequential``: ``Linear``, activation, ``Linear``, activation, ...

    Parameters
    ----------
    net : pyfastnn.MLP

    Returns
    -------
    torch.nn.Sequential
        2·L modules on the CPU in the network's dtype (float32 or float64): module 2l is
        ``Linear(N_l, N_{l+1})`` holding a copy of ``net.weights[l]`` (N_{l+1}, N_l) and ``net.biases[l]``,
        module 2l + 1 the activation
        (``Identity`` for linear). It maps (B, N_0) to (B, N_L) as ``net.forward`` does, gradients included.
    """
    torch = _require("torch", "torch", "MLP.to_torch")
    net = _check_net(net)
    modules = []
    for w, b, act in _layers(net):
        # Made on the meta device so the random initialisation torch would run (and overwrite) is skipped.
        linear = torch.nn.Linear(w.shape[1], w.shape[0], device="meta", dtype=_torch_dtype(torch, net.dtype))
        # A first layer kept as an embedding table becomes an ordinary (C-contiguous) weight matrix.
        linear.weight = torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(w)))
        linear.bias = torch.nn.Parameter(torch.from_numpy(b))
        modules += [linear, _torch_activation(torch, act, net.straight_through)]
    return torch.nn.Sequential(*modules)


def _torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    return torch.float32 if dtype == np.float32 else torch.float64


def _describe(index: int, module: Any) -> str:
    return f"module [{index}] ({module!r})"


def _torch_activation_name(torch: Any, index: int, module: Any) -> tuple[str, bool | None]:
    """pyfastnn's name for an activation module, and its straight_through flag (None when it has none)."""
    from . import _torch

    if isinstance(module, (_torch.Step, _torch.Sign)):
        return module.kind, module.straight_through
    if isinstance(module, _torch.PiecewiseLinear):
        return "piecewise_linear", None
    for name, cls in _TORCH_BUILTINS.items():
        if type(module) is getattr(torch.nn, cls):
            return name, None
    if type(module) is torch.nn.Softmax:
        if module.dim not in (1, -1):
            raise ValueError(
                f"{_describe(index, module)}: Softmax must normalise each row (dim=-1 or dim=1); got dim="
                f"{module.dim}"
            )
        return "softmax", None
    supported = ("Linear, ReLU, Sigmoid, Tanh, Identity, Softmax(dim=-1), pyfastnn.export.Step, "
                 "pyfastnn.export.Sign, pyfastnn.export.PiecewiseLinear")
    raise ValueError(f"{_describe(index, module)} is not supported: from_torch maps {supported}")


def from_torch(module: Any) -> MLP:
    """An :class:`~pyfastnn.MLP` from a ``torch.nn.Sequential`` of ``Linear`` layers and activations.

    Each ``Linear`` may be followed by one activation module: ``ReLU``, ``Sigmoid``, ``Tanh``, ``Identity``,
    ``Softmax(dim=-1)`` (last layer only) or pyfastnn's ``Step``, ``Sign``, ``PiecewiseLinear``; none means
    linear. These are the modules whose function pyfastnn computes exactly; anything else (Dropout,
    LayerNorm, LeakyReLU, ...) is refused rather than approximated.

    Parameters
    ----------
    module : torch.nn.Sequential
        With float32 or float64 parameters (all the same dtype), on any device.

    Returns
    -------
    pyfastnn.MLP
        layer_sizes [in_features of the first Linear, out_features of each Linear], its dtype that of the
        parameters, weights and biases bit-for-bit copies (a Linear without bias gets zeros), and
        ``straight_through`` that of the Step/Sign modules (which must agree).

    Raises
    ------
    TypeError
        If ``module`` is not a ``torch.nn.Sequential``.
    ValueError
        Naming the offending module: an unsupported module, two activations in a row, an activation before
        the first Linear, softmax in a hidden layer, sizes that do not chain, a dtype other than float32 or
        float64, Step/Sign modules with different straight_through settings.
    """
    torch = _require("torch", "torch", "MLP.from_torch")
    if not isinstance(module, torch.nn.Sequential):
        raise TypeError(
            "from_torch takes a torch.nn.Sequential of Linear layers and activations; got "
            f"{type(module).__name__}"
        )
    linears: list[Any] = []
    acts: list[str | None] = []
    flags = set()
    for index, m in enumerate(module):
        if type(m) is torch.nn.Linear:
            if linears and m.in_features != linears[-1].out_features:
                raise ValueError(
                    f"{_describe(index, m)} takes {m.in_features} inputs but the Linear before it gives "
                    f"{linears[-1].out_features}"
                )
            linears.append(m)
            acts.append(None)
            continue
        name, flag = _torch_activation_name(torch, index, m)
        if not linears:
            raise ValueError(f"{_describe(index, m)} comes before the first Linear layer: an MLP starts with "
                             "one")
        if acts[-1] is not None:
            raise ValueError(f"{_describe(index, m)} follows another activation: one per Linear layer")
        acts[-1] = name
        if flag is not None:
            flags.add(flag)
    if not linears:
        raise ValueError("the Sequential holds no Linear layer: there is no network to convert")
    for index, (m, act) in enumerate(zip(linears[:-1], acts[:-1])):
        if act == "softmax":
            raise ValueError(f"Softmax after Linear layer {index} of {len(linears)}: pyfastnn allows softmax "
                             "only at the output")
    if len(flags) > 1:
        raise ValueError("the Step/Sign modules disagree on straight_through: pyfastnn sets it for the whole "
                         "network")
    dtypes = {p.dtype for m in linears for p in m.parameters()}
    allowed = {torch.float32: np.float32, torch.float64: np.float64}
    if len(dtypes) != 1 or next(iter(dtypes)) not in allowed:
        raise ValueError(
            "the Linear layers' parameters must all be float32 or all float64; got "
            f"{sorted(map(str, dtypes))}"
        )
    dtype = allowed[next(iter(dtypes))]
    names = [a or "linear" for a in acts]
    net = MLP([linears[0].in_features] + [m.out_features for m in linears], activation=names[:-1],
              output_activation=names[-1], dtype=dtype, straight_through=bool(flags and flags.pop()))
    # np.array copies: the network must not share memory with the torch parameters.
    net.weights = [np.array(m.weight.detach().cpu().numpy(), order="C") for m in linears]
    net.biases = [np.zeros(m.out_features, dtype=dtype) if m.bias is None
                  else np.array(m.bias.detach().cpu().numpy()) for m in linears]
    net._check_parameters()
    return net


# ---- ONNX graphs -------------------------------------------------------------------------------------------

class _Graph:
    """The nodes and constants of an ONNX graph being written; subclasses say where they go."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self._scalars: dict[tuple[str, float], str] = {}

    def name(self, hint: str) -> str:
        raise NotImplementedError

    def add_constant(self, name: str, value: np.ndarray) -> None:
        raise NotImplementedError

    def add_node(self, op_type: str, inputs: list[str], output: str, attrs: dict[str, Any]) -> None:
        raise NotImplementedError

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.add_constant(name, value)
        return name

    def scalar(self, value: float, dtype: np.dtype) -> str:
        """A 0-d constant, made once per value and dtype."""
        key = (np.dtype(dtype).name, float(value))
        if key not in self._scalars:
            self._scalars[key] = self.const(f"{key[0]}_{value:g}", np.array(value, dtype=dtype))
        return self._scalars[key]

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        """Add a node; its output is ``output``, or a new name."""
        out = output or self.name(op_type.lower())
        self.add_node(op_type, inputs, out, attrs)
        return out

    def tensor(self, name: str, value: np.ndarray) -> Any:
        """A numeric array as a TensorProto."""
        return self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name)


class _ModelGraph(_Graph):
    """Nodes and initializers collected for onnx.helper.make_graph."""

    def __init__(self, onnx: Any) -> None:
        super().__init__(onnx)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def add_constant(self, name: str, value: np.ndarray) -> None:
        self.initializers.append(self.tensor(name, value))

    def add_node(self, op_type: str, inputs: list[str], output: str, attrs: dict[str, Any]) -> None:
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=output, **attrs))


class _ConverterGraph(_Graph):
    """Nodes written into a skl2onnx conversion (its scope names them, its container holds them)."""

    def __init__(self, onnx: Any, scope: Any, container: Any) -> None:
        super().__init__(onnx)
        self.scope, self.container = scope, container

    def name(self, hint: str) -> str:
        return self.scope.get_unique_variable_name(hint)

    def add_constant(self, name: str, value: np.ndarray) -> None:
        if value.dtype.kind in "OU":  # the container copies raw_data only, which string tensors do not use
            self.container.add_initializer(name, self.onnx.TensorProto.STRING, list(value.shape),
                                           [str(s).encode("utf-8") for s in value.ravel()])
        else:
            self.container.add_initializer(name, None, None, self.tensor(name, value))

    def add_node(self, op_type: str, inputs: list[str], output: str, attrs: dict[str, Any]) -> None:
        self.container.add_node(op_type, inputs, output, name=self.scope.get_unique_operator_name(op_type),
                                **attrs)


def _emit_activation(g: _Graph, name: str, z: str, dtype: np.dtype, output: str | None) -> str:
    if name in ("relu", "sigmoid", "tanh", "sign"):
        return g.op({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "sign": "Sign"}[name], [z], output)
    if name == "softmax":
        return g.op("Softmax", [z], output, axis=1)
    half = g.scalar(0.5, dtype)
    if name == "step":
        # sign(z) is exactly -1, 0 or 1 (NaN stays NaN), so sign(z)·½ + ½ is exactly 0, ½ or 1.
        return g.op("Add", [g.op("Mul", [g.op("Sign", [z]), half]), half], output)
    if name == "piecewise_linear":
        return g.op("Clip", [g.op("Add", [z, half]), g.scalar(0.0, dtype), g.scalar(1.0, dtype)], output)
    raise ValueError(f"unknown activation {name!r}")


def _emit_network(g: _Graph, net: MLP, x: str, output: str | None = None) -> str:
    """The forward pass from input x (B, N_0) in the network's dtype; returns the name of a^L (B, N_L)."""
    for l, (w, b, act) in enumerate(_layers(net)):
        last = l == net.n_layers - 1
        # Gemm computes x·Bᵀ + b with transB=1. A first layer kept as an embedding table (W¹ = Eᵀ, E
        # C-contiguous, see docs/sparse.md) is stored as E with transB=0: the same product, no transposing
        # copy.
        table = not w.flags.c_contiguous
        weight = g.const(f"W{l}", w.T if table else w)
        z = g.op("Gemm", [x, weight, g.const(f"b{l}", b)], output if last and act == "linear" else None,
                 transB=0 if table else 1)
        x = z if act == "linear" else _emit_activation(g, act, z, net.dtype, output if last else None)
    return x


def _onnx_type(onnx: Any, dtype: np.dtype) -> int:
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def to_onnx(net: MLP, path: str | os.PathLike[str] | None = None, *, opset: int = OPSET) -> Any:
    """The network as an ONNX model, written to ``path`` when given.

    Parameters
    ----------
    net : pyfastnn.MLP
    path : str or path-like, optional
        Where to save the model (``onnx.save``); nothing is written when None.
    opset : int >= 13, default :data:`OPSET`
        The ONNX opset the graph declares.

    Returns
    -------
    onnx.ModelProto
        One input ``X`` of shape (N, N_0) and one output ``Y`` of shape (N, N_L), both in the network's dtype
        (float32 or float64; N is free). onnxruntime gives ``net.forward``'s outputs to within rounding.
    """
    onnx = _require("onnx", "onnx", "MLP.to_onnx")
    net = _check_net(net)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < _MIN_OPSET:
        raise ValueError(f"opset must be an int >= {_MIN_OPSET}; got {opset!r}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, a path-like object or None; got {type(path).__name__}")
    g = _ModelGraph(onnx)
    _emit_network(g, net, "X", "Y")
    elem = _onnx_type(onnx, net.dtype)
    graph = onnx.helper.make_graph(
        g.nodes, "pyfastnn_mlp",
        [onnx.helper.make_tensor_value_info("X", elem, ["N", net.layer_sizes[0]])],
        [onnx.helper.make_tensor_value_info("Y", elem, ["N", net.layer_sizes[-1]])],
        g.initializers,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="pyfastnn", doc_string=repr(net))
    # Runtimes refuse IR versions newer than theirs: declare the oldest that the opset allows, not the newest
    # that this onnx package knows.
    model.ir_version = onnx.helper.find_min_ir_version_for(list(model.opset_import))
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model


# ---- skl2onnx ----------------------------------------------------------------------------------------------

def _estimator_input(g: _Graph, operator: Any, net: MLP) -> str:
    """The operator's input in the network's dtype (a Cast when the declared input type differs)."""
    onnx = g.onnx
    var = operator.inputs[0]
    n_features = var.type.shape[1] if len(var.type.shape) == 2 else None
    if isinstance(n_features, int) and n_features != net.layer_sizes[0]:
        raise ValueError(f"the input has {n_features} features but the estimator was fitted with "
                         f"{net.layer_sizes[0]}")
    want = _onnx_type(onnx, net.dtype)
    if var.type.to_onnx_type().tensor_type.elem_type == want:
        return var.full_name
    return g.op("Cast", [var.full_name], to=want)


def _to_output(g: _Graph, value: str, net: MLP, var: Any) -> None:
    """Write value (in the network's dtype) to the output variable var, cast to its declared type."""
    want = var.type.to_onnx_type().tensor_type.elem_type
    if want == _onnx_type(g.onnx, net.dtype):
        g.op("Identity", [value], var.full_name)
    else:
        g.op("Cast", [value], var.full_name, to=want)


def _class_labels(classes: np.ndarray) -> np.ndarray:
    """classes_ as the label tensor's values: int64, or str for string labels."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "OU":
        if not all(isinstance(c, str) for c in classes):
            raise ValueError("the ONNX converter takes class labels that are all strings or all integers; "
                             f"got {classes.tolist()!r}")
        return classes.astype(str)
    if classes.dtype.kind in "biu" or (classes.dtype.kind == "f" and np.all(classes == np.round(classes))):
        return classes.astype(np.int64)
    raise ValueError(f"the ONNX converter takes integer or string class labels; got {classes.tolist()!r}")


def _labels_of(scope: Any, est: Any) -> np.ndarray:
    """The values of the label output: classes_, or their indices under skl2onnx's option nocl=True."""
    if scope.get_options(est, {"nocl": False})["nocl"]:
        return np.arange(len(est.classes_), dtype=np.int64)
    return _class_labels(est.classes_)


def _multilabel(est: Any) -> bool:
    return bool(est._label_binarizer.y_type_.startswith("multilabel"))


def _check_opset(container: Any) -> None:
    opset = container.target_opset
    if opset is not None and opset < _MIN_OPSET:
        raise ValueError(f"pyfastnn's converters need target_opset >= {_MIN_OPSET}; got {opset}")


def _classifier_shapes(operator: Any) -> None:
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType
    from skl2onnx.common.utils import check_input_and_output_numbers

    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=2)
    est = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    k = len(est.classes_)
    if _multilabel(est):
        operator.outputs[0].type = Int64TensorType([n, k])
    elif _labels_of(operator.scope_inst, est).dtype.kind == "U":
        operator.outputs[0].type = StringTensorType([n])
    else:
        operator.outputs[0].type = Int64TensorType([n])
    operator.outputs[1].type = operator.outputs[1].type.__class__([n, k])


def _convert_classifier(scope: Any, operator: Any, container: Any) -> None:
    _check_opset(container)
    est = operator.raw_operator
    net = est.net_
    g = _ConverterGraph(_require("onnx", "onnx", "the skl2onnx converter"), scope, container)
    f = _emit_network(g, net, _estimator_input(g, operator, net))
    labels, proba = operator.outputs[0], operator.outputs[1]
    if _multilabel(est):
        _to_output(g, f, net, proba)
        g.op("Cast", [g.op("Greater", [f, g.scalar(0.5, net.dtype)])], labels.full_name,
             to=g.onnx.TensorProto.INT64)
        return
    if net.layer_sizes[-1] == 1:  # binary: one sigmoid output p, probabilities [1 − p, p]
        p = g.op("Concat", [g.op("Sub", [g.scalar(1.0, net.dtype), f]), f], axis=1)
    else:
        p = f
    _to_output(g, p, net, proba)
    # argmax of [1 − p, p] is 1 exactly when p > ½ (1 − p is exact for p ≥ ½), as the estimator's predict.
    index = g.op("ArgMax", [p], axis=1, keepdims=0)
    g.op("Gather", [g.const("classes", _labels_of(scope, est)), index], labels.full_name, axis=0)


def _regressor_shapes(operator: Any) -> None:
    from skl2onnx.common.utils import check_input_and_output_numbers

    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    est = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = operator.outputs[0].type.__class__([n, est.net_.layer_sizes[-1]])


def _convert_regressor(scope: Any, operator: Any, container: Any) -> None:
    _check_opset(container)
    net = operator.raw_operator.net_
    g = _ConverterGraph(_require("onnx", "onnx", "the skl2onnx converter"), scope, container)
    _to_output(g, _emit_network(g, net, _estimator_input(g, operator, net)), net, operator.outputs[0])


def register_skl2onnx() -> None:
    """Register skl2onnx shape calculators and converters for ``pf.MLPClassifier`` and ``pf.MLPRegressor``.

    After it, ``skl2onnx.to_onnx(estimator, X)`` (and ``convert_sklearn``) converts a fitted estimator, also
    as the last step of a Pipeline. The classifier's model has skl2onnx's usual outputs: ``label`` (N,) int64,
    or string for string class labels ((N, n_labels) int64 0/1 for multi-label targets) and ``probabilities``
    (N, n_classes), which skl2onnx wraps in a ZipMap unless ``options={"zipmap": False}``. The regressor's
    ``variable`` has shape (N, n_outputs), a column for a single output, as skl2onnx gives scikit-learn's
    MLPRegressor. The graph computes in the network's dtype (the input is cast to it) and returns the
    probabilities / values in the input's float type. Calling it again changes nothing.
    """
    skl2onnx = _require("skl2onnx", "onnx", "register_skl2onnx")
    from .estimators import MLPClassifier, MLPRegressor

    skl2onnx.update_registered_converter(
        MLPClassifier, "PyfastnnMLPClassifier", _classifier_shapes, _convert_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [False, True]},
    )
    skl2onnx.update_registered_converter(MLPRegressor, "PyfastnnMLPRegressor", _regressor_shapes,
                                         _convert_regressor)
