"""Picking feature taps by role, the same way for every architecture.

Models return taps in a fixed order (zoo/models/base.py): `stem`, `stage1..N`, `preact1..N`,
`embedding`. RepDistiller's `feat` list is [stem, stage1, …, stageN, embedding]; its `feat[1:-1]` is
`stages(...)`, `feat[-2]` is `stages(...)[-1]`, `feat[-1]` is `embedding(...)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from .base import Incompatible

T = TypeVar("T")


def stages(taps: Mapping[str, T]) -> list[T]:
    """The stage outputs (after their final activation), first to last."""
    return _numbered(taps, "stage")


def preacts(taps: Mapping[str, T]) -> list[T]:
    """The stage outputs before their final ReLU (RepDistiller's preact=True), first to last."""
    return _numbered(taps, "preact")


def embedding(taps: Mapping[str, T]) -> T:
    """The pooled features fed to the classifier, (B, D)."""
    return taps["embedding"]


def _numbered(taps: Mapping[str, T], prefix: str) -> list[T]:
    out, i = [], 1
    while f"{prefix}{i}" in taps:
        out.append(taps[f"{prefix}{i}"])
        i += 1
    return out


def paired_stage_maps(method: str, student: Mapping[str, tuple], teacher: Mapping[str, tuple]) -> tuple[list, list]:
    """Student and teacher stage shapes paired one to one, each a (C, H, W) map; `Incompatible` otherwise."""
    s, t = stages(student), stages(teacher)
    if len(s) != len(t) or not s:
        raise Incompatible(f"{method} pairs stages one to one: the student has {len(s)}, the teacher {len(t)}")
    if any(len(shape) != 3 for shape in s + t):
        raise Incompatible(f"{method} needs (C, H, W) stage maps, got {s} and {t}")
    return s, t
