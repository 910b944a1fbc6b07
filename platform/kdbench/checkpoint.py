"""Checkpoints: tensors and plain values, hashed at write, verified and loaded weights-only.

File layout: MAGIC (8 bytes) · SHA-256 of the payload (32 bytes) · payload (`torch.save` bytes).
A truncated or altered file fails verification instead of loading garbage, and loading never
unpickles code: `torch.load(weights_only=True)` accepts tensors, dicts, lists and numbers only.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import torch

from kdbench.store import Store

from .errors import CorruptArtifact

MAGIC = b"KDBCKPT1"
_HEADER = len(MAGIC) + 32


def encode(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode(data: bytes, where: str) -> dict[str, Any]:
    if len(data) < _HEADER or not data.startswith(MAGIC):
        raise CorruptArtifact(f"{where} is not a kdbench checkpoint (truncated or foreign file)")
    payload = data[_HEADER:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC):_HEADER]:
        raise CorruptArtifact(f"{where} does not match the hash recorded when it was written")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def save(store: Store, rel: str, state: dict[str, Any]) -> None:
    store.write_bytes(rel, encode(state))


def load(store: Store, rel: str) -> dict[str, Any] | None:
    """The checkpoint at `rel`, None if there is none; CorruptArtifact if it fails verification."""
    data = store.read_bytes(rel)
    return None if data is None else decode(data, store.path(rel))


def is_intact(store: Store, rel: str) -> bool:
    """Whether `rel` exists and its hash matches (reads the file, does not unpickle it)."""
    data = store.read_bytes(rel)
    if data is None or len(data) < _HEADER or not data.startswith(MAGIC):
        return False
    return hashlib.sha256(data[_HEADER:]).digest() == data[len(MAGIC):_HEADER]
