"""Synthetic teacher–student regression data (the `regression` task): Gaussian inputs, targets from a fixed
random network.

x ~ N(0, I_dim); y = f(x) + ε, f a random two-layer tanh network with `targets` outputs drawn from
`data_seed`, ε ~ N(0, noise²). Everything is a deterministic function of the parameters.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from .base import DatasetParams, DataSplits, Split, register_dataset


class SyntheticRegressionParams(DatasetParams):
    task: ClassVar[str] = "regression"
    n_train: int = Field(default=2000, gt=0)
    n_val: int = Field(default=500, gt=0)
    n_test: int = Field(default=1000, gt=0)
    dim: int = Field(default=20, gt=0)
    targets: int = Field(default=1, ge=1)
    hidden: int = Field(default=64, gt=0)
    noise: float = Field(default=0.1, ge=0.0)
    data_seed: int = 0

    def describe(self):
        return (self.dim,), self.targets, self.n_train


@register_dataset("synthetic_regression", SyntheticRegressionParams)
def synthetic_regression(p: SyntheticRegressionParams) -> DataSplits:
    g = torch.Generator().manual_seed(p.data_seed)
    w1 = torch.randn(p.dim, p.hidden, generator=g) / p.dim**0.5
    w2 = torch.randn(p.hidden, p.targets, generator=g) * 2 / p.hidden**0.5
    n = p.n_train + p.n_val + p.n_test
    x = torch.randn(n, p.dim, generator=g)
    y = torch.tanh(x @ w1) @ w2 + p.noise * torch.randn(n, p.targets, generator=g)  # (N, K)
    a, b = p.n_train, p.n_train + p.n_val
    return DataSplits(Split(x[:a], y[:a]), Split(x[a:b], y[a:b]), Split(x[b:], y[b:]), p.targets)
