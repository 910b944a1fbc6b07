"""Training-time augmentation as batched tensor ops, deterministic per (seed, epoch, sample index).

The random numbers come from a counter-based generator (splitmix64 of a key derived from
(seed, epoch), advanced by the sample index), not from a stateful torch.Generator: the view of
sample i in epoch e is then the same whichever batch it lands in, on any device, after a resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import Augment

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15  # splitmix64's increment (2^64 / golden ratio)
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _signed(v: int) -> int:
    """An unsigned 64-bit value as the int64 with the same bits (torch has no uint64 arithmetic)."""
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def mix64_int(z: int) -> int:
    """splitmix64's finaliser on a Python int (the reference the tensor version is tested against)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    # `>>` on int64 is arithmetic; masking off the sign-extended bits makes it logical.
    return (z >> s) & ((1 << (64 - s)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser, elementwise on int64 (multiplication wraps mod 2^64, as intended)."""
    z = (z ^ _shr(z, 30)) * _signed(_M1)
    z = (z ^ _shr(z, 27)) * _signed(_M2)
    return z ^ _shr(z, 31)


def stream_key(*parts: int) -> int:
    """A 64-bit key from a few integers, e.g. (seed, epoch); each part is mixed in turn."""
    key = 0
    for p in parts:
        key = mix64_int(key ^ (p & _MASK64))
    return key


def random_bits(key: int, index: torch.Tensor) -> torch.Tensor:
    """64 random bits per index, (N,) int64: the index-th output of splitmix64 seeded with `key`."""
    return mix64(index.long() * _signed(_GAMMA) + _signed(key + _GAMMA))


def _field(bits: torch.Tensor, shift: int, n: int) -> torch.Tensor:
    # 24 bits per draw, reduced mod n: the modulo bias is below n / 2^24, negligible for n <= 17.
    return (_shr(bits, shift) & 0xFFFFFF) % n


def crop_flip(pad: int = 4, fill: float | Sequence[float] = 0.0, flip: bool = True) -> Augment:
    """Random crop of the padded image back to its size, then a horizontal flip with p = 0.5.

    `fill` is the padding value per channel in the tensor's units: for normalised images pass
    (0 - mean) / std so the border is black, as torchvision's RandomCrop(padding=4) on raw pixels.
    Randomness is a pure function of (seed, epoch, sample index): see the module docstring.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0 (got {pad})")

    def augment(x: torch.Tensor, idx: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
        b, c, h, w = x.shape  # (B, C, H, W)
        bits = random_bits(stream_key(seed, epoch), idx.to(x.device))  # (B,)
        dy, dx = _field(bits, 0, 2 * pad + 1), _field(bits, 24, 2 * pad + 1)  # (B,) offsets into the padding
        padded = x.new_empty(b, c, h + 2 * pad, w + 2 * pad)  # (B, C, H+2p, W+2p)
        padded[:] = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        padded[:, :, pad:pad + h, pad:pad + w] = x
        rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
        cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
        if flip:
            flipped = (_shr(bits, 63) & 1).bool()  # the top bit, unused by the offsets
            cols = torch.where(flipped[:, None], cols.flip(1), cols)  # a flipped crop reads its window backwards
        # One gather along the flattened padded plane: several times faster on CPU than 4-tensor advanced indexing.
        flat = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
        return padded.view(b, c, -1).gather(2, flat).view(b, c, h, w)  # (B, C, H, W)

    return augment
