"""Dynamic pose kernels (Nie et al., "Dynamic Kernel Distillation for Efficient Pose Estimation in Videos",
ICCV 2019): the batched grouped convolution that applies per-sample kernels, and the light pose kernel
distillator that makes them from the previous frame's features and heatmaps.

The grouped convolution: B samples' features (B, C, h, w) are laid side by side as one (1, B·C, h, w) input,
their kernels (B, J, C, k, k) as (B·J, C, k, k) weights, and one `conv2d(groups=B)` convolves sample b's
features with sample b's J kernels only — one call for the batch, equal to a loop over samples
(tests/test_video_pose.py). The depthwise form convolves each of J maps with its own k×k kernel
(`groups=B·J`).

The distillator (this repository's reading; the paper's exact layers were not verified here): an embedding
g = conv([F_{t-1}; H_{t-1}]) of the previous frame's features F and heatmaps H; joint j's kernel is the
heatmap-weighted mean of g's k×k patches, weights softmax(β·H_{t-1,j}) over positions — a template of what
the joint looked like, taken where it was — added to a learned per-joint base kernel (without the base, the
twin's frames 2..T stayed near 33% PCK; with it, above 85%). Modes (`kernel_mode`): "full" — J kernels of
C×k×k applied to the current features; "spatial" — features and g projected to J maps, one k×k kernel per
joint applied depthwise.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

KernelMode = Literal["full", "spatial"]


def dynamic_conv(features: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) features, (B, J, C, k, k) per-sample kernels -> (B, J, h, w) ('same' padding, k odd)."""
    b, c, h, w = features.shape
    j, k = kernels.shape[1], kernels.shape[-1]
    out = F.conv2d(features.reshape(1, b * c, h, w), kernels.reshape(b * j, c, k, k), padding=k // 2, groups=b)
    return out.view(b, j, h, w)


def dynamic_depthwise_conv(maps: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """(B, J, h, w) maps, (B, J, k, k) per-sample per-map kernels -> (B, J, h, w) ('same' padding, k odd)."""
    b, j, h, w = maps.shape
    k = kernels.shape[-1]
    out = F.conv2d(maps.reshape(1, b * j, h, w), kernels.reshape(b * j, 1, k, k), padding=k // 2, groups=b * j)
    return out.view(b, j, h, w)


def weighted_patches(g: torch.Tensor, heatmaps: torch.Tensor, beta: torch.Tensor, k: int) -> torch.Tensor:
    """(B, D, h, w) maps, (B, J, h, w) heatmaps -> (B, J, D·k·k): per joint, the softmax(β·H_j)-weighted mean
    of g's k×k patches (zero-padded at the border)."""
    patches = F.unfold(g, k, padding=k // 2)  # (B, D·k·k, h·w)
    weights = torch.softmax(beta * heatmaps.flatten(2), -1)  # (B, J, h·w)
    return weights @ patches.transpose(1, 2)


class KernelDistillator(nn.Module):
    """Pose kernels from (F_{t-1}, H_{t-1}); `apply` turns them and F_t into the heatmaps H_t.

    A kernel is a learned per-joint base plus the joint's template from the previous frame (the heatmap-weighted
    patches of g = embed([F_{t-1}; H_{t-1}])): the base says what a joint looks like in general, the template
    what it looked like a frame ago and where."""

    def __init__(self, channels: int, joints: int, kernel_size: int = 3, mode: KernelMode = "full") -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.k, self.mode, self.joints = kernel_size, mode, joints
        out = channels if mode == "full" else joints
        self.embed = nn.Sequential(nn.Conv2d(channels + joints, channels, 1), nn.ReLU(inplace=True),
                                   nn.Conv2d(channels, out, 3, padding=1))
        self.project = nn.Conv2d(channels, joints, 1) if mode == "spatial" else nn.Identity()
        fan_in = out // joints if mode == "spatial" else channels
        shape = (joints, channels, kernel_size, kernel_size) if mode == "full" else (joints, kernel_size, kernel_size)
        self.base = nn.Parameter(torch.randn(shape) / (fan_in * kernel_size ** 2) ** 0.5)
        self.beta = nn.Parameter(torch.tensor(10.0))  # the softmax's sharpness over the previous heatmap
        self.bias = nn.Parameter(torch.zeros(joints))

    def kernels(self, features: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w), (B, J, h, w) of frame t-1 -> (B, J, C, k, k) ("full") or (B, J, k, k) ("spatial")."""
        g = self.embed(torch.cat([features, heatmaps], 1))
        b, k = g.shape[0], self.k
        if self.mode == "full":
            return self.base + weighted_patches(g, heatmaps, self.beta, k).view(b, self.joints, g.shape[1], k, k)
        patches = F.unfold(g, k, padding=k // 2).view(b, self.joints, k * k, -1)  # joint j: its own map's patches
        weights = torch.softmax(self.beta * heatmaps.flatten(2), -1)  # (B, J, h·w)
        return self.base + (patches * weights[:, :, None]).sum(-1).view(b, self.joints, k, k)

    def apply(self, features: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """Frame t's heatmaps (B, J, h, w) from its features (B, C, h, w) and the kernels of frame t-1."""
        if self.mode == "full":
            response = dynamic_conv(features, kernels)
        else:
            response = dynamic_depthwise_conv(self.project(features), kernels)
        return response + self.bias[:, None, None]
