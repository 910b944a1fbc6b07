"""MNIST, CIFAR-10 and CIFAR-100 from the official files on disk (files.py reads them; nothing is downloaded).

Splits: `val_size` images of the official training set, stratified by class and fixed (a hash of the
index orders each class, so the split depends on neither numpy's nor sklearn's version), validate;
the rest train; the official test set tests. Images are float32, normalised per channel with the
benchmark's means and stds; CIFAR trains with random crop 32 (padding 4, black border) and a
horizontal flip, as in RepDistiller.

Memory: every split is held in memory as float32 — CIFAR train 50,000×3×32×32×4 B ≈ 614 MB (≈ 737 MB
with val and test), MNIST 70,000×28×28×4 B ≈ 220 MB — once on the host and, for a GPU job, once more
on the device (the engine keeps both per worker process).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field, field_validator

from . import files
from .augment import crop_flip, random_bits, stream_key
from .base import DatasetParams, DataSplits, Split, data_missing, register_dataset

_SPLIT_SALT, _SUBSET_SALT = 0x5EED, 0x5B5E7  # distinct keys: the subset is not correlated with the split


def _default_root() -> str:
    return os.environ.get("KDBENCH_DATA_ROOT", "./data")


class VisionParams(DatasetParams):
    root: str = Field(default_factory=_default_root, validate_default=True)  # env read when the suite loads
    val_size: int = Field(default=5000, ge=0)  # carved out of the official training set (0: none, `protocol: paper`)
    train_fraction: float = Field(default=1.0, gt=0.0, le=1.0)  # use a stratified subset of the training split
    title: ClassVar[str]
    url: ClassVar[str]

    @field_validator("root")
    @classmethod
    def _root_exists(cls, root: str) -> str:
        # Checked when the suite loads, so a missing folder is a SpecError at `dataset.root`, not a failed job.
        if not Path(root).is_dir():
            data_missing(f"dataset folder {root} does not exist (set KDBENCH_DATA_ROOT or `root:`; "
                         f"get {cls.title} from {cls.url})")
            return root
        try:
            cls.find_files(Path(root))
        except files.DatasetMissing as e:
            data_missing(str(e))
        return root

    @classmethod
    def find_files(cls, root: Path) -> None:
        """Raise DatasetMissing unless the dataset's files are under `root` (cheap: no file is read)."""
        raise NotImplementedError


class MnistParams(VisionParams):
    augment: bool = False  # true: random crop (padding 2) only — a flipped digit is another glyph
    title, url = "MNIST", files.MNIST_URL

    def describe(self):
        return (1, 28, 28), 10, round((60000 - self.val_size) * self.train_fraction)

    @classmethod
    def find_files(cls, root: Path) -> None:
        files.find_mnist(root)


class Cifar10Params(VisionParams):
    augment: bool = True  # random crop 32 with padding 4 and horizontal flip
    title, url = "CIFAR-10", files.CIFAR_URL
    layout: ClassVar[files.CifarLayout] = files.CIFAR10

    def describe(self):
        classes = 100 if self.layout is files.CIFAR100 else 10
        return (3, 32, 32), classes, round((50000 - self.val_size) * self.train_fraction)

    @classmethod
    def find_files(cls, root: Path) -> None:
        files.find_cifar(root, cls.layout)


class Cifar100Params(Cifar10Params):
    title, layout = "CIFAR-100", files.CIFAR100


def stratified_pick(y: np.ndarray, n: int, salt: int) -> np.ndarray:
    """Sorted indices of n samples, each class contributing its share of n (largest remainders first)."""
    classes, counts = np.unique(y, return_counts=True)
    quota = n * counts / len(y)
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(take - quota, kind="stable")[:n - take.sum()]] += 1
    rank = random_bits(stream_key(salt), torch.arange(len(y))).numpy()  # (N,) a fixed pseudo-random order
    picked = [idx[np.argsort(rank[idx], kind="stable")[:k]] for c, k in zip(classes, take, strict=True)
              for idx in [np.flatnonzero(y == c)]]
    return np.sort(np.concatenate(picked))


def _normalise(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    out = torch.from_numpy(x).float().div_(255)  # (N, C, H, W); the one float32 copy, then in place
    return out.sub_(torch.tensor(mean).view(-1, 1, 1)).div_(torch.tensor(std).view(-1, 1, 1))


def _splits(train: tuple, test: tuple, p: VisionParams, mean, std, num_classes: int, augment) -> DataSplits:
    (x, y), (x_test, y_test) = train, test
    if p.val_size >= len(y):
        raise ValueError(f"val_size ({p.val_size}) must be smaller than the training set ({len(y)} images)")
    val = stratified_pick(y, p.val_size, _SPLIT_SALT)
    rest = np.setdiff1d(np.arange(len(y)), val)
    if p.train_fraction < 1.0:
        keep = stratified_pick(y[rest], max(1, round(len(rest) * p.train_fraction)), _SUBSET_SALT)
        rest = rest[keep]
    split = lambda i: Split(_normalise(x[i], mean, std), torch.from_numpy(y[i]))  # noqa: E731
    test_split = Split(_normalise(x_test, mean, std), torch.from_numpy(y_test))
    return DataSplits(split(rest), split(val), test_split, num_classes, augment)


def _black(mean, std) -> tuple[float, ...]:
    # The padding of RandomCrop is black in pixel space, i.e. (0 - mean) / std once normalised.
    return tuple(-m / s for m, s in zip(mean, std, strict=True))


MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


@register_dataset("mnist", MnistParams)
def mnist(p: MnistParams) -> DataSplits:
    """MNIST, (1, 28, 28), 10 classes."""
    augment = crop_flip(2, _black(MNIST_MEAN, MNIST_STD), flip=False) if p.augment else None
    data = files.read_mnist(p.root, train=True), files.read_mnist(p.root, train=False)
    return _splits(*data, p, MNIST_MEAN, MNIST_STD, 10, augment)


def _cifar(p: Cifar10Params, mean, std, num_classes: int) -> DataSplits:
    augment = crop_flip(4, _black(mean, std)) if p.augment else None
    data = files.read_cifar(p.root, p.layout, train=True), files.read_cifar(p.root, p.layout, train=False)
    return _splits(*data, p, mean, std, num_classes, augment)


@register_dataset("cifar10", Cifar10Params)
def cifar10(p: Cifar10Params) -> DataSplits:
    """CIFAR-10, (3, 32, 32), 10 classes."""
    return _cifar(p, CIFAR10_MEAN, CIFAR10_STD, 10)


@register_dataset("cifar100", Cifar100Params)
def cifar100(p: Cifar100Params) -> DataSplits:
    """CIFAR-100 (fine labels), (3, 32, 32), 100 classes."""
    return _cifar(p, CIFAR100_MEAN, CIFAR100_STD, 100)
