"""`paired_scenes`: generated scenes seen in two paired modalities, colour and depth — the offline twin of CRD's
cross-modal transfer (RGB → depth, task `linear_probe`).

Each sample is one scene: a shape of the sample's class (disk, square, cross, ring, diamond, bar, …) at a random
position and size, in front of a tilted background plane. It is rendered twice into one (4, size, size) tensor:

- channels 0–2, colour: a random background colour and a random object colour, one dark and one light (the
  nuisances a colour network must learn to ignore), brighter where the surface is nearer, plus pixel noise;
- channel 3, depth: the background plane's depth (random offset and tilt) and the object's nearer depth (a
  random offset, a bump for round shapes), plus (heavier) sensor noise — no colour at all.

Both channels groups see the same scene, so a sample's two modalities are a positive pair and every other sample
a negative: teacher and student take different `input_channels` ([0, 1, 2] and [3]) of the same batch. Splits:
`train` (the transfer set; its labels are used to train the teacher and the supervised upper bound only),
`probe` (a small labelled split for the linear probe), `val`, `test`. Every value is a deterministic function of
the parameters (a generator seeded by `data_seed`), so every machine sees the same data. Channels are
standardised by fixed constants (colour in [0, 1] → (c − 0.5) / 0.25, depth → (d − 0.5) / 0.25).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from .base import DatasetParams, DataSplits, Split, register_dataset

COLOUR, DEPTH = (0, 1, 2), (3,)  # the channel groups (modalities) of every sample
SHAPES = ("disk", "square", "cross", "ring", "diamond", "bar", "triangle", "frame")


class PairedScenesParams(DatasetParams):
    task: ClassVar[str] = "linear_probe"
    n_train: int = Field(default=512, gt=0)
    n_probe: int = Field(default=128, gt=0)
    n_val: int = Field(default=128, gt=0)
    n_test: int = Field(default=256, gt=0)
    num_classes: int = Field(default=4, ge=2, le=len(SHAPES))
    size: int = Field(default=16, ge=8, le=128)
    noise: float = Field(default=0.05, ge=0.0, le=1.0)  # colour noise, standard deviation (colour in [0, 1])
    depth_noise: float = Field(default=0.2, ge=0.0, le=1.0)  # depth sensor noise, standard deviation (depth in [0, 1])
    data_seed: int = 0

    def describe(self):
        return (4, self.size, self.size), self.num_classes, self.n_train


def shape_masks(cls: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """(N, H, W) boolean: the pixel lies on sample n's shape of class cls[n]; dx, dy (N, H, W) offsets from its
    centre, s (N, 1, 1) its half-size."""
    r, ax, ay = (dx * dx + dy * dy).sqrt(), dx.abs(), dy.abs()
    masks = torch.stack([
        r < s,  # disk
        torch.maximum(ax, ay) < s * 0.85,  # square
        ((ax < s / 3) & (ay < s)) | ((ay < s / 3) & (ax < s)),  # cross
        (r < s) & (r > s * 0.55),  # ring
        ax + ay < s * 1.2,  # diamond
        (ay < s / 3) & (ax < s),  # bar
        (dy < s * 0.8) & (dy > 2 * ax - s),  # triangle (apex up)
        (torch.maximum(ax, ay) < s * 0.9) & (torch.maximum(ax, ay) > s * 0.55),  # frame
    ])  # (S, N, H, W)
    return masks[cls, torch.arange(cls.shape[0])]


def render(p: PairedScenesParams, n: int, g: torch.Generator) -> Split:
    """n scenes: x (n, 4, size, size) = colour (3) and depth (1) of the same scene, y (n,) the shape class."""
    size = p.size
    y = torch.randint(p.num_classes, (n,), generator=g)
    u = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    cx, cy = (0.3 + 0.4 * u(n, 1, 1)) * size, (0.3 + 0.4 * u(n, 1, 1)) * size
    s = (0.2 + 0.12 * u(n, 1, 1)) * size
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    dx, dy = grid.view(1, 1, -1) - cx, grid.view(1, -1, 1) - cy  # (n, 1, W), (n, H, 1)
    dx, dy = dx.expand(n, size, size), dy.expand(n, size, size)
    mask = shape_masks(y, dx, dy, s)
    # Depth in [0, 1] (1: far): a tilted background plane; the object nearer, round ones bulging towards the camera.
    tilt = (u(n, 2, 1, 1) - 0.5) * 0.2 / size  # at most ±0.05 per axis: the background stays ≥ 0.575
    background = (0.75 + 0.15 * (u(n, 1, 1) - 0.5) + tilt[:, 0] * (dx + cx - size / 2)
                  + tilt[:, 1] * (dy + cy - size / 2))
    bump = (1 - (dx * dx + dy * dy) / (s * s)).clamp(min=0) * 0.1 * (y.view(-1, 1, 1) % 2 == 0)
    near = 0.3 + 0.2 * u(n, 1, 1) - bump
    depth = torch.where(mask, near, background)
    # Colour: random background and object colours, shaded by nearness.
    dark = u(n, 1, 1, 1) < 0.5  # which of object and background is the dark one: always a contrast
    low, high = 0.35 * u(n, 3, 1, 1), 0.65 + 0.35 * u(n, 3, 1, 1)
    bg_rgb, fg_rgb = torch.where(dark, low, high), torch.where(dark, high, low)
    shade = (1.3 - depth).unsqueeze(1)  # nearer is brighter
    colour = torch.where(mask.unsqueeze(1), fg_rgb, bg_rgb) * shade
    colour = colour + p.noise * torch.randn(n, 3, size, size, generator=g)
    depth = depth.unsqueeze(1) + p.depth_noise * torch.randn(n, 1, size, size, generator=g)
    x = torch.cat([(colour - 0.5) / 0.25, (depth - 0.5) / 0.25], dim=1)
    return Split(x.float(), y)


@register_dataset("paired_scenes", PairedScenesParams)
def paired_scenes(p: PairedScenesParams) -> DataSplits:
    """(4, size, size): colour channels 0–2 and depth channel 3 of the same generated scene; task linear_probe."""
    g = torch.Generator().manual_seed(p.data_seed)
    train, probe, val, test = (render(p, n, g) for n in (p.n_train, p.n_probe, p.n_val, p.n_test))
    return DataSplits(train, val, test, p.num_classes, probe=probe)
