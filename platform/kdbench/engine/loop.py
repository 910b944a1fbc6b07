"""One training epoch and evaluation. Metrics accumulate on the device; one sync per epoch."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from kdbench.errors import NonFiniteLoss
from kdbench.methods.base import Batch, Method, TrainState
from kdbench.zoo.datasets import Split
from kdbench.zoo.datasets.base import Augment

from .data import ordered_batches, shuffled_batches

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """The training step's mixed-precision context (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_AUTOCAST[precision])


def train_epoch(model: nn.Module, method: Method, teacher: nn.Module | None, split: Split,
                optimizer: torch.optim.Optimizer, batch_size: int, seed: int, state: TrainState,
                augment: Augment | None = None, epoch: int | None = None, *, precision: str = "fp32",
                channels_last: bool = False, scaler: torch.amp.GradScaler | None = None) -> dict:
    """`epoch`: the job's absolute epoch (init stage included), which seeds the order and the views.
    `precision`: autocast dtype of the forward passes and losses; `scaler`: loss scaling (fp16)."""
    model.train()
    method.train()
    sums: dict[str, torch.Tensor] = {}
    correct = torch.zeros((), device=split.y.device)
    epoch = state.epoch if epoch is None else epoch
    for x, y, idx in shuffled_batches(split, batch_size, seed, epoch):
        if augment is not None:
            x = augment(x, idx, seed, epoch)
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
        correct += (out.logits.argmax(1) == y).sum()
    n = len(split)
    metrics = {f"train_{k}": v / n for k, v in sums.items()}
    metrics["train_acc"] = correct / n
    metrics = {k: float(v) for k, v in metrics.items()}  # the epoch's one host-device sync
    if not all(map(torch.isfinite, map(torch.tensor, metrics.values()))):
        raise NonFiniteLoss(f"non-finite training loss in epoch {state.epoch + 1}: "
                            f"{ {k: v for k, v in metrics.items() if k.startswith('train_')} }")
    return metrics


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int = 1024) -> torch.Tensor:
    """Top-1 predictions of `model` over `split`, (N,)."""
    model.eval()
    preds = []
    for x, _ in ordered_batches(split, batch_size):
        out = model(x)
        logits = out.log_probs(1.0) if hasattr(out, "log_probs") else out.logits
        preds.append(logits.argmax(1))
    return torch.cat(preds)


def accuracy(preds: torch.Tensor, split: Split) -> torch.Tensor:
    return (preds == split.y).float().mean()
