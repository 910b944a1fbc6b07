"""Image shards on disk: Parquet files of (label, image bytes) and one `manifest.json` describing them.

Layout of a shards folder (a local folder, or a prefix under s3:// or gs://):

    manifest.json              what follows: source, classes, encoding, normalisation, splits and their shards
    train-00000.parquet …      columns `label` (int32) and `image` (binary), rows in the source's order
    train-labels.parquet       the split's labels alone (column `label`), read once when a job loads
    test-00000.parquet …       the held-out split (an ImageFolder's val/, CIFAR's and MNIST's test files)

`encoding` is "file" (each row holds an image file's bytes as written, JPEG or PNG, decoded by PIL) or "raw"
(each row holds a (C, H, W) uint8 array, `shape`; CIFAR and MNIST, lossless and without a decode step).
Every file's byte count and SHA-256 are in the manifest; a shard fetched into the local cache is checked.

Why Parquet (measured in benchmarks/perf/shard_formats.py): pyarrow, already a dependency, reads it from a
folder, S3 and GCS through `pyarrow.fs`; a split's labels are one column, read without the images; and a
shard read locally is memory-mapped, so a worker holds many open at no copy. Reading and decoding run at the
same rate as WebDataset-style tars (decoding dominates), see docs/performance.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT, VERSION = "kdbench-shards", 1
MANIFEST = "manifest.json"
SCHEMA = pa.schema([("label", pa.int32()), ("image", pa.binary())])
ROW_GROUP = 256  # rows per Parquet row group


@dataclass(frozen=True)
class ShardFile:
    file: str  # relative to the shards folder
    count: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class SplitInfo:
    count: int
    class_counts: list[int]
    shards: list[ShardFile]
    labels: ShardFile

    def offsets(self) -> np.ndarray:
        """(S + 1,) the first record of each shard, then the split's size."""
        return np.concatenate([[0], np.cumsum([s.count for s in self.shards])]).astype(np.int64)


@dataclass(frozen=True)
class Manifest:
    source: str  # imagefolder | cifar10 | cifar100 | mnist
    classes: list[str]
    encoding: str  # file | raw
    shape: list[int] | None  # (C, H, W) of a raw record
    mean: list[float]
    std: list[float]
    pad: int | None  # the random crop's padding; None: image_size // 8 (ImageFolder's rule)
    flip: bool  # the training views flip horizontally
    augment: bool  # whether the source's in-memory dataset augments by default
    splits: dict[str, SplitInfo]

    def to_json(self) -> str:
        body = {"format": FORMAT, "version": VERSION, **{k: getattr(self, k) for k in (
            "source", "classes", "encoding", "shape", "mean", "std", "pad", "flip", "augment")},
            "splits": {name: {"count": s.count, "class_counts": s.class_counts, "labels": vars(s.labels),
                              "shards": [vars(f) for f in s.shards]} for name, s in self.splits.items()}}
        return json.dumps(body, indent=1)

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            d = json.loads(text)
            if d.get("format") != FORMAT or d.get("version") != VERSION:
                raise ValueError(f"not a {FORMAT} v{VERSION} manifest (format {d.get('format')!r}, "
                                 f"version {d.get('version')!r})")
            splits = {name: SplitInfo(s["count"], list(s["class_counts"]), [ShardFile(**f) for f in s["shards"]],
                                      ShardFile(**s["labels"])) for name, s in d["splits"].items()}
            return cls(d["source"], list(d["classes"]), d["encoding"], d["shape"], list(d["mean"]), list(d["std"]),
                       d["pad"], bool(d["flip"]), bool(d["augment"]), splits)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{where}: unreadable shards manifest ({type(e).__name__}: {e})") from None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _finished(folder: Path, name: str, count: int) -> ShardFile:
    path = folder / name
    return ShardFile(name, count, path.stat().st_size, sha256_file(path))


def write_split(folder: Path, split: str, records: Iterable[tuple[int, bytes]], num_classes: int,
                shard_mb: float) -> SplitInfo:
    """Write `records` ((label, image bytes), in order) as shards of about `shard_mb` MB each."""
    shards: list[ShardFile] = []
    labels: list[int] = []
    rows_l: list[int] = []
    rows_b: list[bytes] = []
    size = 0

    def flush() -> None:
        nonlocal rows_l, rows_b, size
        name = f"{split}-{len(shards):05d}.parquet"
        table = pa.table({"label": pa.array(rows_l, pa.int32()), "image": pa.array(rows_b, pa.binary())},
                         schema=SCHEMA)
        pq.write_table(table, folder / name, row_group_size=ROW_GROUP, compression="none")  # JPEGs don't shrink
        shards.append(_finished(folder, name, len(rows_l)))
        rows_l, rows_b, size = [], [], 0

    for label, data in records:
        rows_l.append(label)
        rows_b.append(data)
        labels.append(label)
        size += len(data)
        if size >= shard_mb * 1e6:
            flush()
    if rows_l or not shards:
        flush()
    name = f"{split}-labels.parquet"
    pq.write_table(pa.table({"label": pa.array(labels, pa.int32())}), folder / name)
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes).tolist() if labels else [0] * num_classes
    return SplitInfo(len(labels), counts, shards, _finished(folder, name, len(labels)))


def write_manifest(folder: Path, manifest: Manifest) -> None:
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.to_json())
    os.replace(tmp, folder / MANIFEST)  # written last: a folder with a manifest is complete


def read_labels(data: bytes) -> np.ndarray:
    """A split's labels file as (N,) int64."""
    return pq.read_table(pa.BufferReader(data)).column("label").to_numpy().astype(np.int64)


def iter_rows(table: pa.Table, rows: np.ndarray) -> Iterator[tuple[int, bytes]]:
    """(label, image bytes) of the given rows of a shard."""
    taken = table.take(pa.array(rows))
    yield from zip(taken.column("label").to_pylist(), taken.column("image").to_pylist(), strict=True)
