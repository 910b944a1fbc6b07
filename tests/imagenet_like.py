"""A generated ImageNet-like folder (torchvision's ImageFolder layout) for the timm/torchvision model tests.

Each class is a colour (its index spread over the hue circle) with a class-dependent stripe, plus noise, so
that a network can tell them apart after one epoch; every image is a 64×64 JPEG.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image


def write_imagenet_like(root: Path, classes: int = 10, train: int = 24, val: int = 6, size: int = 64,
                        seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c in range(classes):
        rgb = np.array(colorsys.hsv_to_rgb(c / classes, 0.8, 0.9)) * 255
        for split, n in (("train", train), ("val", val)):
            folder = root / split / f"n{c:08d}"  # WordNet-id-like names, as ImageNet's
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.clip(rgb + rng.normal(0, 25, (size, size, 3)), 0, 255)
                img[:, (c * size) // classes: (c * size) // classes + 4] = 255  # the class's stripe
                Image.fromarray(img.astype(np.uint8)).save(folder / f"{split}_{i}.JPEG", quality=90)
    return root
