"""An ImageNet-style folder of images (torchvision's ImageFolder layout), e.g. Imagenette or Tiny-ImageNet.

Layout: <root>/train/<class>/*.{jpg,jpeg,png} and <root>/val/<class>/* (any case; searched recursively, as
torchvision does). Classes are the sorted subfolder names of train/, labelled 0..K-1; val/ must have the same.

Splits: `val_size` training images, stratified by class and fixed (vision.stratified_pick), validate; the rest
train; the official val/ folder tests. Each image is decoded once with PIL, converted to RGB, its shorter side
resized to round(image_size·8/7) (bilinear; the usual 256/224 ratio of ImageNet evaluation), centre-cropped to
image_size×image_size and normalised with the ImageNet mean and std. Training adds a random crop (padding
image_size//8, black border) and a horizontal flip.

Memory: the whole dataset is held in memory as float32, N×3×S×S×4 bytes — Imagenette at 160 px is
9,469×3×160×160×4 B ≈ 2.9 GB for train (≈ 4.1 GB with val), once on the host and, for a GPU job, once more
on the device. It suits ImageNet subsets; full ImageNet (1.28 M images) streams from shards instead
(`kdbench shards` converts this layout; the `shards` dataset, shards.py, reads them).
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pydantic import Field, field_validator

from .augment import crop_flip
from .base import DatasetParams, DataSplits, Split, data_missing, register_dataset
from .files import DatasetCorrupt, DatasetMissing
from .vision import _SPLIT_SALT, _SUBSET_SALT, _black, _normalise, stratified_pick

EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})  # compared lower-case, so .JPEG (ImageNet's) counts
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_THREADS = 4  # PIL releases the GIL while decoding and resizing


def find_classes(folder: Path) -> list[str]:
    """Sorted subfolder names of `folder`, or DatasetMissing if it is absent or has none."""
    if not folder.is_dir():
        raise DatasetMissing(f"no folder {folder}: an image folder dataset needs <root>/train/<class>/*.jpg "
                             f"and <root>/val/<class>/*.jpg (torchvision's ImageFolder layout)")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DatasetMissing(f"{folder} holds no class subfolders (expected {folder}/<class>/*.jpg)")
    return classes


def find_layout(root: Path) -> list[str]:
    """The class names, after checking that train/ and val/ exist and hold the same classes (no file is read)."""
    train, val = find_classes(root / "train"), find_classes(root / "val")
    if train != val:
        only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
        raise DatasetMissing(f"{root}/train and {root}/val hold different classes: only in train {only_train[:5]}, "
                             f"only in val {only_val[:5]} ({len(only_train)} and {len(only_val)} in all)")
    return train


def list_images(folder: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    """Image paths under folder/<class>/ in class then path order, and their labels (N,) int64."""
    found = [sorted(p for p in (folder / c).rglob("*") if p.suffix.lower() in EXTENSIONS) for c in classes]
    labels = np.concatenate([np.full(len(f), i, np.int64) for i, f in enumerate(found)])
    return [p for f in found for p in f], labels


def decode(path: Path, size: int) -> np.ndarray:
    """One image as (3, size, size) uint8: RGB, shorter side resized to round(size·8/7), centre crop."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except OSError as e:
        raise DatasetCorrupt(f"{path}: not a readable image ({e})") from None
    return fit(im, size)


def decode_bytes(data: bytes, size: int, where: str) -> np.ndarray:
    """`decode` of an encoded image held in memory (a shard's record); `where` names it in errors."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
    except OSError as e:
        raise DatasetCorrupt(f"{where}: not a readable image ({e})") from None
    return fit(im, size)


def fit(im: Image.Image, size: int) -> np.ndarray:
    """An RGB image as (3, size, size) uint8: shorter side resized to round(size·8/7), centre crop."""
    short = round(size * 8 / 7)
    w, h = im.size
    w, h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)  # torchvision's Resize(int)
    im = im.resize((w, h), Image.BILINEAR)  # PIL antialiases when it shrinks, as torchvision does for PIL images
    left, top = int(round((w - size) / 2)), int(round((h - size) / 2))  # torchvision's CenterCrop
    return np.asarray(im.crop((left, top, left + size, top + size))).transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def load_images(paths: list[Path], labels: np.ndarray, size: int) -> Split:
    x = np.empty((len(paths), 3, size, size), np.uint8)  # (N, 3, S, S): a quarter of the float32 copy

    def fill(i: int) -> None:
        x[i] = decode(paths[i], size)

    with ThreadPoolExecutor(_THREADS) as pool:
        list(pool.map(fill, range(len(paths))))  # list(): re-raises a worker's exception here
    return Split(_normalise(x, IMAGENET_MEAN, IMAGENET_STD), torch.from_numpy(labels))


class ImageFolderParams(DatasetParams):
    root: str  # the folder holding train/ and val/; no default, there is no conventional place
    image_size: int = Field(default=64, ge=8)  # S: images are (3, S, S)
    val_size: int = Field(default=50, ge=0)  # carved out of train/ (0: none); val/ is the test split
    train_fraction: float = Field(default=1.0, gt=0.0, le=1.0)  # use a stratified subset of the training split
    augment: bool = True  # random crop S with padding S//8 and horizontal flip

    @field_validator("root")
    @classmethod
    def _root_has_layout(cls, root: str) -> str:
        # Checked when the suite loads, so a wrong folder is a SpecError at `dataset.root`, not a failed job.
        if not Path(root).is_dir():
            data_missing(f"dataset folder {root} does not exist (an image folder dataset needs "
                         f"<root>/train/<class>/*.jpg and <root>/val/<class>/*.jpg)")
            return root
        try:
            find_layout(Path(root))
        except DatasetMissing as e:
            data_missing(str(e))
        return root

    def describe(self):
        try:
            classes = find_layout(Path(self.root))
        except (DatasetMissing, OSError):  # not on this machine (`data_checked_later`): cannot tell
            return None
        n = len(list_images(Path(self.root) / "train", classes)[0])  # counts files; decodes nothing
        train = round(max(0, n - self.val_size) * self.train_fraction)  # 0: val_size too large, the load will say
        return (3, self.image_size, self.image_size), len(classes), train


def pick_train_val(y: np.ndarray, p: ImageFolderParams) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation images, chosen from the labels alone (before any decoding)."""
    if p.val_size >= len(y):
        raise ValueError(f"val_size ({p.val_size}) must be smaller than the training set ({len(y)} images)")
    val = stratified_pick(y, p.val_size, _SPLIT_SALT)
    rest = np.setdiff1d(np.arange(len(y)), val)
    if p.train_fraction < 1.0:
        rest = rest[stratified_pick(y[rest], max(1, round(len(rest) * p.train_fraction)), _SUBSET_SALT)]
    return rest, val


@register_dataset("imagefolder", ImageFolderParams)
def imagefolder(p: ImageFolderParams) -> DataSplits:
    """An ImageNet-style folder, (3, S, S), as many classes as train/ has subfolders."""
    root, size = Path(p.root), p.image_size
    classes = find_layout(root)
    paths, y = list_images(root / "train", classes)
    train, val = pick_train_val(y, p)
    pick = lambda idx: load_images([paths[i] for i in idx], y[idx], size)  # noqa: E731
    test = load_images(*list_images(root / "val", classes), size)
    augment = crop_flip(size // 8, _black(IMAGENET_MEAN, IMAGENET_STD)) if p.augment else None
    return DataSplits(pick(train), pick(val), test, len(classes), augment)
