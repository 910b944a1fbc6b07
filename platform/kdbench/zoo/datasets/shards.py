"""`shards`: a dataset streamed from the shards `kdbench shards` writes, in a local folder or at s3:// / gs://.

The training split streams (shard_stream.py): decoded in DataLoader workers, shards fetched into a bounded local
cache (shard_cache.py). The validation split (`val_size` training images, stratified and fixed exactly as the
in-memory datasets pick them) and the test split stream too, in index order, at every evaluation: only their
labels are held. Preprocessing is the in-memory dataset's: an ImageFolder's images are decoded, resized
(shorter side round(S·8/7)) and centre-cropped to S as `imagefolder` does; CIFAR and MNIST keep their pixels;
each is normalised with its source's mean and std, and trains with the source's crop and flip.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pydantic import Field, field_validator

from .augment import crop_flip
from .base import DatasetParams, DataSplits, data_missing, register_dataset
from .files import DatasetMissing
from .imagefolder import pick_train_val
from .shard_cache import ShardSource, is_uri
from .shard_format import MANIFEST, Manifest, read_labels
from .shard_stream import ORDERS, BatchReader, StreamSplit
from .vision import _black


class ShardsParams(DatasetParams):
    root: str  # a shards folder: a local path, file://, s3://bucket/prefix or gs://bucket/prefix
    image_size: int | None = Field(default=None, ge=8)  # S of an ImageFolder's shards (default 64); fixed for raw
    val_size: int = Field(default=50, ge=0)  # carved out of train, as the in-memory datasets do
    train_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    # The source's random crop (padding from the manifest; an ImageFolder's S//8) and flip (not for MNIST). The
    # in-memory `mnist` defaults to none: set false to match it.
    augment: bool = True
    order: str = "global"  # global: the in-memory order; shards: shard by shard (datasets beyond the cache)
    workers: int = Field(default=2, ge=0, le=64)  # DataLoader processes decoding (0: in the training process)
    cache_mb: float = Field(default=10240.0, gt=0)  # the local cache of a URI root's shards
    cache_dir: str | None = None  # default $KDBENCH_SHARD_CACHE or <tmp>/kdbench-shards

    @field_validator("order")
    @classmethod
    def _known_order(cls, order: str) -> str:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)} (got {order!r})")
        return order

    @field_validator("root")
    @classmethod
    def _root_readable(cls, root: str) -> str:
        # Checked when the suite loads: a local folder here, a URI if this machine can read its manifest. Inside
        # `data_checked_later()` (validate, submit) what cannot be read here is a note; `kdbench run` checks again.
        try:
            _manifest(root)
        except DatasetMissing as e:
            data_missing(f"{e}" + (" (a URI: the jobs' machines read it with their credentials)"
                                   if is_uri(root) else ""))
        return root

    def source(self) -> ShardSource:
        return ShardSource(self.root, self.cache_dir, self.cache_mb)

    def size(self, m: Manifest) -> int:
        return m.shape[-1] if m.encoding == "raw" else (self.image_size or 64)

    def describe(self):
        try:
            m = _manifest(self.root)
        except (DatasetMissing, ValueError):
            return None
        s = self.size(m)
        shape = (m.shape[0], s, s) if m.shape else (3, s, s)
        train = round(max(0, m.splits["train"].count - self.val_size) * self.train_fraction)
        return shape, len(m.classes), train


@lru_cache(maxsize=16)
def _manifest_text(root: str) -> str | DatasetMissing:
    """The manifest, or why it cannot be read: kept either way, so an unreachable bucket costs one timeout."""
    try:
        return ShardSource(root).read_bytes(MANIFEST).decode()
    except DatasetMissing as e:
        return e


def _manifest(root: str) -> Manifest:
    text = _manifest_text(root)
    if isinstance(text, DatasetMissing):
        raise DatasetMissing(str(text))
    return Manifest.from_json(text, f"{root.rstrip('/')}/{MANIFEST}")


def _labels(source: ShardSource, m: Manifest, split: str) -> np.ndarray:
    return read_labels(source.read_bytes(m.splits[split].labels.file))


@register_dataset("shards", ShardsParams)
def shards(p: ShardsParams) -> DataSplits:
    """Images streamed from shards; classes, shape and normalisation from the manifest."""
    m, source = _manifest(p.root), p.source()
    if p.image_size is not None and m.encoding == "raw":
        raise ValueError(f"{p.root}: image_size applies to an ImageFolder's shards; {m.source}'s images are "
                         f"{m.shape[1]}×{m.shape[2]} (leave image_size out)")
    size = p.size(m)
    shape = (m.shape[0], size, size) if m.shape else (3, size, size)
    y = _labels(source, m, "train")
    train, val = pick_train_val(y, p)

    def stream(split: str, records: np.ndarray, labels: np.ndarray, order: str, workers: int) -> StreamSplit:
        reader = BatchReader(source, m.splits[split], records, labels, m.encoding, shape, size, order)
        return StreamSplit(reader, m.mean, m.std, workers)

    # Validation and test stream too (index order, decoded batch by batch in the same workers' way): ImageNet's
    # 50,000 test images would hold 30 GB as float32 at 224 px. Only their labels are kept.
    val_split = stream("train", val, y[val], "global", p.workers)
    test_split = stream("test", *_all(_labels(source, m, "test")), "global", p.workers)
    pad = m.pad if m.pad is not None else size // 8
    views = crop_flip(pad, _black(m.mean, m.std), flip=m.flip) if p.augment else None
    return DataSplits(stream("train", train, y[train], p.order, p.workers), val_split, test_split, len(m.classes),
                      views)


def _all(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(len(labels)), labels

