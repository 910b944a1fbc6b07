"""ImageNet ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1).

Module names and parameter shapes are torchvision's (`torchvision/models/resnet.py`), so a torchvision
`state_dict` loads strictly: conv1/bn1/relu/maxpool, layer1..layer4 of BasicBlock (18, 34) or Bottleneck
(50, 101, 152) blocks, avgpool, fc. Bottlenecks stride on the 3×3 conv (torchvision's "v1.5"); shortcuts are
identity or a strided 1×1 conv + BN (`downsample.0/.1`, option B). Taps: stem after the max-pool, each layer's
output, each layer's last block before its final ReLU, and the pooled embedding (B, 512 or 2048).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import ArchParams, ModelOutput, register_model
from .features import image_channels, init_convs, tap_features


class ImageNetResNetParams(ArchParams):
    """zero_init_residual: zero each block's last BN weight so blocks start as identities (Goyal et al. 2017)."""

    zero_init_residual: bool = False


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, planes, stride), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)  # only inside the branch: the block's output ReLU must keep `pre`
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H/s, W/s)
        pre = self.bn2(self.conv2(out)) + identity
        return F.relu(pre), pre


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv1x1(c_in, planes), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)  # v1.5: stride here
        self.conv3, self.bn3 = conv1x1(planes, planes * 4), nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, planes, H/s, W/s)
        pre = self.bn3(self.conv3(out)) + identity  # (B, 4·planes, H/s, W/s)
        return F.relu(pre), pre


class ResLayer(nn.Sequential):
    """torchvision's `layerN` (children named 0, 1, …) whose blocks pass (out, preact); returns the last pair."""

    def forward(self, x):
        pre = x
        for block in self:
            x, pre = block(x)
        return x, pre


def res_layer(block, c_in: int, planes: int, n: int, stride: int) -> ResLayer:
    c_out = planes * block.expansion
    downsample = None
    if stride != 1 or c_in != c_out:
        downsample = nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
    return ResLayer(block(c_in, planes, stride, downsample), *(block(c_out, planes, 1, None) for _ in range(n - 1)))


class ImageNetResNet(nn.Module):
    def __init__(self, block, depths: tuple[int, int, int, int], c_in: int = 3, num_classes: int = 1000,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        # flat stem attributes, not a submodule: torchvision's key names are conv1.*, bn1.*
        self.conv1, self.bn1 = nn.Conv2d(c_in, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, c = (64, 128, 256, 512), 64
        for i, (planes, n) in enumerate(zip(widths, depths, strict=True), 1):
            setattr(self, f"layer{i}", res_layer(block, c, planes, n, 1 if i == 1 else 2))
            c = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)  # torchvision keeps Linear's default init
        init_convs(self)  # torchvision's: He-normal fan_out convs, BN weight 1 / bias 0
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    nn.init.zeros_(m.last_bn().weight)

    def forward(self, x) -> ModelOutput:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        stem, outs, pres = x, [], []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x, pre = layer(x)  # both (B, Ci, Hi, Wi)
            outs.append(x)
            pres.append(pre)
        emb = torch.flatten(self.avgpool(x), 1)  # (B, 512 or 2048)
        return ModelOutput(self.fc(emb), tap_features(stem, outs, pres, emb))


def few(keys: list[str], n: int = 5) -> str:
    return f"{keys[:n]}{f' (+{len(keys) - n} more)' if len(keys) > n else ''}"


def load_torchvision_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a torchvision ResNet checkpoint (a plain state_dict file) strictly; weights only, no pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no torchvision checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict")
    ours = model.state_dict()
    missing, unexpected = sorted(set(ours) - set(state)), sorted(set(state) - set(ours))
    if missing or unexpected:
        raise ValueError(f"{path} does not match the model: missing keys {few(missing)}, "
                         f"unexpected keys {few(unexpected)}")
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(ours[k].shape)]
    if bad:
        raise ValueError(f"{path}: shapes differ from the model's at {few(bad)}")
    model.load_state_dict(state, strict=True)
    return model


# name -> (block, blocks per layer); He et al. Table 1, torchvision's resnet18 ... resnet152
SPECS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}


def _register(name: str, block, depths: tuple[int, int, int, int]) -> None:
    @register_model(name, ImageNetResNetParams)
    def build(p: ImageNetResNetParams, input_shape, num_classes) -> ImageNetResNet:
        return ImageNetResNet(block, depths, image_channels(input_shape, name), num_classes, p.zero_init_residual)


for _name, (_block, _depths) in SPECS.items():
    _register(_name, _block, _depths)
