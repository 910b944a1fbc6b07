"""The `imagefolder` dataset on a tiny ImageNet-style folder written with PIL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdbench.suite import SpecError, load_suite
from kdbench.zoo.datasets import imagefolder as IF
from kdbench.zoo.datasets import load_dataset

# Written in unsorted order: labels must follow the sorted names (apple 0, mango 1, zebra 2).
CLASSES = {"zebra": (20, 20, 220), "apple": (220, 20, 20), "mango": (20, 200, 20)}
GREYS = {"zebra": 220, "apple": 40, "mango": 128}  # the class's colour in its greyscale ("L") image
SIZES = [(40, 30), (30, 40), (64, 64), (20, 20), (100, 50), (50, 100), (33, 47), (80, 60)]  # (w, h)
MEAN, STD = np.array(IF.IMAGENET_MEAN), np.array(IF.IMAGENET_STD)


def write_image(path: Path, i: int, name: str) -> None:
    """Image i of a class: 0 greyscale JPEG, 1 RGBA PNG, 2 RGB PNG, others RGB JPEG with varied extensions."""
    size = SIZES[i % len(SIZES)]
    if i == 0:
        im, ext = Image.new("L", size, GREYS[name]), ".jpg"
    elif i == 1:
        im, ext = Image.new("RGBA", size, (*CLASSES[name], 90)), ".png"
    else:
        im, ext = Image.new("RGB", size, CLASSES[name]), [".png", ".JPEG", ".jpeg", ".jpg"][i % 4 if i > 2 else 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path.with_name(f"{path.name}_{i}{ext}"), quality=95)


def write_folder(root: Path, train: int = 8, val: int = 3) -> Path:
    for name in CLASSES:
        for i in range(train):
            write_image(root / "train" / name / "img", i, name)
        for i in range(val):
            write_image(root / "val" / name / "img", i + 3, name)  # RGB of several sizes
    (root / "train" / "apple" / "notes.txt").write_text("not an image")  # skipped: wrong extension
    return root


def class_of(pixel: np.ndarray) -> int:
    """The class whose colour (or grey) is nearest to an un-normalised 0..255 RGB pixel."""
    names = sorted(CLASSES)
    refs = [(names.index(n), np.array(c)) for n, c in CLASSES.items()] + \
           [(names.index(n), np.full(3, g)) for n, g in GREYS.items()]
    return min(refs, key=lambda r: np.abs(r[1] - pixel).sum())[0]


def pixels(x: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) normalised -> (N, 3) 0..255 colour at each image's centre."""
    s = x.shape[-1] // 2
    return (x[:, :, s, s].numpy() * STD + MEAN) * 255


@pytest.fixture
def root(tmp_path) -> Path:
    return write_folder(tmp_path / "data")


def test_shapes_labels_and_splits(root):
    data = load_dataset("imagefolder", {"root": str(root), "image_size": 32, "val_size": 6})
    assert data.num_classes == 3 and data.input_shape == (3, 32, 32) and data.augment is not None
    assert (len(data.train), len(data.val), len(data.test)) == (18, 6, 9)
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert [class_of(p) for p in pixels(split.x)] == split.y.tolist()  # label = sorted class index
    assert torch.bincount(data.val.y).tolist() == [2, 2, 2]  # stratified
    assert torch.bincount(data.test.y).tolist() == [3, 3, 3]
    # Each image is solid, so its crop is one colour (JPEG: within a few levels).
    assert (data.test.x - data.test.x[:, :, :1, :1]).abs().max() < 0.1


def test_validation_images_are_disjoint_from_training_and_stratified(root):
    p = IF.ImageFolderParams(root=str(root), val_size=6)
    _, y = IF.list_images(root / "train", sorted(CLASSES))
    assert y.tolist() == [0] * 8 + [1] * 8 + [2] * 8  # notes.txt is not an image
    train, val = IF.pick_train_val(y, p)
    assert not set(train) & set(val) and sorted([*train, *val]) == list(range(24))
    assert np.bincount(y[val]).tolist() == [2, 2, 2]
    half, _ = IF.pick_train_val(y, p.model_copy(update={"train_fraction": 0.5}))
    assert set(half) <= set(train) and np.bincount(y[half]).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="val_size"):
        IF.pick_train_val(y, p.model_copy(update={"val_size": 24}))


def test_resize_shorter_side_then_centre_crop(tmp_path):
    im = np.zeros((50, 100, 3), np.uint8)  # (H, W): left half red, right half blue
    im[:, :50] = (255, 0, 0)
    im[:, 50:] = (0, 0, 255)
    Image.fromarray(im).save(tmp_path / "split.png")
    out = IF.decode(tmp_path / "split.png", 32)  # shorter side 50 -> round(32·8/7) = 37, so 100 -> 74
    assert out.shape == (3, 32, 32) and out.dtype == np.uint8
    # Crop columns 21..52 of 74; the halves meet at column 37 of 74, i.e. column 16 of the crop.
    assert (out[:, :, :15] == np.array([255, 0, 0])[:, None, None]).all()
    assert (out[:, :, 18:] == np.array([0, 0, 255])[:, None, None]).all()
    assert 0 < out[0, 0, 16] < 255  # bilinear: the boundary column is a blend


def test_normalisation_of_a_known_colour(tmp_path):
    Image.new("RGB", (9, 12), (255, 0, 128)).save(tmp_path / "c.png")
    split = IF.load_images([tmp_path / "c.png"], np.array([0]), 8)
    expected = (np.array([255, 0, 128]) / 255 - MEAN) / STD  # ≈ (2.249, -2.036, 0.426)
    assert torch.allclose(split.x[0], torch.tensor(expected, dtype=torch.float32).view(3, 1, 1), atol=1e-6)


def test_describe_counts_files_without_decoding(root):
    p = IF.ImageFolderParams(root=str(root), image_size=48, val_size=6, train_fraction=0.5)
    assert p.describe() == ((3, 48, 48), 3, 9)
    assert IF.ImageFolderParams(root=str(root)).describe() == ((3, 64, 64), 3, 0)  # val_size 50 > 24 images


SUITE = """\
name: folder
dataset:
  name: imagefolder
  root: {root}
  image_size: 32
recipe: {{epochs: 1}}
students:
  - {{name: s, arch: resnet18}}
methods: [none]
seeds: [0]
"""


def load(tmp_path, root):
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(SUITE.format(root=root)))
    return load_suite(str(path))


def check_fails(tmp_path, root, match: str) -> None:
    with pytest.raises(SpecError, match=match) as e:
        load(tmp_path, root)
    assert e.value.line == 4 and e.value.loc == ("dataset", "root") and "dataset.root" in str(e.value)


def test_a_wrong_folder_fails_when_the_suite_loads(tmp_path):
    root = tmp_path / "data"
    check_fails(tmp_path, root, "does not exist")
    write_folder(root)
    assert load(tmp_path, root).dataset.params["root"] == str(root)
    (root / "val").rename(root / "valid")
    check_fails(tmp_path, root, r"no folder .*val: .*ImageFolder layout")
    (root / "valid").rename(root / "val")
    (root / "val" / "mango").rename(root / "val" / "melon")
    check_fails(tmp_path, root, r"different classes: only in train \['mango'\], only in val \['melon'\]")


def test_a_job_trains_resnet18_on_the_folder(root, tmp_path):
    from kdbench.engine import run_job
    from kdbench.jobs import Component, Job
    from kdbench.store import Store
    from kdbench.suite.schema import Recipe

    params = IF.ImageFolderParams(root=str(root), image_size=32, val_size=6).model_dump(mode="json")
    job = Job("baseline", Component("imagefolder", params), Component("resnet18", {}),
              Recipe(epochs=1, batch_size=8).model_dump(mode="json"), Component("none", {}), seed=0)
    final = run_job(job, Store(tmp_path / "store"))
    assert 0.0 <= final["test_acc"] <= 1.0 and np.isfinite(final["final_train_loss"])
