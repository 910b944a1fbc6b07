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
import math
from contextlib import contextmanager, nullcontext
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
            else x.new_empty(x.shape)
    if func is F.linear:
        w = args[1] if len(args) > 1 else kwargs["weight"]
        return x.new_empty((*x.shape[:-1], w.shape[0]))
    if func in _CONVS:
        return _conv(x, *args[1:], **kwargs)
    if func is F.max_pool2d:
        return _max_pool2d(x, *args[1:], **kwargs)
    if func is F.avg_pool2d:
        return _avg_pool2d(x, *args[1:], **kwargs)
    if func in _ELEMENTWISE and len(args) == 2 and not kwargs:  # tensor ∘ tensor (broadcast) or tensor ∘ number
        other = args[1]
        if isinstance(other, torch.Tensor):
            if not other.is_meta:
                return None
            shape = _broadcast(tuple(x.shape), tuple(other.shape))
            if shape is None:
                return None
        elif isinstance(other, int | float) and not isinstance(other, bool):
            shape = x.shape
        else:
            return None
        return torch.empty(shape, dtype=torch.result_type(x, other), device="meta")
    if func is F.adaptive_avg_pool2d and x.dim() in (3, 4):
        size = args[1] if len(args) > 1 else kwargs["output_size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2:
            return None
        out = (n if n is not None else d for n, d in zip(size, x.shape[-2:], strict=True))
        return x.new_empty((*x.shape[:-2], *out))
    return None


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """NumPy broadcasting of two shapes (torch.broadcast_shapes imports sympy); None when they do not broadcast."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    if any(i != j and 1 not in (i, j) for i, j in zip(a, b, strict=True)):
        return None
    return tuple(j if i == 1 else i for i, j in zip(a, b, strict=True))


_CONVS = (F.conv1d, F.conv2d, F.conv3d)


def _conv(x: torch.Tensor, weight: torch.Tensor, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A convolution's meta output from shapes: out = ⌊(in + 2p − d·(k − 1) − 1) / s⌋ + 1 per spatial dim (the
    formula of torch.nn.Conv2d's docs); None for string padding or anything that does not fit (torch then says
    what is wrong)."""
    n = weight.dim() - 2
    if isinstance(padding, str) or x.dim() != n + 2 or x.shape[1] != weight.shape[1] * groups:
        return None

    def per_dim(v) -> tuple[int, ...]:
        return (v,) * n if isinstance(v, int) else tuple(v)

    s, p, d = per_dim(stride), per_dim(padding), per_dim(dilation)
    if not len(s) == len(p) == len(d) == n:
        return None
    out = [(i + 2 * pi - di * (k - 1) - 1) // si + 1
           for i, k, si, pi, di in zip(x.shape[2:], weight.shape[2:], s, p, d, strict=True)]
    if min(out) < 1:
        return None
    return torch.empty((x.shape[0], weight.shape[0], *out), dtype=torch.result_type(x, weight), device="meta")


def _max_pool2d(x: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                return_indices=False):
    """Max pooling's meta output (F.max_pool2d's signature; floor mode, no dilation) by the convolution formula;
    None otherwise (the call then runs as usual)."""
    def pair(v) -> tuple[int, ...]:
        return (v, v) if isinstance(v, int) else tuple(v)

    if ceil_mode or return_indices or pair(dilation) != (1, 1) or x.dim() not in (3, 4):
        return None
    k = pair(kernel_size)
    st, p = (k if stride is None or len(pair(stride)) == 0 else pair(stride)), pair(padding)
    if not len(k) == len(st) == len(p) == 2:
        return None
    out = [(i + 2 * pi - ki) // si + 1 for i, ki, si, pi in zip(x.shape[-2:], k, st, p, strict=True)]
    return x.new_empty((*x.shape[:-2], *out)) if min(out) >= 1 else None


def _avg_pool2d(x: torch.Tensor, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    """Average pooling's meta output (F.avg_pool2d's signature; floor mode)."""
    return _max_pool2d(x, kernel_size, stride, padding, 1, ceil_mode)


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
    - convolutions, batch norm, ReLU, linear layers, + − ×, concatenation and max/average/adaptive-average
      pooling are computed from shapes (`_shortcut`; anything unusual, e.g. string padding or ceil mode, runs as
      usual): their meta kernels are Python reference implementations, most of a meta forward's time, the first
      of them imports TorchDynamo (about a second) and a convolution's shape check imports sympy.
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
# they add nothing. Any function outside this set that `_counted` does not handle sends the count to
# FlopCounterMode.
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
    """FLOPs of one call by FlopCounterMode's formulas (torch/utils/flop_counter.py, not imported: it pulls in
    triton): a convolution 2·B·C_out·C_in/groups·prod(kernel)·prod(out spatial), a linear layer 2·rows·in·out,
    biases not counted; None for a function not handled here."""
    if func in _CONVS:
        x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
        return 2 * x.shape[0] * math.prod(w.shape) * math.prod(out.shape[2:])
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
    """FLOPs of `model(x)`: tallied per function when every function is known (on meta tensors with the shape
    shortcuts), else by FlopCounterMode on the plain device (the shortcuts would hide operations from it)."""
    meta = x.is_meta
    with on_meta() if meta else nullcontext(), _FlopTally() as tally:
        model(x)
    if tally.unknown is None:
        return float(tally.flops)
    from torch.utils.flop_counter import FlopCounterMode  # imports triton: only when needed

    with torch.device("meta") if meta else nullcontext(), FlopCounterMode(display=False) as counter:
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
    with on_meta() if x.is_meta else nullcontext():
        features = feature_shapes(model, input_shape)
    return ArchProfile(count_parameters(model), flops, features)


@cache
def arch_profile(arch: str, params_json: str, input_shape: tuple[int, ...], num_classes: int) -> ArchProfile:
    """The profile of `arch` built with the JSON `params_json`: measured once per process on the meta device
    (on the CPU for a model the meta device cannot build or run)."""
    try:
        return _measure(meta_model(arch, params_json, input_shape, num_classes), input_shape)
    except (NotImplementedError, RuntimeError):  # an operation the meta device lacks
        return _measure(create_model(arch, json.loads(params_json), input_shape, num_classes), input_shape)
