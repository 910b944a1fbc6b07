"""Optimizer and per-epoch learning-rate schedule from a recipe."""

from __future__ import annotations

import math

import torch

from kdbench.jobs import Optimizer, Recipe, Schedule


def build_optimizer(params, opt: Optimizer) -> torch.optim.Optimizer:
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay,
                               nesterov=opt.nesterov)
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)  # the schema allows no other


def lr_factor(epoch: int, epochs: int, schedule: Schedule) -> float:
    """Multiplier of the base learning rate during `epoch` (0-based)."""
    warm = schedule.warmup_epochs
    if epoch < warm:
        return (epoch + 1) / (warm + 1)
    if schedule.name == "cosine":
        progress = (epoch - warm) / max(1, epochs - warm)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule.name == "step":
        return schedule.gamma ** sum(epoch >= m for m in schedule.milestones)
    return 1.0


def build_scheduler(optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, recipe.epochs, recipe.schedule))
