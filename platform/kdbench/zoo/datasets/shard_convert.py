"""Convert a dataset on disk into shards once (`kdbench shards`): an ImageFolder tree, CIFAR-10/100 or MNIST.

The records keep the source's order (an ImageFolder's class then path order, the official files' order), so
sample i of a `shards` dataset is sample i of the in-memory dataset with the same parameters. An ImageFolder's
images are stored as the files' bytes (decoded in the training job's DataLoader workers); CIFAR's and MNIST's
as raw uint8 arrays. An ImageFolder's val/ becomes the `test` split, as the in-memory `imagefolder` tests on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import files
from .imagefolder import IMAGENET_MEAN, IMAGENET_STD, find_layout, list_images
from .shard_format import MANIFEST, Manifest, SplitInfo, write_manifest, write_split
from .vision import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, MNIST_MEAN, MNIST_STD

SOURCES = ("imagefolder", "cifar10", "cifar100", "mnist")


@dataclass(frozen=True)
class Converted:
    manifest: Manifest
    out: Path

    def summary(self) -> str:
        m = self.manifest
        parts = ", ".join(f"{name} {s.count:,} images in {len(s.shards)} shards" for name, s in m.splits.items())
        size = sum(f.bytes for s in m.splits.values() for f in s.shards) / 1e6
        return f"{m.source}: {len(m.classes)} classes; {parts}; {size:,.1f} MB in {self.out}"


def convert(source: str, root: str | Path, out: str | Path, shard_mb: float = 64.0) -> Converted:
    """Write the shards of `source` read from `root` into the folder `out` (made; must be empty or absent)."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: one of {', '.join(SOURCES)}")
    if shard_mb <= 0:
        raise ValueError(f"--shard-mb must be positive (got {shard_mb})")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: write shards into a new folder"
                         + (" (it already holds shards)" if (out / MANIFEST).exists() else ""))
    root = Path(root)
    if source == "imagefolder":
        classes = find_layout(root)  # DatasetMissing (a FileNotFoundError) names what is absent
        out.mkdir(parents=True, exist_ok=True)
        splits = {name: write_split(out, name, _files(root / folder, classes), len(classes), shard_mb)
                  for name, folder in (("train", "train"), ("test", "val"))}
        manifest = Manifest(source, classes, "file", None, list(IMAGENET_MEAN), list(IMAGENET_STD), None, True,
                            True, splits)
    elif source == "mnist":
        files.find_mnist(root)
        splits = _arrays(out, [files.read_mnist(root, train=t) for t in (True, False)], 10, shard_mb)
        manifest = Manifest(source, [str(i) for i in range(10)], "raw", [1, 28, 28], list(MNIST_MEAN),
                            list(MNIST_STD), 2, False, False, splits)
    else:
        layout, classes = (files.CIFAR10, 10) if source == "cifar10" else (files.CIFAR100, 100)
        mean, std = (CIFAR10_MEAN, CIFAR10_STD) if source == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
        files.find_cifar(root, layout)
        splits = _arrays(out, [files.read_cifar(root, layout, train=t) for t in (True, False)], classes, shard_mb)
        manifest = Manifest(source, [str(i) for i in range(classes)], "raw", [3, 32, 32], list(mean), list(std), 4,
                            True, True, splits)
    write_manifest(out, manifest)
    return Converted(manifest, out)


def _files(folder: Path, classes: list[str]) -> Iterator[tuple[int, bytes]]:
    paths, labels = list_images(folder, classes)
    for path, label in zip(paths, labels, strict=True):
        yield int(label), path.read_bytes()


def _arrays(out: Path, parts: list[tuple[np.ndarray, np.ndarray]], num_classes: int,
            shard_mb: float) -> dict[str, SplitInfo]:
    out.mkdir(parents=True, exist_ok=True)
    return {name: write_split(out, name, ((int(label), np.ascontiguousarray(img).tobytes())
                                          for img, label in zip(x, y, strict=True)), num_classes, shard_mb)
            for name, (x, y) in zip(("train", "test"), parts, strict=True)}
