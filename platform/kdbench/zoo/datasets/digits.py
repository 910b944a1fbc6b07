"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes): offline, no download.

Split: stratified and fixed (seed 0) into 60 % train / 20 % validation / 20 % test, the same on
every machine. Pixels are scaled from 0..16 to 0..1. Shape (1, 8, 8) so MLPs and CNNs both fit.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from .base import DatasetParams, DataSplits, Split, register_dataset


class DigitsParams(DatasetParams):
    train_fraction: float = Field(default=1.0, gt=0.0, le=1.0)  # use a subset of the training split

    def describe(self):
        return (1, 8, 8), 10, max(10, round(1078 * self.train_fraction))


def _split(x: np.ndarray, y: np.ndarray) -> tuple[Split, ...]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=0)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=0)
    as_split = lambda i: Split(torch.from_numpy(x[i]), torch.from_numpy(y[i]))  # noqa: E731
    return as_split(np.sort(train)), as_split(np.sort(val)), as_split(np.sort(test))


@register_dataset("digits", DigitsParams)
def digits(p: DigitsParams) -> DataSplits:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    y = data.target.astype(np.int64)
    train, val, test = _split(x, y)
    if p.train_fraction < 1.0:
        n = max(10, round(len(train) * p.train_fraction))
        keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n].sort().values
        train = Split(train.x[keep], train.y[keep])
    return DataSplits(train, val, test, num_classes=10)
