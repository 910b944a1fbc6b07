"""The feature-tap contract of the CIFAR architectures, the pieces they share, and the shape probe.

Every CIFAR model's `forward(x)` returns `ModelOutput(logits, features)` with `features` in this order:
"stem", "stage1".."stageN", "preact1".."preactN", "embedding" — RepDistiller's `feat` list
(`[f0, f1, ..., fN, pooled]`; `preact=True` swaps in the stage outputs before their final ReLU) under names.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ModelOutput


def tap_features(stem: torch.Tensor, stages: list[torch.Tensor], preacts: list[torch.Tensor],
                 embedding: torch.Tensor) -> dict[str, torch.Tensor]:
    """Name the taps in the contract's order; the tensors are the forward's own intermediates (no extra compute)."""
    if len(stages) != len(preacts):
        raise ValueError(f"{len(stages)} stage taps but {len(preacts)} pre-activation taps")
    feats = {"stem": stem}
    feats.update({f"stage{i}": t for i, t in enumerate(stages, 1)})
    feats.update({f"preact{i}": t for i, t in enumerate(preacts, 1)})
    feats["embedding"] = embedding  # (B, D), what the classifier reads
    return feats


class BlockStage(nn.Module):
    """Blocks that each return (out, preact); the stage returns its last block's pair."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        pre = x
        for block in self.blocks:
            x, pre = block(x)
        return x, pre


class StagedNet(nn.Module):
    """stem → stages (each returns (out, preact)) → neck (last map → (B, D)) → classifier, tapping as it goes."""

    def __init__(self, stem: nn.Module, stages: list[nn.Module], neck: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.neck = neck
        self.classifier = classifier

    def forward(self, x) -> ModelOutput:
        x = self.stem(x)  # (B, C0, H0, W0)
        stem, outs, pres = x, [], []
        for stage in self.stages:
            x, pre = stage(x)  # both (B, Ci, Hi, Wi)
            outs.append(x)
            pres.append(pre)
        emb = self.neck(x)  # (B, D)
        return ModelOutput(self.classifier(emb), tap_features(stem, outs, pres, emb))


def pool_flatten() -> nn.Module:
    """Global average pooling to (B, C). RepDistiller pools with a fixed kernel (8, 4 or 2) sized for 32×32
    inputs, which equals global pooling there; the adaptive form also serves other input sizes."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def init_convs(model: nn.Module) -> None:
    """RepDistiller's init: He-normal convs with fan_out (its N(0, sqrt(2 / (k·k·C_out)))), zero conv biases,
    BN weight 1 / bias 0. Linear layers are left to each architecture."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def image_channels(input_shape: tuple[int, ...], arch: str) -> int:
    """The input's channel count, after checking that it is an image (C, H, W)."""
    if len(input_shape) != 3:
        raise ValueError(f"{arch} needs image inputs (C, H, W), got shape {tuple(input_shape)}")
    return input_shape[0]


def feature_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Each feature's shape without the batch dimension, from one eval-mode forward on zeros.

    Batch 2 so that nothing batch-dependent is probed in a degenerate case; the model's train/eval mode is
    restored afterwards.
    """
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape, device=device))
    finally:
        model.train(was_training)
    return {name: tuple(t.shape[1:]) for name, t in out.features.items()}
