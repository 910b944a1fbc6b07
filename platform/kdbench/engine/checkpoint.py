"""Checkpoints: weights and training state as tensors and plain values, loaded weights-only.

Never unpickles code: `torch.load(weights_only=True)` accepts tensors, dicts, lists and numbers.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from kdbench.store import Store


def save(store: Store, rel: str, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    store.write_bytes(rel, buf.getvalue())


def load(store: Store, rel: str) -> dict[str, Any] | None:
    data = store.read_bytes(rel)
    if data is None:
        return None
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
