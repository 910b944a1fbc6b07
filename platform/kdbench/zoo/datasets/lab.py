"""`cifar10_lab`, `cifar100_lab`: CIFAR from its official files, in CIE L*a*b* — CRD's colour-channel cross-modal
transfer (luminance L → chrominance ab), task `linear_probe`.

Every image is converted from sRGB to L*a*b* (D65 white, the standard formulas in `srgb_to_lab`); channel 0 is
L*, channels 1–2 are a*, b*: a teacher takes `input_channels: [0]`, a student `[1, 2]`. Channels are scaled by
fixed constants: (L* − 50) / 50, a* / 50, b* / 50 (about [−1, 1], so no statistic of the data enters).

Splits, all from the official files: `val_size` training images validate (the same stratified, fixed pick as
`cifar10`/`cifar100`), `probe_size` further training images, stratified and fixed, form the labelled probe split
on which the linear probe is fitted; the remaining training images are the transfer set (`train`; its labels
train the teacher and the supervised upper bound only); the official test set tests. Augmentation: CIFAR's
random crop (padding 4, black border: L* = a* = b* = 0) and horizontal flip.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from . import files
from .augment import crop_flip
from .base import DataSplits, Split, register_dataset
from .vision import _SPLIT_SALT, VisionParams, stratified_pick

_PROBE_SALT = 0xB0BE  # its own key: the probe split is not correlated with the validation split
LAB_SHIFT, LAB_SCALE = (50.0, 0.0, 0.0), 50.0
L_CHANNELS, AB_CHANNELS = (0,), (1, 2)
_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],  # linear sRGB → CIE XYZ (D65)
                 [0.2126729, 0.7151522, 0.0721750],
                 [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])  # D65 reference white


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) sRGB in [0, 1] → (N, 3, H, W) L* in [0, 100], a*, b* (CIE 1976, D65)."""
    rgb = np.asarray(rgb, np.float64)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.einsum("ij,njhw->nihw", _XYZ, linear) / _WHITE.reshape(1, 3, 1, 1)
    delta = 6 / 29
    f = np.where(xyz > delta ** 3, np.cbrt(xyz), xyz / (3 * delta ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def _lab_tensor(x: np.ndarray, chunk: int = 5000) -> torch.Tensor:
    """(N, 3, 32, 32) uint8 sRGB → float32 L*a*b*, scaled (module docstring); converted in chunks (float64 inside)."""
    out = torch.empty(x.shape, dtype=torch.float32)
    shift = np.array(LAB_SHIFT).reshape(1, 3, 1, 1)
    for start in range(0, len(x), chunk):
        lab = srgb_to_lab(x[start:start + chunk] / 255.0)
        out[start:start + chunk] = torch.from_numpy(((lab - shift) / LAB_SCALE).astype(np.float32))
    return out


class Cifar10LabParams(VisionParams):
    task: ClassVar[str] = "linear_probe"
    probe_size: int = Field(default=5000, ge=1)  # labelled images for the linear probe, out of the training set
    augment: bool = True
    title, url = "CIFAR-10", files.CIFAR_URL
    layout: ClassVar[files.CifarLayout] = files.CIFAR10

    def describe(self):
        classes = 100 if self.layout is files.CIFAR100 else 10
        n = round((50000 - self.val_size - self.probe_size) * self.train_fraction)
        return (3, 32, 32), classes, n

    @classmethod
    def find_files(cls, root: Path) -> None:
        files.find_cifar(root, cls.layout)


class Cifar100LabParams(Cifar10LabParams):
    title, layout = "CIFAR-100", files.CIFAR100


def lab_splits(p: Cifar10LabParams, num_classes: int) -> DataSplits:
    (x, y), (x_test, y_test) = files.read_cifar(p.root, p.layout, True), files.read_cifar(p.root, p.layout, False)
    if p.val_size + p.probe_size >= len(y):
        raise ValueError(f"val_size + probe_size ({p.val_size} + {p.probe_size}) must be smaller than the training "
                         f"set ({len(y)} images)")
    val = stratified_pick(y, p.val_size, _SPLIT_SALT)
    rest = np.setdiff1d(np.arange(len(y)), val)
    probe = rest[stratified_pick(y[rest], p.probe_size, _PROBE_SALT)]
    rest = np.setdiff1d(rest, probe)
    if p.train_fraction < 1.0:
        rest = rest[stratified_pick(y[rest], max(1, round(len(rest) * p.train_fraction)), _PROBE_SALT + 1)]
    split = lambda i: Split(_lab_tensor(x[i]), torch.from_numpy(y[i]))  # noqa: E731
    black = tuple(-s / LAB_SCALE for s in LAB_SHIFT)  # L* = a* = b* = 0, scaled
    augment = crop_flip(4, black) if p.augment else None
    return DataSplits(split(rest), split(val), Split(_lab_tensor(x_test), torch.from_numpy(y_test)), num_classes,
                      augment, probe=split(probe))


@register_dataset("cifar10_lab", Cifar10LabParams)
def cifar10_lab(p: Cifar10LabParams) -> DataSplits:
    """CIFAR-10 in L*a*b*, (3, 32, 32): L* channel 0, a*b* channels 1–2; 10 classes; task linear_probe."""
    return lab_splits(p, 10)


@register_dataset("cifar100_lab", Cifar100LabParams)
def cifar100_lab(p: Cifar100LabParams) -> DataSplits:
    """CIFAR-100 (fine labels) in L*a*b*, (3, 32, 32); task linear_probe."""
    return lab_splits(p, 100)
