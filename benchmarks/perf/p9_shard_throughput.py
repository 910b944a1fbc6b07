"""P9 — streaming shards: images/s decoded and augmented per CPU core, and the training step's data wait.

Data: a generated ImageNet-like ImageFolder (N JPEGs, 10 classes, 64–96 px a side, quality 90; val/ 10 per
class) converted once by `kdbench shards` (Parquet, ~4 MB shards), read from the local folder and from a moto
S3 server in this process (through the bounded cache: a cold first epoch, then warm).
Throughput: one epoch of the `shards` dataset (batches of 64, DataLoader with ONE worker process decoding:
RGB, shorter side resized to 73, centre crop 64) and its training views (random crop, padding 8, and flip,
batched) vs the plain baseline: a PIL ImageFolder dataset + torch DataLoader with ONE worker doing the same
work per sample (torchvision's ImageFolder with Resize(73), CenterCrop(64), RandomCrop(64, padding=8),
RandomHorizontalFlip, ToTensor, Normalize — written with PIL and torch, torchvision is not installed here).
One worker each. Per core = images per CPU-second: the user + system CPU time of the reading process and its
worker (from /proc), which counts kdbench's batched normalisation and views in the reading process as well as
the baseline's per-sample transforms in its worker. Each side: a warm-up epoch, then the median of R epochs,
the sides interleaved. Goal: ratio >= 1.0.
Data wait: a training loop as the engine's (batches from the stream, views, forward, cross-entropy, backward,
SGD), the trainer on 1 thread and 1 decoding worker, timing the seconds blocked waiting for the next batch
over one epoch after a warm-up one. CIFAR-like: 32 px raw shards (CIFAR-10's format, N images), resnet8;
ImageNet-like: the 64 px JPEG shards, resnet18 (ImageNet stem), both batch 64. Goal: wait <= 5% of step time.
Run: .venv/bin/python benchmarks/perf/p9_shard_throughput.py [--n 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Row, table  # noqa: E402
from shard_formats import jpegs  # noqa: E402

from kdbench.engine.data import shuffled_batches  # noqa: E402
from kdbench.zoo.datasets import load_dataset  # noqa: E402
from kdbench.zoo.datasets.shard_convert import convert  # noqa: E402
from kdbench.zoo.models import create_model  # noqa: E402

SIZE, BATCH = 64, 64
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_folder(root: Path, n: int, classes: int = 10) -> None:
    for i, (label, data) in enumerate(jpegs(n + 10 * classes, classes)):
        split = "train" if i < n else "val"
        folder = root / split / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:06d}.jpg").write_bytes(data)


class FolderBaseline(Dataset):
    """torchvision's ImageFolder + the usual transforms, per sample, in PIL and torch."""

    def __init__(self, root: Path) -> None:
        classes = sorted(p.name for p in root.iterdir())
        self.items = [(p, c) for c, name in enumerate(classes) for p in sorted((root / name).iterdir())]
        self.mean, self.std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        with Image.open(path) as im:
            im = im.convert("RGB")
        w, h = im.size
        short = round(SIZE * 8 / 7)
        w, h = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)  # Resize(73)
        im = im.resize((w, h), Image.BILINEAR)
        left, top = int(round((w - SIZE) / 2)), int(round((h - SIZE) / 2))  # CenterCrop(64)
        im = im.crop((left, top, left + SIZE, top + SIZE))
        x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float().div_(255)  # ToTensor
        pad = SIZE // 8  # RandomCrop(64, padding=8), then RandomHorizontalFlip
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy, dx = torch.randint(0, 2 * pad + 1, (2,)).tolist()
        x = padded[:, dy:dy + SIZE, dx:dx + SIZE]
        if torch.rand(()) < 0.5:
            x = x.flip(2)
        return (x - self.mean) / self.std, label  # Normalize


def _worker_init(_):
    torch.set_num_threads(1)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of this process and of the given worker processes (from /proc)."""
    total = time.process_time()
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def _workers(loader) -> list[int]:
    it = getattr(loader, "_iterator", None)
    return [w.pid for w in getattr(it, "_workers", [])]


def measured(epoch, loader_of) -> tuple[float, float]:
    """(images per wall second, images per CPU second of the reading process and its workers) of one epoch."""
    pids = _workers(loader_of())
    c0, t0 = cpu_seconds(pids), time.perf_counter()
    n = epoch()
    return n / (time.perf_counter() - t0), n / (cpu_seconds(pids) - c0)


def baseline_epoch(loader) -> int:
    return sum(len(x) for x, _ in loader)


def stream_epoch(data, epoch: int) -> int:
    n = 0
    for x, _, idx in shuffled_batches(data.train, BATCH, 0, epoch):
        x = data.augment(x, idx, 0, epoch)
        n += len(x)
    return n


def throughput(folder: Path, roots: dict[str, str], repeats: int, cache: Path) -> list[Row]:
    base = DataLoader(FolderBaseline(folder / "train"), batch_size=BATCH, shuffle=True, num_workers=1,
                      persistent_workers=True, prefetch_factor=4, worker_init_fn=_worker_init)
    params = {"image_size": SIZE, "val_size": 0, "workers": 1, "cache_dir": str(cache)}
    streams = {name: load_dataset("shards", params | {"root": root}) for name, root in roots.items()}
    cold = {name: measured(lambda d=d: stream_epoch(d, 0), lambda d=d: d.train._loader)[0]
            for name, d in streams.items()}  # the warm-up: S3's cache fills here
    baseline_epoch(base)
    seen: dict[str, list[tuple[float, float]]] = {"baseline": [], **{n: [] for n in streams}}
    for e in range(1, repeats + 1):
        seen["baseline"].append(measured(lambda: baseline_epoch(base), lambda: base))
        for name, d in streams.items():
            seen[name].append(measured(lambda d=d, e=e: stream_epoch(d, e), lambda d=d: d.train._loader))
    wall = {k: statistics.median(v[0] for v in vs) for k, vs in seen.items()}
    cpu = {k: statistics.median(v[1] for v in vs) for k, vs in seen.items()}
    print(table([[k, f"{cpu[k]:,.0f}", f"{wall[k]:,.0f}", ", ".join(f"{v[1]:,.0f}" for v in seen[k]),
                  f"{cold[k]:,.0f}" if k in cold else "—"] for k in seen],
                ["reader (1 decoding worker)", "img per CPU-s", "img per wall-s", "epochs img/CPU-s",
                 "first epoch img/wall-s"]))
    return [Row(f"P9 decode+augment img per CPU-second, shards {name} vs PIL ImageFolder", f"{cpu[name]:,.0f}",
                f"{cpu['baseline']:,.0f}", cpu[name] / cpu["baseline"], ">= 1.0", cpu[name] >= cpu["baseline"])
            for name in streams]


def write_cifar_like(root: Path, n: int) -> None:
    """CIFAR-10's python files (5 training batches, a test batch) of random images, n training ones."""
    rng = np.random.default_rng(0)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name, count in [*((f"data_batch_{i + 1}", n // 5) for i in range(5)), ("test_batch", 500)]:
        batch = {b"labels": (np.arange(count) % 10).tolist(),
                 b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8)}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)


def data_wait(name: str, root: str, arch: str, cache: Path) -> tuple[Row, str]:
    data = load_dataset("shards", {"root": root, "val_size": 0, "workers": 1, "cache_dir": str(cache)}
                        | ({"image_size": SIZE} if arch == "resnet18" else {}))
    model = create_model(arch, {}, data.input_shape, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    waits, totals = [], []
    for epoch in range(2):  # the first warms the workers, the page cache and the allocator
        wait, t_start = 0.0, time.perf_counter()
        it = iter(shuffled_batches(data.train, BATCH, 0, epoch))
        while True:
            t0 = time.perf_counter()
            batch = next(it, None)
            wait += time.perf_counter() - t0
            if batch is None:
                break
            x, y, idx = batch
            x = data.augment(x, idx, 0, epoch)
            loss = torch.nn.functional.cross_entropy(model(x).logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        waits.append(wait)
        totals.append(time.perf_counter() - t_start)
    steps = -(-len(data.train) // BATCH)
    frac = waits[-1] / totals[-1]
    line = (f"{name}: {arch}, {len(data.train)} images, {steps} steps, step {totals[-1] / steps * 1e3:.0f} ms, "
            f"data wait {waits[-1] / steps * 1e3:.1f} ms a step = {frac:.1%} "
            f"(warm-up epoch {waits[0] / totals[0]:.1%})")
    print(line, flush=True)
    return Row(f"P9 data wait / step time, {name} ({arch})", f"{frac:.1%}", "—", None, "<= 5%", frac <= 0.05), line


def _moto():
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")
    client.create_bucket(Bucket="bench")
    return server, client


def run(n: int = 2000, repeats: int = 3) -> list[Row]:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_folder(tmp / "folder", n)
        done = convert("imagefolder", tmp / "folder", tmp / "shards", shard_mb=4.0)
        print(done.summary(), flush=True)
        server, client = _moto()
        try:
            for f in sorted((tmp / "shards").iterdir()):
                client.upload_file(str(f), "bench", f"shards/{f.name}")
            rows = throughput(tmp / "folder", {"local": str(tmp / "shards"), "s3": "s3://bench/shards"}, repeats,
                              tmp / "cache")
            write_cifar_like(tmp / "cifar", n)
            convert("cifar10", tmp / "cifar", tmp / "cifar_shards")
            for name, root, arch in (("CIFAR-like 32 px", str(tmp / "cifar_shards"), "resnet8"),
                                     ("ImageNet-like 64 px", str(tmp / "shards"), "resnet18")):
                rows.append(data_wait(name, root, arch, tmp / "cache")[0])
        finally:
            server.stop()
    print(table([r.cells() for r in rows], ["benchmark", "kdbench", "baseline", "ratio", "goal", "met?"]))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    run(a.n, a.repeats)
