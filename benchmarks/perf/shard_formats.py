"""Which shard format: Parquet (read through pyarrow) vs WebDataset-style tars (stdlib tarfile), measured.

The same N generated JPEGs (ImageNet-like: ~80 px, 10 classes, quality 90) are written as Parquet shards (the
`kdbench shards` writer) and as tars of `<key>.jpg` + `<key>.cls` members (WebDataset's layout), ~4 MB each.
Timed, one process, median of 5 after a warm-up, files in the page cache: reading every image's bytes in
order; reading and decoding them (PIL, RGB, resize + centre crop to 64, as the `shards` dataset does); reading
every label alone (what a job does once when it loads); fetching the sample in the middle of a shard (an open,
memory-mapped Parquet table's take() vs a tar's linear scan to the member). Decoding dominates the first two
for both formats; the last two are where a columnar, indexed file differs.
Run: .venv/bin/python benchmarks/perf/shard_formats.py [--n 2000]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import table, timed  # noqa: E402

from kdbench.zoo.datasets.imagefolder import decode_bytes  # noqa: E402
from kdbench.zoo.datasets.shard_format import write_split  # noqa: E402


def jpegs(n: int, classes: int = 10, seed: int = 0) -> list[tuple[int, bytes]]:
    """(label, JPEG bytes) of n smooth random images 64–96 px a side, `classes` mean colours."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = rng.integers(64, 97, 2)
        base = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        im = Image.fromarray(base).resize((int(w), int(h)), Image.BICUBIC)
        noise = rng.integers(-20, 20, (int(h), int(w), 3))
        im = Image.fromarray(np.clip(np.asarray(im, np.int16) + noise, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        out.append((i % classes, buf.getvalue()))
    return out


def write_tars(folder: Path, records: list[tuple[int, bytes]], shard_mb: float) -> list[Path]:
    paths, tar, size = [], None, 0
    for i, (label, data) in enumerate(records):
        if tar is None:
            paths.append(folder / f"train-{len(paths):05d}.tar")
            tar, size = tarfile.open(paths[-1], "w"), 0
        for name, body in ((f"{i:08d}.jpg", data), (f"{i:08d}.cls", str(label).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        size += len(data)
        if size >= shard_mb * 1e6:
            tar.close()
            tar = None
    if tar is not None:
        tar.close()
    return paths


def tar_records(paths: list[Path]):
    for path in paths:
        with tarfile.open(path, "r") as tar:
            label = None
            for m in tar:
                body = tar.extractfile(m).read()
                if m.name.endswith(".cls"):
                    label = int(body)
                else:
                    yield label, body  # WebDataset groups by key: .jpg then .cls; the label is read, not used


def parquet_records(paths: list[Path]):
    for path in paths:
        table = pq.read_table(path, memory_map=True)
        yield from zip(table.column("label").to_pylist(), table.column("image").to_pylist(), strict=True)


def run(n: int = 2000, size: int = 64) -> list[list[str]]:
    records = jpegs(n)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        info = write_split(folder, "train", iter(records), 10, 4.0)
        pq_paths = [folder / s.file for s in info.shards]
        tars = write_tars(folder, records, 4.0)
        rows = []
        for name, reader in (("parquet", lambda: parquet_records(pq_paths)), ("tar", lambda: tar_records(tars))):
            read_s, _ = timed(lambda r=reader: sum(len(b) for _, b in r()))
            dec_s, _ = timed(lambda r=reader: [decode_bytes(b, size, "x") for _, b in r()], repeats=3)
            if name == "parquet":
                labels_s, _ = timed(lambda: [pq.read_table(p, columns=["label"]) for p in pq_paths])
                held = pq.read_table(pq_paths[0], memory_map=True)  # a worker keeps its shards open
                mid = info.shards[0].count // 2
                one_s, _ = timed(lambda h=held, m=mid: h.column("image").take([m]).to_pylist(), repeats=20)
            else:
                labels_s, _ = timed(lambda: [lab for lab, _ in tar_records(tars)])
                one_s, _ = timed(lambda m=mid: next(b for k, (_, b) in enumerate(tar_records(tars[:1])) if k == m),
                                 repeats=20)
            mb = sum(p.stat().st_size for p in (pq_paths if name == "parquet" else tars)) / 1e6
            rows.append([name, f"{len(pq_paths if name == 'parquet' else tars)} / {mb:.1f} MB",
                         f"{n / read_s:,.0f}", f"{n / dec_s:,.0f}", f"{labels_s * 1e3:.1f}", f"{one_s * 1e3:.2f}"])
    print(table(rows, ["format", "shards / size", "read img/s", "read+decode img/s", "all labels ms",
                       "one sample ms"]))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    run(ap.parse_args().n)
