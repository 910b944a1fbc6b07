"""Datasets for the engine: loaded once per process and kept on the device; batches are index slices."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import torch

from kdbench.jobs import Component, canonical_json
from kdbench.zoo.datasets import DataSplits, Split, load_dataset


@lru_cache(maxsize=8)
def _load(name: str, params_json: str, device: str) -> DataSplits:
    import json

    if device == "cpu":
        return load_dataset(name, json.loads(params_json))
    return _load(name, params_json, "cpu").to(device)


def dataset_on(component: Component, device: torch.device) -> DataSplits:
    """The dataset's splits on `device`; repeated jobs in one worker process reuse them."""
    return _load(component.name, canonical_json(component.params), str(device))


def shuffled_batches(split: Split, batch_size: int, seed: int, epoch: int) -> Iterator[tuple]:
    """(x, y, index) batches in an order that is a function of (seed, epoch) alone, so a resumed
    job sees exactly the batches an uninterrupted one would. The last short batch is kept. A split streamed
    from shards makes its batches itself, in the same order (zoo/datasets/shard_stream.py)."""
    if hasattr(split, "batches"):
        yield from split.batches(batch_size, seed, epoch)
        return
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(split), generator=g).to(split.y.device)
    for start in range(0, len(split), batch_size):
        idx = order[start:start + batch_size]
        yield split.x[idx], split.y[idx], idx


def ordered_batches(split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) batches in index order; a streamed split's from its workers."""
    from kdbench.tasks.base import split_batches

    return split_batches(split, batch_size)
