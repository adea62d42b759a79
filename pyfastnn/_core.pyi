# Type stubs of the compiled core (csrc/bindings.cpp, csrc/bindings_nn.cpp). The kernels of the contract take
# the same parameters as their NumPy references in pyfastnn/_ref.py; docs/architecture.md lists them.
# Arrays are float32 or float64 (one dtype per call), C-contiguous; the bindings check dtype, shape, layout and
# writability and raise TypeError / ValueError, so the annotations below say what a call should pass, not
# everything the bindings would reject.
# tests/test_typing.py checks that this file names exactly the functions the module exports, with their
# parameters.

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

_Array = NDArray[Any]  # float32 or float64
# Per-layer buffers: the bindings take a list or a tuple (Sequence, so that a list of arrays may stand where some
# entries could be None). Parameters, names and the optimizer's inputs must be lists.
_ArrayList = Sequence[_Array]
_OptArrayList = Sequence[_Array | None]

__version__: str

# ---- GEMM, CPU dispatch and threads (bindings.cpp) --------------------------------------------------------------

def gemm(
    a: _Array,
    b: _Array,
    out: _Array,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> None: ...

# Keys: arch, vendor, features, os_avx, os_avx512, isa_supported, compiled_kernels, isa, float32, float64
# (the active kernels' name, tile and block sizes, blocks_source: cpuid | sysfs | override | kernel, and
# measured_blocks), kernels (the same per supported ISA level), num_threads, caches (source, l1d, l2, l3).
def cpu_info() -> dict[str, Any]: ...
def set_isa(name: str) -> None: ...
def get_isa() -> str: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...

# Not public: the oversubscription guard's counters (stalled_regions, serial_regions, backoff_ms), the GEMM
# driver's tunables, and its block-size model and PYFASTNN_GEMM_BLOCKS parser, for the benchmarks and tests.
def _thread_stats() -> dict[str, float]: ...
def _get_gemm_params() -> dict[str, int]: ...
def _gemm_model_blocks(
    mr: int,
    nr: int,
    elem_size: int,
    measured: tuple[int, int, int],
    l1d: tuple[int, ...] | None = None,
    l2: tuple[int, ...] | None = None,
    l3: tuple[int, ...] | None = None,
) -> tuple[int, int, int]: ...
def _parse_gemm_blocks(text: str) -> tuple[int, int, int]: ...
def _gemm_blocks_error() -> str: ...
def _set_gemm_params(params: dict[str, int]) -> None: ...
# Not public: whether momentum / Adam on dense layers run inside the weight-gradient GEMM (sets it when given;
# returns the previous setting), for tests/test_fused_optimizer.py and benchmarks/bench_fused_optimizers.py.
def _fused_optimizer_steps(on: bool | None = None) -> bool: ...

# ---- the kernel contract (bindings_nn.cpp) ----------------------------------------------------------------------

def activation_forward(name: str, z: _Array, out: _Array) -> None: ...
def activation_backward(name: str, a: _Array, z: _Array | None, delta: _Array, ste: bool) -> None: ...
def loss_and_output_delta(
    loss: str,
    act: str,
    a: _Array,
    z: _Array | None,
    y: _Array,
    delta: _Array,
    ste: bool,
    sw: _Array | None = None,
) -> float: ...
def loss_value(loss: str, act: str, a: _Array, z: _Array | None, y: _Array, sw: _Array | None = None) -> float: ...
def forward(
    weights: list[_Array],
    biases: list[_Array],
    acts: list[str],
    x: _Array,
    outs: _ArrayList,
    zs: _OptArrayList,
) -> None: ...
def backward(
    weights: list[_Array],
    acts: list[str],
    loss: str,
    x: _Array,
    y: _Array,
    outs: _ArrayList,
    zs: _OptArrayList,
    deltas: _ArrayList,
    dweights: _ArrayList,
    dbiases: _ArrayList,
    ste: bool,
    sw: _Array | None = None,
) -> float: ...
def sgd_update(
    params: list[_Array],
    grads: list[_Array],
    velocities: _ArrayList | None,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
) -> None: ...
def adam_update(
    params: list[_Array],
    grads: list[_Array],
    ms: list[_Array],
    vs: list[_Array],
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
) -> None: ...

# opt = (kind "sgd" | "adam", lr, momentum, nesterov, weight_decay, beta1, beta2, eps, step, state arrays).
def train_epoch(
    weights: list[_Array],
    biases: list[_Array],
    acts: list[str],
    loss: str,
    x: _Array,
    y: _Array,
    order: NDArray[np.int64] | None,
    batch: int,
    outs: _ArrayList,
    zs: _OptArrayList,
    deltas: _ArrayList,
    dweights: _ArrayList,
    dbiases: _ArrayList,
    xbuf: _Array | None,
    ybuf: _Array | None,
    ste: bool,
    opt: tuple[str, float, float, bool, float, float, float, float, int, Sequence[_Array]],
    sw: _Array | None = None,
    progress: Callable[[int], object] | None = None,
) -> tuple[float, int, int, float]: ...

class StepPlan:
    """One network's train_step, its arrays checked once (pyfastnn/_train_step.py)."""

    def step(
        self,
        weights: list[_Array],
        biases: list[_Array],
        x: _Array,
        y: _Array,
        sw: _Array | None,
        lr: float,
        t: int,
        limit: float,
    ) -> tuple[int, float, float, bool]: ...
    def undo(self) -> bool: ...

def step_plan(
    weights: list[_Array],
    biases: list[_Array],
    acts: list[str],
    loss: str,
    ste: bool,
    opt: tuple[str, float, float, bool, float, float, float, float, int, Sequence[_Array], bool],
    rows: int,
    outs: _ArrayList,
    zs: _OptArrayList,
    deltas: _ArrayList,
    dweights: _ArrayList,
    dbiases: _ArrayList,
) -> StepPlan: ...
