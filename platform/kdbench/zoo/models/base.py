"""What every kdbench model returns, and the registry of architectures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from kdbench.registry import Registry, RegistryError


@dataclass
class ModelOutput:
    """Logits and named feature taps (e.g. 'embedding': the penultimate features, (B, D))."""

    logits: torch.Tensor  # (B, num_classes)
    features: dict[str, torch.Tensor] = field(default_factory=dict)


class ArchParams(BaseModel):
    """Base of every architecture's hyperparameters: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no .inf or .nan


@dataclass(frozen=True)
class Arch:
    name: str
    params: type[ArchParams]
    build: Callable[[ArchParams, tuple[int, ...], int], nn.Module]


class ArchRegistry(Registry[Arch]):
    """The registered architectures, and any `timm/<name>` or `torchvision/<name>` their libraries know
    (zoo/models/external.py: resolved on first use, the library imported only then)."""

    def get(self, name: str) -> Arch:
        if name in self._entries:
            return self._entries[name]
        from . import external

        if external.is_family(name):
            problem = external.family_problem(name)
            if problem:
                raise RegistryError(problem)
            return external.family_arch(name)
        return super().get(name)

    def __contains__(self, name: object) -> bool:
        if name in self._entries:
            return True
        from . import external

        return isinstance(name, str) and external.is_family(name) and external.family_problem(name) is None

    def unknown(self, name: str) -> str:
        from . import external

        if external.is_family(name):
            problem = external.family_problem(name)
            if problem:
                return problem
        return super().unknown(name) + ", or timm/<name>, torchvision/<name>"


ARCHS: Registry[Arch] = ArchRegistry("architecture")


def register_model(name: str, params: type[ArchParams]):
    """Decorator for `build(params, input_shape, num_classes) -> nn.Module` returning ModelOutput."""

    def add(build):
        ARCHS.register(name)(Arch(name, params, build))
        return build

    return add


# A model parameter every architecture takes (not its own Params): the input channels the model sees, e.g. the
# depth channel of an RGB-D dataset. Absent: every channel. See `create_model`.
INPUT_CHANNELS = "input_channels"


def create_model(arch: str, params: dict, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build `arch`. `params[INPUT_CHANNELS]` (a list of channel indices, optional) makes the model see only those
    channels of its input (dimension 1): it is built for the narrower shape and a forward pre-hook selects them,
    so teacher and student can see different modalities of one batch with no branch anywhere, and the
    state-dict keys stay the architecture's own (weights files load as for the plain model)."""
    entry = ARCHS.get(arch)
    params = dict(params)
    channels = params.pop(INPUT_CHANNELS, None)
    shape = tuple(input_shape)
    if channels is not None:
        shape = (len(channels), *shape[1:])
        view = InputChannels(channels, tuple(input_shape))
    model = entry.build(entry.params(**params), shape, num_classes)
    if channels is not None:
        model.register_forward_pre_hook(view)
    return model


class InputChannels:
    """Forward pre-hook: the model's input restricted to `channels` along dimension 1 (picklable, copyable)."""

    def __init__(self, channels, input_shape: tuple[int, ...]) -> None:
        channels = tuple(int(c) for c in channels)
        if not channels or len(set(channels)) != len(channels):
            raise ValueError(f"input_channels must list distinct channels, got {list(channels)}")
        if not input_shape or any(not 0 <= c < input_shape[0] for c in channels):
            raise ValueError(f"input_channels {list(channels)} do not fit an input of shape {input_shape} "
                             f"(channels 0..{input_shape[0] - 1 if input_shape else -1})")
        self.channels = channels

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        x, *rest = args
        index = torch.tensor(self.channels, device=x.device)
        return (x.index_select(1, index), *rest)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
