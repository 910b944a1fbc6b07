"""Generated stick-figure videos (the `video_pose` task's offline twin of Penn Action): 13 joints in Penn
Action's order (pose_targets.PENN_JOINTS), articulated motion, occlusion, bounding boxes.

Each clip: a figure facing the viewer (its left side on the image's right) drifts across a noisy background
at a constant velocity; each limb angle swings sinusoidally (its own amplitude and phase, one angular speed
per clip). Left limbs are drawn red, right limbs blue, head and trunk green, so left and right can be told
apart. With probability `occlusion` a clip has a grey rectangle drifting over it: the joints it covers are
invisible in that frame (visibility 0), as are joints outside the frame. The bounding box is the joints'
extent (all joints, visible or not) widened by the head's radius, clipped to the frame. Everything is a
deterministic function of the parameters (torch's generator seeded by `data_seed`).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field

from .base import DatasetParams, DataSplits, Split, register_dataset
from .pose_targets import pack

# Limbs: (from, to, colour) over PENN_JOINTS indices; -1 is the shoulders' midpoint, -2 the hips'.
RED, BLUE, GREEN = (1.0, 0.2, 0.2), (0.2, 0.4, 1.0), (0.2, 1.0, 0.3)
LIMBS = ((1, 3, RED), (3, 5, RED), (2, 4, BLUE), (4, 6, BLUE), (7, 9, RED), (9, 11, RED), (8, 10, BLUE),
         (10, 12, BLUE), (1, 2, GREEN), (7, 8, GREEN), (-1, -2, GREEN), (0, -1, GREEN))
# Limb angles from straight down (radians): upper arm, forearm (relative), thigh, shin (relative); left, right.
BASE = torch.tensor([0.5, 0.3, 0.15, -0.2])
SWING = torch.tensor([0.9, 0.7, 0.5, 0.6])


class StickFiguresParams(DatasetParams):
    task: ClassVar[str] = "video_pose"
    n_train: int = Field(default=256, gt=0)
    n_val: int = Field(default=64, gt=0)
    n_test: int = Field(default=128, gt=0)
    frames: int = Field(default=4, ge=1, le=64)
    size: int = Field(default=32, ge=16, le=256)
    occlusion: float = Field(default=0.3, ge=0.0, le=1.0)  # the probability that a clip has an occluder
    data_seed: int = 0

    def describe(self):
        return (self.frames, 3, self.size, self.size), 13, self.n_train


def _u(g: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=g)


def skeletons(n: int, frames: int, g: torch.Generator) -> torch.Tensor:
    """(n, frames, 13, 2) joints, normalised frame coordinates, in Penn Action's order."""
    s = _u(g, n, 0.26, 0.4, 1)  # the figure's size: head to ankles ≈ 1.4 s
    start, vel = _u(g, n, 0.25, 0.75, 2), _u(g, n, -0.04, 0.04, 2)
    speed, phase = _u(g, n, 0.4, 0.9, 1), _u(g, n, 0, 2 * math.pi, 2, 4)
    t = torch.arange(frames, dtype=torch.float32)
    hip_mid = start[:, None] + vel[:, None] * t[None, :, None]  # (n, T, 2)
    # (n, T, side, 4) angles: left limbs swing with +sin, right ones in anti-phase
    wave = torch.sin(speed[:, :, None, None] * t[None, :, None, None] + phase[:, None])  # (n, T, 2, 4)
    side = torch.tensor([1.0, -1.0])[None, None, :, None]
    ang = BASE + SWING * wave
    ang = torch.stack([ang[..., 0], ang[..., 0] + ang[..., 1], ang[..., 2] * 0.6 + 0.1,
                       ang[..., 2] * 0.6 + 0.1 + ang[..., 3]], -1) * side  # absolute angles, mirrored per side

    def along(a: torch.Tensor, length: torch.Tensor) -> torch.Tensor:  # a vector of `length` at angle a
        return torch.stack([torch.sin(a), torch.cos(a)], -1) * length[:, None, None]

    x_dir = torch.tensor([1.0, 0.0])
    sc = s[:, None]  # (n, 1, 1) against (n, T, 2)
    neck = hip_mid - torch.tensor([0.0, 0.5]) * sc
    head = neck - torch.tensor([0.0, 0.22]) * sc
    joints = [head]
    sho = {k: neck + sign * 0.18 * x_dir * sc for k, sign in (("l", 1.0), ("r", -1.0))}
    hip = {k: hip_mid + sign * 0.12 * x_dir * sc for k, sign in (("l", 1.0), ("r", -1.0))}
    elb = {k: sho[k] + along(ang[:, :, i, 0], 0.28 * s[:, 0]) for i, k in enumerate("lr")}
    wri = {k: elb[k] + along(ang[:, :, i, 1], 0.25 * s[:, 0]) for i, k in enumerate("lr")}
    kne = {k: hip[k] + along(ang[:, :, i, 2], 0.35 * s[:, 0]) for i, k in enumerate("lr")}
    ank = {k: kne[k] + along(ang[:, :, i, 3], 0.33 * s[:, 0]) for i, k in enumerate("lr")}
    for part in (sho, elb, wri, hip, kne, ank):
        joints += [part["l"], part["r"]]
    return torch.stack(joints, 2)


def _segment_distance(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(P, 2) points, (M, 2) segment ends -> (M, P) distances to the segments."""
    ab = b - a
    t = (((p[None] - a[:, None]) * ab[:, None]).sum(-1) / ab.pow(2).sum(-1).clamp_min(1e-9)[:, None]).clamp(0, 1)
    return (p[None] - a[:, None] - t[..., None] * ab[:, None]).norm(dim=-1)


def render(joints: torch.Tensor, size: int, g: torch.Generator, occluders: torch.Tensor) -> torch.Tensor:
    """(M, 13, 2) joints and (M, 4) occluder boxes (zero area: none) -> (M, 3, size, size) frames in [0, 1]."""
    m = joints.shape[0]
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    p = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).view(-1, 2)  # (P, 2) x, y
    img = 0.25 + 0.1 * torch.rand(m, 3, size * size, generator=g)
    ends = {-1: joints[:, 1:3].mean(1), -2: joints[:, 7:9].mean(1)}
    width = 0.9 / size
    for a, b, colour in LIMBS:
        pa, pb = ends.get(a, joints[:, a]), ends.get(b, joints[:, b])
        d = _segment_distance(p, pa, pb)  # (M, P)
        ink = torch.sigmoid((width - d) * size * 3)[:, None]
        img = img * (1 - ink) + torch.tensor(colour)[None, :, None] * ink
    head = (p[None] - joints[:, None, 0]).norm(dim=-1)
    ink = torch.sigmoid((1.8 / size - head) * size * 3)[:, None]
    img = img * (1 - ink) + torch.tensor(GREEN)[None, :, None] * ink
    inside = _inside(p[None], occluders[:, None])[:, None]  # (M, 1, P)
    img = torch.where(inside, torch.full_like(img, 0.55), img)
    return img.view(m, 3, size, size)


def _inside(p: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    return (p[..., 0] >= box[..., 0]) & (p[..., 0] <= box[..., 2]) & (p[..., 1] >= box[..., 1]) & \
        (p[..., 1] <= box[..., 3])


def stick_clips(n: int, frames: int, size: int, occlusion: float, g: torch.Generator) -> Split:
    joints = skeletons(n, frames, g)  # (n, T, 13, 2)
    occluded = torch.rand(n, generator=g) < occlusion
    centre = _u(g, n, 0.3, 0.7, 2)[:, None] + _u(g, n, -0.04, 0.04, 2)[:, None] * torch.arange(frames)[None, :, None]
    half = _u(g, n, 0.08, 0.15, 2)[:, None].expand(n, frames, 2) * occluded[:, None, None]
    boxes = torch.cat([centre - half, centre + half], -1)  # (n, T, 4); zero area for clips without an occluder
    x = render(joints.flatten(0, 1), size, g, boxes.flatten(0, 1)).view(n, frames, 3, size, size)
    in_frame = ((joints >= 0) & (joints <= 1)).all(-1)
    covered = _inside(joints, boxes[:, :, None]) & occluded[:, None, None]
    visible = (in_frame & ~covered).float()
    margin = 1.8 / size
    bbox = torch.cat([joints.amin(2) - margin, joints.amax(2) + margin], -1).clamp(0, 1)
    return Split(x, pack(joints, visible, bbox))


@register_dataset("stick_figures", StickFiguresParams)
def stick_figures(p: StickFiguresParams) -> DataSplits:
    g = torch.Generator().manual_seed(p.data_seed)
    splits = [stick_clips(k, p.frames, p.size, p.occlusion, g) for k in (p.n_train, p.n_val, p.n_test)]
    return DataSplits(*splits, 13)
