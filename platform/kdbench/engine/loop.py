"""One training epoch and evaluation. Metrics accumulate on the device; one sync per epoch."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from kdbench.errors import NonFiniteLoss
from kdbench.methods.base import Batch, Method, TrainState
from kdbench.tasks import Task
from kdbench.zoo.datasets import Split
from kdbench.zoo.datasets.base import Augment, augment_batch

from .data import shuffled_batches

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """The training step's mixed-precision context (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_AUTOCAST[precision])


def train_epoch(model: nn.Module, method: Method, teacher: nn.Module | None, task: Task, split: Split,
                optimizer: torch.optim.Optimizer, batch_size: int, seed: int, state: TrainState,
                augment: Augment | None = None, epoch: int | None = None, *, precision: str = "fp32",
                channels_last: bool = False, scaler: torch.amp.GradScaler | None = None) -> dict:
    """`epoch`: the job's absolute epoch (init stage included), which seeds the order and the views.
    `precision`: autocast dtype of the forward passes and losses; `scaler`: loss scaling (fp16)."""
    model.train()
    method.train()
    sums: dict[str, torch.Tensor] = {}
    stats: dict[str, torch.Tensor] = {}
    epoch = state.epoch if epoch is None else epoch
    for x, y, idx in shuffled_batches(split, batch_size, seed, epoch):
        if augment is not None:
            x, y = augment_batch(augment, x, y, idx, seed, epoch)  # a masked-LM view also rewrites y
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(split.y.device, precision):
            out = model(x)
            t_out = teacher(x, idx, epoch) if teacher is not None else None  # idx, epoch: a cached teacher's row
            terms = method(Batch(x, y, idx), out, t_out, state)
            loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        n = y.shape[0]
        for k, v in (*terms.items(), ("loss", loss)):
            sums[k] = sums.get(k, 0) + v.detach().float() * n
        for k, v in task.batch_sums(out.logits.detach().float(), y).items():
            stats[k] = stats.get(k, 0) + v
    n = len(split)
    metrics = {f"train_{k}": v / n for k, v in sums.items()} | task.train_metrics(stats, n)
    metrics = {k: float(v) for k, v in metrics.items()}  # the epoch's one host-device sync
    if not all(map(torch.isfinite, map(torch.tensor, metrics.values()))):
        raise NonFiniteLoss(f"non-finite training loss in epoch {state.epoch + 1}: "
                            f"{ {k: v for k, v in metrics.items() if k.startswith('train_')} }")
    return metrics


def evaluate(task: Task, model: nn.Module, split: Split,
             fit_on: Split | None = None) -> tuple[torch.Tensor | None, dict]:
    """`model`'s predictions over `split` (N, K) and the task's metrics on them. `fit_on`: the split a task fits
    its read-out on first (`task.fit_split(data)`, e.g. a linear probe's; None for tasks without one). A
    `streamed` task (masked LM) is scored batch by batch and its predictions are not kept (None)."""
    if task.streamed and fit_on is None:
        return None, task.streamed_score(model, split)
    preds = task.predict_split(model, split)
    if fit_on is None:  # the two-argument call: a plugin task written before read-outs keeps working
        return preds, task.score(preds, split.y)
    return preds, task.score(preds, split.y, (task.predict_split(model, fit_on), fit_on.y))
