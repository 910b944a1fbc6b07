"""Video pose models (the `video_pose` task): clips (B, T, C, H, W) in, heatmaps (B, T, J, H/2, W/2) out.

- `pose_cnn`: a per-frame heatmap network applied frame by frame — the teacher (wide) or the student alone
  (narrow). A stride-2 3×3 conv, then 3×3 convs with dilations 1, 2, 4, 8, 8, … (`dilated`) so the receptive
  field covers a person, then a 1×1 conv to J heatmaps.
- `dkd_pose_net`: Dynamic Kernel Distillation's student (Nie et al., ICCV 2019). Frame 1: the pose
  initialiser (a `pose_cnn` body and head, `init_widths`) gives H_1. Every frame: a light feature net
  (`widths`) gives F_t. Frame t ≥ 2: the kernel distillator makes pose kernels from (F_{t-1}, H_{t-1}) and
  H_t = kernels ⊛ F_t (one batched grouped convolution, pose_kernels.py). Tap "kernels": (B, T-1, J, K),
  the kernels of frames 2..T flattened.

FLOPs per frame (kdbench.zoo.models.cost counts one clip's forward; views divide by T): the initialiser runs
on frame 1 only, so a clip costs init + T·light + (T-1)·(distillator + grouped conv) — the initialiser is
amortised over the clip's T frames, exactly as counted. In the paper the initialiser is a separately
pretrained large network; here it is part of the student and trained with it (the `dkd_pose` method also
fits its frame-1 heatmaps to the teacher's), so a trained student runs alone at test time.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from .base import ArchParams, ModelOutput, register_model
from .pose_kernels import KernelDistillator, KernelMode


def frame_body(in_channels: int, widths: list[int], dilated: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1), nn.ReLU(inplace=True)]
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        d = 2 ** min(i, 3) if dilated else 1
        layers += [nn.Conv2d(a, b, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _clip_shape(input_shape: tuple[int, ...], arch: str) -> tuple[int, int]:
    if len(input_shape) != 4:
        raise ValueError(f"{arch} needs clips (T, C, H, W), got shape {tuple(input_shape)}")
    return input_shape[0], input_shape[1]


class PoseCNNParams(ArchParams):
    widths: list[int] = Field(default=[32, 64, 64, 64], min_length=1)
    dilated: bool = True


class PoseCNN(nn.Module):
    def __init__(self, channels: int, joints: int, widths: list[int], dilated: bool) -> None:
        super().__init__()
        self.body = frame_body(channels, widths, dilated)
        self.head = nn.Conv2d(widths[-1], joints, 1)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) frames -> (B, J, H/2, W/2) heatmaps."""
        return self.head(self.body(x))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        b, t = x.shape[:2]
        heat = self.frames(x.flatten(0, 1))
        return ModelOutput(heat.view(b, t, *heat.shape[1:]))


@register_model("pose_cnn", PoseCNNParams)
def pose_cnn(p: PoseCNNParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    _, c = _clip_shape(input_shape, "pose_cnn")
    return PoseCNN(c, num_classes, list(p.widths), p.dilated)


class DKDPoseNetParams(ArchParams):
    init_widths: list[int] = Field(default=[32, 64, 64, 64], min_length=1)  # the pose initialiser (frame 1)
    widths: list[int] = Field(default=[16, 32], min_length=1)  # the light feature net (every frame)
    dilated: bool = True
    kernel_size: int = Field(default=3, ge=1, le=9)  # odd
    kernel_mode: KernelMode = "full"


class DKDPoseNet(nn.Module):
    def __init__(self, channels: int, joints: int, p: DKDPoseNetParams) -> None:
        super().__init__()
        self.initialiser = PoseCNN(channels, joints, list(p.init_widths), p.dilated)
        self.light = frame_body(channels, list(p.widths), p.dilated)
        self.distillator = KernelDistillator(p.widths[-1], joints, p.kernel_size, p.kernel_mode)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        b, t = x.shape[:2]
        feats = self.light(x.flatten(0, 1))
        feats = feats.view(b, t, *feats.shape[1:])  # (B, T, C, h, w)
        heat = [self.initialiser.frames(x[:, 0])]
        kernels = []
        for i in range(1, t):
            k = self.distillator.kernels(feats[:, i - 1], heat[-1])
            kernels.append(k.flatten(2))
            heat.append(self.distillator.apply(feats[:, i], k))
        return ModelOutput(torch.stack(heat, 1), {"kernels": torch.stack(kernels, 1)})


@register_model("dkd_pose_net", DKDPoseNetParams)
def dkd_pose_net(p: DKDPoseNetParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    t, c = _clip_shape(input_shape, "dkd_pose_net")
    if t < 2:
        raise ValueError("dkd_pose_net needs clips of at least 2 frames (frame 1 initialises the kernels)")
    if p.kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {p.kernel_size}")
    return DKDPoseNet(c, num_classes, p)
