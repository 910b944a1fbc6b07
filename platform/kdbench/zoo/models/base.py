"""What every kdbench model returns, and the registry of architectures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from kdbench.registry import Registry


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


ARCHS: Registry[Arch] = Registry("architecture")


def register_model(name: str, params: type[ArchParams]):
    """Decorator for `build(params, input_shape, num_classes) -> nn.Module` returning ModelOutput."""

    def add(build):
        ARCHS.register(name)(Arch(name, params, build))
        return build

    return add


def create_model(arch: str, params: dict, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    entry = ARCHS.get(arch)
    return entry.build(entry.params(**params), tuple(input_shape), num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
