"""Shards: `kdbench shards` writes them from an ImageFolder, CIFAR or MNIST; the `shards` dataset streams them
from a folder or S3 (moto) with the in-memory datasets' samples, views and order; a suite trains from them to
the in-memory dataset's results; a pass whose DataLoader worker is killed resumes at the right sample."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.engine import run_job
from kdbench.engine.data import shuffled_batches
from kdbench.store import Store
from kdbench.suite import SpecError, expand, load_suite
from kdbench.zoo.datasets import load_dataset
from kdbench.zoo.datasets.files import DatasetCorrupt
from kdbench.zoo.datasets.shard_cache import ShardSource
from kdbench.zoo.datasets.shard_format import MANIFEST, Manifest, sha256_file
from kdbench.zoo.datasets.shard_stream import epoch_order

from .test_vision_datasets import write_cifar10_py, write_mnist

CLASSES = ("ant", "bee", "cow")


def write_imagefolder(root: Path, train: int = 12, val: int = 4) -> Path:
    """Noisy images of varied sizes, JPEG and PNG, whose mean colour tells the class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]][c], np.int16)
                a = np.clip(base + rng.integers(-60, 60, (30 + 3 * (i % 5), 36, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(a).save(folder / f"im{i}.{'png' if i % 3 == 0 else 'jpg'}", quality=90)
    return root


def whole(split) -> torch.Tensor:
    """A streamed split's inputs, decoded batch by batch in index order (evaluation's path)."""
    from kdbench.tasks.base import split_batches

    return torch.cat([x for x, _ in split_batches(split, 5)])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_imagefolder(tmp_path_factory.mktemp("if") / "data")


@pytest.fixture(scope="module")
def shards(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("sh") / "shards"
    result = CliRunner().invoke(app, ["shards", "imagefolder", str(folder), str(out), "--shard-mb", "0.012"])
    assert result.exit_code == 0, result.output
    assert "train 36 images in" in result.output
    return out


def upload(s3_server, folder: Path) -> str:
    prefix = f"data/{uuid.uuid4().hex[:8]}"
    for f in sorted(folder.iterdir()):
        s3_server.client().upload_file(str(f), s3_server.bucket, f"{prefix}/{f.name}")
    return f"s3://{s3_server.bucket}/{prefix}"


def test_the_manifest_counts_classes_and_checksums_every_file(shards):
    m = Manifest.from_json((shards / MANIFEST).read_text(), "m")
    assert m.classes == list(CLASSES) and m.encoding == "file" and m.source == "imagefolder"
    train, test = m.splits["train"], m.splits["test"]
    assert (train.count, train.class_counts, test.count, test.class_counts) == (36, [12] * 3, 12, [4] * 3)
    assert len(train.shards) > 3 and sum(s.count for s in train.shards) == 36  # several shards of ~12 kB
    for f in [*train.shards, *test.shards, train.labels]:
        assert (f.bytes, f.sha256) == ((shards / f.file).stat().st_size, sha256_file(shards / f.file))
    again = CliRunner().invoke(app, ["shards", "imagefolder", str(shards.parent), str(shards)])
    assert again.exit_code == 2 and "is not empty" in again.output


def test_a_missing_source_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["shards", "cifar10", str(tmp_path), str(tmp_path / "out")])
    assert result.exit_code == 2 and "no CIFAR-10 files under" in result.output
    result = CliRunner().invoke(app, ["shards", "svhn", str(tmp_path), str(tmp_path / "out")])
    assert result.exit_code == 2 and "unknown source 'svhn'" in result.output


def _same_batches(a, b, seed=3, epochs=2, batch=8):
    for epoch in range(epochs):
        pairs = zip(shuffled_batches(a.train, batch, seed, epoch), shuffled_batches(b.train, batch, seed, epoch),
                    strict=True)
        for (x1, y1, i1), (x2, y2, i2) in pairs:
            assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(i1, i2)
            if a.augment is not None:
                assert torch.equal(a.augment(x1, i1, seed, epoch), b.augment(x2, i2, seed, epoch))


def test_the_stream_gives_the_in_memory_imagefolders_samples_views_and_order(folder, shards):
    params = {"root": str(folder), "image_size": 24, "val_size": 6}
    a = load_dataset("imagefolder", params)
    b = load_dataset("shards", params | {"root": str(shards), "workers": 2})
    assert (len(a.train), a.input_shape, a.num_classes) == (len(b.train), b.input_shape, b.num_classes)
    assert torch.equal(a.val.x, whole(b.val)) and torch.equal(a.test.x, whole(b.test))
    assert torch.equal(a.test.y, b.test.y)
    _same_batches(a, b)


@pytest.mark.parametrize("source", ["cifar10", "mnist"])
def test_cifar_and_mnist_shards_equal_the_official_files(tmp_path, source):
    (write_cifar10_py if source == "cifar10" else write_mnist)(tmp_path / "raw")
    result = CliRunner().invoke(app, ["shards", source, str(tmp_path / "raw"), str(tmp_path / "sh")])
    assert result.exit_code == 0, result.output
    params = {"val_size": 5, "augment": True}
    a = load_dataset(source, params | {"root": str(tmp_path / "raw")})
    b = load_dataset("shards", params | {"root": str(tmp_path / "sh"), "workers": 0})
    assert torch.equal(a.val.x, whole(b.val)) and torch.equal(a.test.x, whole(b.test))
    assert torch.equal(a.test.y, b.test.y)
    _same_batches(a, b, batch=4)


def test_the_shard_order_is_a_pure_function_of_seed_and_epoch_and_reads_one_shard_at_a_time(shards):
    data = load_dataset("shards", {"root": str(shards), "val_size": 0, "order": "shards", "workers": 0})
    reader = data.train.reader
    order = torch.cat([i for *_, i in shuffled_batches(data.train, 5, 7, 1)])
    assert torch.equal(order, epoch_order(len(reader), 7, 1, "shards", reader.blocks))
    assert sorted(order.tolist()) == list(range(36))
    assert not torch.equal(order, epoch_order(len(reader), 7, 2, "shards", reader.blocks))
    shard = reader._shard_of[order.numpy()]
    assert (np.diff(shard) != 0).sum() == len(reader.split.shards) - 1  # each shard's samples come together


def test_a_pass_whose_worker_is_killed_resumes_at_the_right_sample(shards):
    data = load_dataset("shards", {"root": str(shards), "val_size": 0, "image_size": 16, "workers": 2})
    whole = list(shuffled_batches(data.train, 2, 5, 3))  # 18 batches, uninterrupted
    got = []
    for batch in data.train.batches(2, 5, 3):
        got.append(batch)
        if len(got) == 2:  # a real SIGKILL of a decoding worker with work still ahead of it
            os.kill(data.train._loader._iterator._workers[0].pid, signal.SIGKILL)
    assert data.train.restarts == 1  # the pass went on with new workers
    assert len(got) == len(whole) == 18
    for (x1, y1, i1), (x2, y2, i2) in zip(got, whole, strict=True):
        assert torch.equal(i1, i2) and torch.equal(x1, x2) and torch.equal(y1, y2)
    later = list(data.train.batches(2, 5, 3, start=15))  # a pass started mid-epoch (batch 15 of 18)
    assert [i.tolist() for *_, i in later] == [i.tolist() for *_, i in whole[15:]]


def test_s3_shards_through_a_bounded_cache_and_a_corrupt_shard_is_refused(shards, s3_server, tmp_path):
    uri = upload(s3_server, shards)
    local = load_dataset("shards", {"root": str(shards), "val_size": 3, "workers": 0})
    cache = tmp_path / "cache"
    remote = load_dataset("shards", {"root": uri, "val_size": 3, "workers": 2, "cache_mb": 0.05,
                                     "cache_dir": str(cache)})
    _same_batches(local, remote)
    source = remote.train.reader.source
    sizes = [(source.cache / f).stat().st_size for f in source.cached_files()]
    largest = max(s.bytes for s in remote.train.reader.split.shards)
    assert sizes and sum(sizes) <= 0.05e6 + largest  # the bound, overshot by at most the shard just fetched

    bad = uri.split("/", 3)[3] + "/" + remote.train.reader.split.shards[0].file
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=bad, Body=b"x" * 10)
    fresh = ShardSource(uri, str(tmp_path / "cache2"))
    with pytest.raises(DatasetCorrupt, match="do not match the manifest"):
        fresh.local(remote.train.reader.split.shards[0])


SUITE = """\
name: {name}
dataset: {dataset}
recipe: {{epochs: 2, batch_size: 8, optimizer: {{name: sgd, lr: 0.05}}}}
teachers:
  - {{name: t, arch: cnn, channels: [8]}}
students:
  - {{name: s, arch: cnn, channels: [4]}}
methods: [kd]
seeds: [0]
teacher_cache: {{enabled: true}}
"""


def _suite(tmp_path, name, dataset):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SUITE.format(name=name, dataset=json.dumps(dataset)))
    return expand(load_suite(str(path)))


def _train(plan, store):
    return {(e.job.kind, e.student): run_job(e.job, store) for e in plan.entries}  # the plan is in dependency order


def test_a_suite_trains_from_s3_shards_to_the_in_memory_results(folder, shards, s3_server, tmp_path):
    params = {"image_size": 16, "val_size": 6}
    uri = upload(s3_server, shards)
    memory = _suite(tmp_path, "mem", {"name": "imagefolder", "root": str(folder)} | params)
    streamed = _suite(tmp_path, "s3", {"name": "shards", "root": uri, "cache_dir": str(tmp_path / "c")} | params)
    assert [e.job.kind for e in streamed.entries] == [e.job.kind for e in memory.entries]
    assert "teacher_outputs" in {e.job.kind for e in streamed.entries}  # the cached teacher reads the stream
    a, b = _train(memory, Store(tmp_path / "a")), _train(streamed, Store(tmp_path / "b"))
    assert a.keys() == b.keys()
    compared = 0
    for key in a:
        values = {**a[key].metrics, "final_train_loss": a[key].final_train_loss}
        for metric, value in values.items():
            if value is not None:  # the same batches and views: equal to float rounding
                got = b[key].metrics.get(metric) if metric in a[key].metrics else b[key].final_train_loss
                assert got == pytest.approx(value, abs=1e-6), (key, metric)
                compared += 1
    assert compared >= 6 and a[("student", "s")].final_train_loss > 0


def test_roots_that_travel(tmp_path, s3_server):
    missing = {"name": "shards", "root": str(tmp_path / "nowhere")}
    with pytest.raises(SpecError, match=r"dataset\.root.*no .*nowhere/manifest.json: not a shards folder"):
        _suite(tmp_path, "gone", missing)
    path = tmp_path / "gone.yaml"
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "note: not on this machine: no " in result.output and "nowhere/manifest.json" in result.output
    absent = {"name": "shards", "root": f"s3://{s3_server.bucket}/absent"}
    path.write_text(SUITE.format(name="gone", dataset=json.dumps(absent)))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "cannot read s3://" in result.output and "the jobs' machines read it" in result.output
    assert f"data: s3://{s3_server.bucket}/absent (read by the jobs' machines)" in result.output
    run = CliRunner().invoke(app, ["run", str(path), "--store", str(tmp_path / "st"), "--no-track"])
    assert run.exit_code == 2 and "cannot read s3://" in run.output  # where the jobs run: one line, no job


def test_a_replaying_teacher_cache_reads_the_stream_in_index_order(shards):
    data = load_dataset("shards", {"root": str(shards), "val_size": 0, "image_size": 16, "workers": 0})
    from kdbench.engine.teacher_outputs import _in_order

    idx = torch.cat([i for *_, i in _in_order(data.train, 7)])
    assert torch.equal(idx, torch.arange(36))


@pytest.mark.slow
def test_a_suite_through_ray_decodes_shards_in_worker_processes_of_its_trials(folder, shards, tmp_path, ray_local):
    """Ray's trials fork the DataLoader workers; the results are those of the same suite run job by job."""
    from kdbench.orchestrate.runner import RunOptions, run_suite

    params = {"image_size": 16, "val_size": 6, "workers": 1}
    plan = _suite(tmp_path, "ray", {"name": "shards", "root": str(shards)} | params)
    counts = run_suite(plan.suite.path, RunOptions(store=str(tmp_path / "ray_store"), track=False, num_cpus=2))
    assert (counts.failed, counts.run) == (0, len(plan))
    direct = _train(plan, Store(tmp_path / "direct"))
    for e in plan.entries:
        final = run_job(e.job, Store(tmp_path / "ray_store"))  # read back: finished, so its final.json
        assert final.metrics == pytest.approx(direct[(e.job.kind, e.student)].metrics, abs=1e-6)
