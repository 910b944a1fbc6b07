"""Synthetic teacher–student data: Gaussian inputs labelled by a fixed random network.

x ~ N(0, I_dim); y = argmax(f(x)) where f is a random two-layer tanh network drawn from
`data_seed`; a fraction `label_noise` of labels is replaced by uniform random classes. Everything
is a deterministic function of the parameters, so every machine sees the same data.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .base import DatasetParams, DataSplits, Split, register_dataset


class SyntheticParams(DatasetParams):
    n_train: int = Field(default=2000, gt=0)
    n_val: int = Field(default=500, gt=0)
    n_test: int = Field(default=1000, gt=0)
    dim: int = Field(default=20, gt=0)
    num_classes: int = Field(default=5, ge=2)
    hidden: int = Field(default=64, gt=0)
    label_noise: float = Field(default=0.0, ge=0.0, lt=1.0)
    data_seed: int = 0

    def describe(self):
        return (self.dim,), self.num_classes, self.n_train


@register_dataset("synthetic", SyntheticParams)
def synthetic(p: SyntheticParams) -> DataSplits:
    g = torch.Generator().manual_seed(p.data_seed)
    w1 = torch.randn(p.dim, p.hidden, generator=g) / p.dim**0.5
    w2 = torch.randn(p.hidden, p.num_classes, generator=g) / p.hidden**0.5
    n = p.n_train + p.n_val + p.n_test
    x = torch.randn(n, p.dim, generator=g)
    y = (torch.tanh(x @ w1) @ w2).argmax(1)
    noisy = torch.rand(n, generator=g) < p.label_noise
    y = torch.where(noisy, torch.randint(p.num_classes, (n,), generator=g), y)
    a, b = p.n_train, p.n_train + p.n_val
    return DataSplits(Split(x[:a], y[:a]), Split(x[a:b], y[a:b]), Split(x[b:], y[b:]), p.num_classes)
