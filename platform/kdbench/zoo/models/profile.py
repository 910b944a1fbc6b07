"""One measurement per architecture: its parameter count, forward FLOPs and feature-tap shapes.

Validation needs all three for every model of a suite — `load_suite` refuses an absurd size, the planner prunes
methods by tap shapes, the estimate sums FLOPs — so each (architecture, parameters, input shape, classes) is built
once, on PyTorch's meta device (shapes only: nothing allocated, no arithmetic done), and every caller reads the
same cached profile. A model with an operation the meta device lacks is profiled on the CPU instead.

On the meta device, initialisation and the commonest layers are short-cut to their shapes (`_MetaShortcuts`), and
FLOPs are tallied per function call (`_FlopTally`, falling back to FlopCounterMode for any function it does not
know): in torch 2.x those run Python reference implementations on meta tensors, and the first such call imports
TorchDynamo (with sympy: about a second) — time spent on values that do not exist.
"""

from __future__ import annotations

import functools
import json
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .base import count_parameters, create_model
from .features import feature_shapes


@dataclass(frozen=True)
class ArchProfile:
    params: int  # parameter count
    flops: float  # FLOPs of one sample's eval-mode forward (a multiply-add counts 2; see cost.py)
    features: dict[str, tuple[int, ...]]  # each feature tap's shape without the batch dimension


T = torch.Tensor
_ELEMENTWISE = (torch.add, torch.sub, torch.mul, T.add, T.sub, T.mul, T.__add__, T.__radd__, T.__sub__, T.__rsub__,
                T.__mul__, T.__rmul__)


def _shortcut(func, args: tuple, kwargs: dict, x: torch.Tensor) -> torch.Tensor | None:
    """The meta result of `func` computed from shapes alone, for the functions a forward calls most whose meta
    kernels are Python reference implementations; None for any other call (it runs as usual)."""
    if func is F.batch_norm or func is F.relu:  # shaped like the input; in place: the input itself
        return x if kwargs.get("inplace") or (func is F.relu and len(args) > 1 and args[1] is True) \
            else torch.empty_like(x)
    if func is F.linear:
        w = args[1] if len(args) > 1 else kwargs["weight"]
        return x.new_empty((*x.shape[:-1], w.shape[0]))
    if func in _ELEMENTWISE and len(args) == 2 and not kwargs:  # tensor ∘ tensor (broadcast) or tensor ∘ number
        other = args[1]
        if isinstance(other, torch.Tensor):
            if not other.is_meta:
                return None
            shape = torch.broadcast_shapes(x.shape, other.shape)
        elif isinstance(other, int | float) and not isinstance(other, bool):
            shape = x.shape
        else:
            return None
        return torch.empty(shape, dtype=torch.result_type(x, other), device="meta")
    if func is F.adaptive_avg_pool2d and x.dim() in (3, 4):
        size = args[1] if len(args) > 1 else kwargs["output_size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        return x.new_empty((*x.shape[:-2], *(n if n is not None else d for n, d in zip(size, x.shape[-2:]))))
    return None


def _all_meta(tensors) -> bool:
    return (isinstance(tensors, list | tuple) and len(tensors) > 0
            and all(isinstance(t, torch.Tensor) and t.is_meta and t.dim() > 0 for t in tensors))


def _cat(tensors, dim: int) -> torch.Tensor:
    first = tensors[0]
    dim = dim % first.dim()
    if any(t.dim() != first.dim() or t.shape[:dim] != first.shape[:dim] or t.shape[dim + 1:] != first.shape[dim + 1:]
           for t in tensors):
        return torch.cat(tensors, dim)  # let torch say what is wrong
    shape = (*first.shape[:dim], sum(t.shape[dim] for t in tensors), *first.shape[dim + 1:])
    return torch.empty(shape, dtype=functools.reduce(torch.promote_types, (t.dtype for t in tensors)), device="meta")


class _MetaShortcuts(TorchFunctionMode):
    """On meta tensors, skip what costs time there and cannot change a shape:

    - initialisation (`torch.nn.init.*`, `Tensor.normal_`) returns its tensor unchanged: there are no values to
      draw (and `normal_` on meta runs PyTorch's Python reference implementation, which imports TorchDynamo);
    - batch norm, ReLU, linear, tensor + tensor and adaptive average pooling are computed from shapes
      (`_shortcut`): their meta kernels are Python reference implementations, most of a meta forward's time,
      and the first of them imports TorchDynamo (about a second). FLOPs are tallied from the same calls.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor", kwargs.get("input"))  # torch.nn.init: by keyword
        if func is torch.cat and not kwargs.keys() - {"dim"} and _all_meta(target):
            return _cat(target, args[1] if len(args) > 1 else kwargs.get("dim", 0))
        if isinstance(target, torch.Tensor) and target.is_meta:
            if func is torch.Tensor.normal_ or getattr(func, "__module__", None) == "torch.nn.init":
                return target
            out = _shortcut(func, args, kwargs, target)
            if out is not None:
                return out
        return func(*args, **kwargs)


@contextmanager
def on_meta():
    """Build and run models on the meta device, skipping what would only draw random values."""
    with torch.device("meta"), _MetaShortcuts():
        yield


@cache
def meta_model(arch: str, params_json: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """`arch` built on the meta device (cached: a meta model costs no memory). Raises what building raises."""
    with on_meta():
        return create_model(arch, json.loads(params_json), input_shape, num_classes)


# Functions that do no matrix multiply or convolution (FlopCounterMode counts only those): seen in a forward,
# they add nothing. Any function outside this set and _COUNTED sends the count to FlopCounterMode.
_NO_FLOPS = frozenset("""
    __get__ __getitem__ __setitem__ __add__ __iadd__ __radd__ __mul__ __imul__ __rmul__ __sub__ __truediv__ __len__
    add add_ mul mul_ sub div relu relu_ relu6 hardtanh hardtanh_ sigmoid tanh gelu silu hardswish leaky_relu elu
    batch_norm layer_norm group_norm dropout dropout2d softmax log_softmax
    adaptive_avg_pool1d adaptive_avg_pool2d avg_pool1d avg_pool2d max_pool1d max_pool2d max_pool2d_with_indices
    adaptive_max_pool2d flatten view reshape permute transpose contiguous chunk split cat stack squeeze unsqueeze
    size dim numel is_contiguous expand narrow select mean sum pad zeros zeros_like ones ones_like empty
    empty_like full tensor clone detach to type float index_select shape
    _set_grad_enabled
""".split())


def _counted(func, args: tuple, kwargs: dict, out) -> int | None:
    """FLOPs of one call as FlopCounterMode counts them (conv: 2·B·prod(weight)·prod(out spatial); linear:
    2·rows·in·out, bias not counted); None for a function not handled here."""
    from torch.utils.flop_counter import conv_flop_count

    if func is F.conv1d or func is F.conv2d or func is F.conv3d:
        x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
        return conv_flop_count(list(x.shape), list(w.shape), list(out.shape), transposed=False)
    if func is F.linear:
        x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
        return 2 * (x.numel() // x.shape[-1]) * w.shape[0] * w.shape[1]
    return None


class _FlopTally(TorchFunctionMode):
    """Counts convolution and linear FLOPs at the function level (no dispatch mode: on the meta device
    FlopCounterMode runs PyTorch's Python meta kernels, which import TorchDynamo). `unknown`: the first
    function it cannot vouch for, after which its count is not used."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0
        self.unknown: str | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        n = _counted(func, args, kwargs, out)
        if n is not None:
            self.flops += n
        elif getattr(func, "__name__", None) not in _NO_FLOPS and self.unknown is None:
            self.unknown = getattr(func, "__name__", repr(func))
        return out


def _flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of `model(x)`: tallied per function when every function is known, else by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with _FlopTally() as tally:
        model(x)
    if tally.unknown is None:
        return float(tally.flops)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def _measure(model: nn.Module, input_shape: tuple[int, ...]) -> ArchProfile:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_shape, device=device)
    try:
        with torch.no_grad():
            flops = _flops(model, x)
    finally:
        model.train(was_training)
    return ArchProfile(count_parameters(model), flops, feature_shapes(model, input_shape))


@cache
def arch_profile(arch: str, params_json: str, input_shape: tuple[int, ...], num_classes: int) -> ArchProfile:
    """The profile of `arch` built with the JSON `params_json`: measured once per process on the meta device
    (on the CPU for a model the meta device cannot build or run)."""
    try:
        model = meta_model(arch, params_json, input_shape, num_classes)
        with on_meta():
            return _measure(model, input_shape)
    except (NotImplementedError, RuntimeError):  # an operation the meta device lacks
        return _measure(create_model(arch, json.loads(params_json), input_shape, num_classes), input_shape)
