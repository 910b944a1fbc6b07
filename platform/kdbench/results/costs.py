"""Model costs for the efficiency view, measured once per (architecture, input, machine) and kept in the
store, so a leaderboard over 10,000 jobs of 50 architectures measures 50 models once, ever:

    <store>/costs/<sha256 of [arch, arch params, input shape, classes, device tag]>.json

Each file holds `kdbench.zoo.models.cost.model_cost` (parameters, forward FLOPs per sample, batch-1 latency
in ms) and where and with what it was measured. A store that cannot be written still gets its costs
(measured again next time).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable
from functools import cache

from kdbench import paths
from kdbench.store import Store

log = logging.getLogger("kdbench.results")

# (architecture, its parameters as canonical JSON, dataset, the dataset's parameters as canonical JSON)
ModelKey = tuple[str, str, str, str]


@cache
def describe(dataset: str, params_json: str) -> tuple[tuple[int, ...], int] | None:
    """(input shape, classes) of a dataset without loading it; None when it cannot tell (or is not here)."""
    from kdbench.zoo.datasets import DATASETS

    try:
        described = DATASETS.get(dataset).params(**json.loads(params_json or "{}")).describe()
    except Exception as e:  # e.g. an image folder that is not on this machine
        log.info("no input shape for dataset %s: %s", dataset, e)
        return None
    return None if described is None else (tuple(described[0]), described[1])


def cost_path(key: ModelKey, shape: tuple[int, ...], classes: int, device: str) -> str:
    arch, params, _, _ = key
    digest = hashlib.sha256(json.dumps([arch, params, list(shape), classes, device]).encode()).hexdigest()
    return paths.cost(digest[:32])


def model_costs(store: Store, keys: Iterable[ModelKey], device: str = "cpu") -> dict[ModelKey, dict]:
    """{key: {params, flops, latency_ms, device, …}} for every distinct key whose dataset can describe its
    input; measured (on `device`, one thread) only when the store does not have it yet."""
    import torch

    from kdbench.zoo.models.cost import device_tag, model_cost

    tag = device_tag(device)
    out: dict[ModelKey, dict] = {}
    for key in dict.fromkeys(keys):
        arch, params, dataset, dataset_params = key
        described = describe(dataset, dataset_params)
        if described is None or not arch:
            continue
        shape, classes = described
        path = cost_path(key, shape, classes, tag)
        data = store.read_bytes(path)
        if data is not None:
            out[key] = json.loads(data)
            continue
        try:
            cost = model_cost(arch, json.loads(params or "{}"), shape, classes, device=device)
        except Exception as e:  # an architecture that no longer builds (e.g. a plugin not imported): no cost
            log.warning("cannot measure %s %s: %s", arch, params, e)
            continue
        cost.update(arch=arch, arch_params=params, input_shape=list(shape), num_classes=classes, device=tag,
                    torch_version=torch.__version__, measured_at=dt.datetime.now(dt.UTC).isoformat())
        try:
            store.write_bytes(path, json.dumps(cost).encode())
        except OSError as e:
            log.warning("could not keep the measured cost of %s in the store: %s", arch, e)
        out[key] = cost
    return out
