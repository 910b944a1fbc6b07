"""MNIST / CIFAR readers, splits and augmentation, on tiny files written in the official formats."""

from __future__ import annotations

import gzip
import os
import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from kdbench.suite import SpecError, load_suite
from kdbench.zoo.datasets import files as F
from kdbench.zoo.datasets import load_dataset
from kdbench.zoo.datasets import vision as V
from kdbench.zoo.datasets.augment import crop_flip, mix64, mix64_int

N_TRAIN, N_TEST = 20, 10


# ---- writers of the official formats ------------------------------------------------------------------

def write_idx(path: Path, a: np.ndarray) -> None:
    """idx: 0, 0, type 0x08 (uint8), ndim, then big-endian int32 sizes and the bytes."""
    raw = bytes([0, 0, 0x08, a.ndim]) + np.asarray(a.shape, ">i4").tobytes() + a.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def images(n: int, seed: int, shape=(3, 32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def labels(n: int, classes: int = 5) -> np.ndarray:
    return np.arange(n) % classes  # 4 of each of 5 classes in 20


def write_mnist(root: Path, gz: bool = True) -> dict:
    data = {"train": (images(N_TRAIN, 1, (28, 28)), labels(N_TRAIN)), "t10k": (images(N_TEST, 2, (28, 28)),
                                                                                labels(N_TEST))}
    ext = ".gz" if gz else ""
    for prefix, (x, y) in data.items():
        write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", x)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", y)
    return data


def cifar_data() -> dict:
    return {"train": (images(N_TRAIN, 3), labels(N_TRAIN)), "test": (images(N_TEST, 4), labels(N_TEST))}


def dump(path: Path, obj, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def write_cifar10_py(root: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> dict:
    data, d = cifar_data(), root / "cifar-10-batches-py"
    (x, y), (xt, yt) = data["train"], data["test"]
    for i in range(5):  # the official files: 5 training batches, labels a list, data (N, 3072) uint8
        part = slice(4 * i, 4 * i + 4)
        dump(d / f"data_batch_{i + 1}", {b"batch_label": f"training batch {i + 1} of 5".encode(),
                                         b"labels": y[part].tolist(), b"data": x[part].reshape(4, -1),
                                         b"filenames": [b"x.png"] * 4}, protocol)
    dump(d / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": yt.tolist(),
                            b"data": xt.reshape(N_TEST, -1), b"filenames": [b"x.png"] * N_TEST}, protocol)
    return data


def write_cifar100_py(root: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> dict:
    data, d = cifar_data(), root / "cifar-100-python"
    for name, (x, y) in data.items():
        dump(d / name, {b"filenames": [b"x.png"] * len(y), b"batch_label": name.encode(), b"fine_labels": y.tolist(),
                        b"coarse_labels": (y // 5).tolist(), b"data": x.reshape(len(y), -1)}, protocol)
    return data


def write_cifar_bin(root: Path, classes: int) -> dict:
    data = cifar_data()
    folder, names = ("cifar-10-batches-bin", {"train": "data_batch_{}.bin", "test": "test_batch.bin"}) \
        if classes == 10 else ("cifar-100-binary", {"train": "train.bin", "test": "test.bin"})
    (root / folder).mkdir(parents=True)
    for split, (x, y) in data.items():
        label_bytes = y[:, None] if classes == 10 else np.stack([y // 5, y], 1)  # CIFAR-100: coarse, then fine
        records = np.concatenate([label_bytes.astype(np.uint8), x.reshape(len(y), -1)], 1)  # (N, 1|2 + 3072)
        if split == "train" and classes == 10:
            for i in range(5):
                (root / folder / names["train"].format(i + 1)).write_bytes(records[4 * i:4 * i + 4].tobytes())
        else:
            (root / folder / names[split]).write_bytes(records.tobytes())
    return data


# ---- augmentation -----------------------------------------------------------------------------------------

def test_tensor_splitmix64_matches_the_python_reference():
    values = [0, 1, 2, -1, 2**63 - 1, -(2**63), 123456789012345678, -987654321]
    got = mix64(torch.tensor(values, dtype=torch.int64)).tolist()
    assert [g & (2**64 - 1) for g in got] == [mix64_int(v) for v in values]


def test_a_samples_view_depends_on_seed_epoch_and_index_only():
    aug = crop_flip(4)
    x = torch.randn(64, 3, 8, 8)
    whole = aug(x, torch.arange(64), 7, 3)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:20]  # another batch, another order
    assert torch.equal(aug(x[perm], perm, 7, 3), whole[perm])
    assert torch.equal(aug(x, torch.arange(64), 7, 3), whole)
    changed = lambda other: (other != whole).flatten(1).any(1).float().mean()  # noqa: E731
    assert changed(aug(x, torch.arange(64), 7, 4)) > 0.8  # another epoch: other views
    assert changed(aug(x, torch.arange(64), 8, 3)) > 0.8  # another seed: other views


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_view_is_a_window_of_the_padded_image_maybe_flipped(dtype):
    pad, fill = 4, (-1.5, 0.25)
    x = torch.randn(16, 2, 6, 7, dtype=dtype)
    out = crop_flip(pad, fill)(x, torch.arange(100, 116), 0, 0)
    assert out.shape == x.shape and out.dtype == dtype
    padded = np.stack([np.pad(x[:, c].numpy(), ((0, 0), (pad, pad), (pad, pad)), constant_values=v)
                       for c, v in enumerate(fill)], 1)  # (B, C, H+8, W+8)
    for i in range(16):
        views = [w[..., ::-1] if f else w for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for f in (0, 1)
                 for w in [padded[i, :, dy:dy + 6, dx:dx + 7]]]
        assert sum(np.array_equal(out[i].numpy(), v) for v in views) == 1


def test_offsets_are_uniform_and_half_the_views_are_flipped():
    n, size = 4000, 9
    x = (torch.arange(size * size, dtype=torch.float32) + 1).view(1, 1, size, size).repeat(n, 1, 1, 1)
    out = crop_flip(4)(x, torch.arange(n), 3, 1)
    centre = out[:, 0, 4, 4].long() - 1  # the centre of an odd window survives the flip: it gives (dy, dx)
    for offsets in (centre // size, centre % size):
        share = torch.bincount(offsets, minlength=9).float() / n
        assert share.min() > 0.08 and share.max() < 0.14  # 1/9 ≈ 0.111 each
    unflipped = crop_flip(0)(x, torch.arange(n), 3, 1)  # no padding: each view is the image or its mirror
    flipped = (unflipped == x.flip(-1)).flatten(1).all(1).float().mean()
    assert abs(float(flipped) - 0.5) < 0.03
    assert torch.equal(crop_flip(0, flip=False)(x, torch.arange(n), 3, 1), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_views_on_the_gpu_equal_those_on_the_cpu():
    x, idx = torch.randn(256, 3, 32, 32), torch.arange(1000, 1256)
    aug = crop_flip(4, (-1.9, -1.9, -1.6))
    assert torch.equal(aug(x.cuda(), idx.cuda(), 5, 2).cpu(), aug(x, idx, 5, 2))


# ---- readers -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout,gz", [("MNIST/raw", True), ("", False)])
def test_mnist_idx_files_are_read_in_both_layouts(tmp_path, layout, gz):
    data = write_mnist(tmp_path / layout, gz)
    x, y = F.read_mnist(tmp_path, train=True)
    assert x.shape == (N_TRAIN, 1, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(x[:, 0], data["train"][0]) and np.array_equal(y, data["train"][1])
    assert F.read_mnist(tmp_path, train=False)[0].shape == (N_TEST, 1, 28, 28)


def test_a_file_with_the_wrong_magic_is_corrupt(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04rest"))
    with pytest.raises(F.DatasetCorrupt, match="not an idx file"):
        F.read_mnist(tmp_path, train=True)


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_python_version_is_read(tmp_path, classes, protocol):
    data = (write_cifar10_py if classes == 10 else write_cifar100_py)(tmp_path, protocol)
    layout = F.CIFAR10 if classes == 10 else F.CIFAR100
    for split, train in (("train", True), ("test", False)):
        x, y = F.read_cifar(tmp_path, layout, train)
        assert x.shape == (len(y), 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
        assert np.array_equal(x, data[split][0]) and np.array_equal(y, data[split][1])  # fine labels for 100


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_binary_version_is_read(tmp_path, classes):
    data = write_cifar_bin(tmp_path, classes)
    x, y = F.read_cifar(tmp_path, F.CIFAR10 if classes == 10 else F.CIFAR100, train=True)
    assert np.array_equal(x, data["train"][0]) and np.array_equal(y, data["train"][1])


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    dump(tmp_path / "cifar-100-python" / "train", {b"data": Evil(marker)})
    dump(tmp_path / "cifar-100-python" / "test", {b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [0]})
    with pytest.raises(F.DatasetCorrupt, match=r"refusing to load global (posix|os|nt)\.system"):
        F.read_cifar(tmp_path, F.CIFAR100, train=True)
    assert not marker.exists()
    dump(tmp_path / "other", [eval, "1"])
    with pytest.raises(F.DatasetCorrupt, match="builtins.eval"):
        F.load_pickle(tmp_path / "other")


def test_missing_data_names_the_paths_and_where_to_get_it(tmp_path):
    with pytest.raises(F.DatasetMissing) as e:
        F.read_cifar(tmp_path, F.CIFAR100, train=True)
    assert isinstance(e.value, FileNotFoundError)
    assert str(tmp_path / "cifar-100-python") in str(e.value) and F.CIFAR_URL in str(e.value)
    with pytest.raises(F.DatasetMissing, match="ossci-datasets") as e:
        F.read_mnist(tmp_path, train=False)
    assert str(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte") in str(e.value)


# ---- registered datasets -----------------------------------------------------------------------------------

def test_cifar100_splits_shapes_and_normalisation(tmp_path):
    raw = write_cifar100_py(tmp_path)
    d = load_dataset("cifar100", {"root": str(tmp_path), "val_size": 5})
    assert (len(d.train), len(d.val), len(d.test)) == (15, 5, 10)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 100 and d.augment is not None
    assert d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64
    assert torch.equal(d.test.y, torch.from_numpy(raw["test"][1]))
    xt = raw["test"][0]  # the test set keeps the file's order
    for i, c, r, k in [(0, 0, 0, 0), (3, 1, 5, 17), (9, 2, 31, 31)]:
        expected = (xt[i, c, r, k] / 255 - V.CIFAR100_MEAN[c]) / V.CIFAR100_STD[c]
        assert float(d.test.x[i, c, r, k]) == pytest.approx(expected, abs=1e-5)
    assert load_dataset("cifar100", {"root": str(tmp_path), "val_size": 5, "augment": False}).augment is None


def raw_rows(split, mean, std) -> list[bytes]:
    """Each normalised image back to its uint8 bytes, to find where it came from."""
    m, s = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    return [bytes(row) for row in ((split.x * s + m) * 255).round().to(torch.uint8).flatten(1).numpy()]


def test_the_validation_split_is_stratified_fixed_and_disjoint_from_train(tmp_path):
    raw = write_cifar10_py(tmp_path)
    d = load_dataset("cifar10", {"root": str(tmp_path), "val_size": 10})
    where = {bytes(r): i for i, r in enumerate(raw["train"][0].reshape(N_TRAIN, -1))}
    train = [where[r] for r in raw_rows(d.train, V.CIFAR10_MEAN, V.CIFAR10_STD)]
    val = [where[r] for r in raw_rows(d.val, V.CIFAR10_MEAN, V.CIFAR10_STD)]
    assert sorted(train + val) == list(range(N_TRAIN))  # disjoint and complete
    assert torch.bincount(d.val.y, minlength=5).tolist() == [2] * 5  # 10 of 20, 5 classes of 4 each
    assert torch.equal(d.val.y, torch.from_numpy(raw["train"][1][val]))
    again = load_dataset("cifar10", {"root": str(tmp_path), "val_size": 10})
    assert torch.equal(again.val.x, d.val.x) and torch.equal(again.train.x, d.train.x)
    half = load_dataset("cifar10", {"root": str(tmp_path), "val_size": 10, "train_fraction": 0.5})
    assert len(half.train) == 5 and torch.equal(half.val.x, d.val.x)
    with pytest.raises(ValueError, match="val_size"):
        load_dataset("cifar10", {"root": str(tmp_path), "val_size": N_TRAIN})


def test_stratified_pick_keeps_class_shares():
    y = np.repeat(np.arange(3), [50, 30, 20])
    picked = V.stratified_pick(y, 10, salt=1)
    assert np.bincount(y[picked]).tolist() == [5, 3, 2] and len(set(picked)) == 10
    assert np.array_equal(picked, V.stratified_pick(y, 10, salt=1))
    assert not np.array_equal(picked, V.stratified_pick(y, 10, salt=2))


def test_mnist_is_normalised_and_unaugmented_by_default(tmp_path):
    raw = write_mnist(tmp_path / "MNIST" / "raw")
    d = load_dataset("mnist", {"root": str(tmp_path), "val_size": 5})
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10 and d.augment is None
    expected = (raw["t10k"][0][2, 7, 9] / 255 - 0.1307) / 0.3081
    assert float(d.test.x[2, 0, 7, 9]) == pytest.approx(expected, abs=1e-5)
    assert load_dataset("mnist", {"root": str(tmp_path), "val_size": 5, "augment": True}).augment is not None


def test_the_data_root_defaults_to_the_environment(tmp_path, monkeypatch):
    write_cifar100_py(tmp_path)
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(tmp_path))
    assert V.Cifar100Params().root == str(tmp_path)
    monkeypatch.delenv("KDBENCH_DATA_ROOT")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"dataset folder \./data does not exist"):
        V.Cifar100Params()


SUITE = """\
name: vision
dataset:
  name: cifar100
  root: {root}
recipe: {{epochs: 1}}
students:
  - {{name: s, arch: resnet8}}
methods: [none]
seeds: [0]
"""


def test_a_suite_naming_a_missing_folder_fails_at_load_with_line_and_field(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(SUITE.format(root=tmp_path / "nowhere")))
    with pytest.raises(SpecError) as e:
        load_suite(str(path))
    assert e.value.line == 4 and e.value.loc == ("dataset", "root")
    assert "dataset.root" in str(e.value) and "does not exist" in str(e.value) and F.CIFAR_URL in str(e.value)
    path.write_text(textwrap.dedent(SUITE.format(root=tmp_path)))  # the folder exists, the files do not
    with pytest.raises(SpecError, match="dataset.root: no CIFAR-100 files under"):
        load_suite(str(path))
    write_cifar100_py(tmp_path)
    assert load_suite(str(path)).dataset.params["root"] == str(tmp_path)


def test_a_job_trains_on_cifar100_files_with_augmentation(tmp_path):
    from kdbench.engine import run_job
    from kdbench.engine.data import dataset_on
    from kdbench.jobs import Component, Job
    from kdbench.store import Store
    from kdbench.suite.schema import Recipe

    write_cifar100_py(tmp_path / "data")
    params = V.Cifar100Params(root=str(tmp_path / "data"), val_size=5).model_dump(mode="json")
    job = Job("baseline", Component("cifar100", params), Component("resnet8", {}),
              Recipe(epochs=1, batch_size=8).model_dump(mode="json"), Component("none", {}), seed=0)
    assert dataset_on(job.dataset, torch.device("cpu")).augment is not None
    final = run_job(job, Store(tmp_path / "store"))
    assert 0.0 <= final["test_acc"] <= 1.0 and np.isfinite(final["final_train_loss"])
