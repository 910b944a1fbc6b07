"""Fused training: N jobs of one architecture trained as one vmapped model in one process.

Small students leave a GPU mostly idle: one resnet8 step launches hundreds of tiny kernels. Like HFTA
(Wang et al., MLSys 2021), the N models' parameters are stacked (`torch.func.stack_module_state`) and
one forward/backward runs all of them (`torch.vmap` over `torch.func.functional_call`), so each
kernel does N models' work. Each job keeps its own seed: its own initial weights, batch order,
augmented views and teacher, exactly as `run_job` would draw them, and the optimizer's update is
elementwise, so a fused job's result equals its separate run up to floating-point reassociation in
the batched kernels (tests/test_fused.py checks weights and accuracies against `run_job`).

What can be fused (`fusable` says why not otherwise): jobs of one kind (baseline or student), one
dataset, architecture, recipe and method with equal hyperparameters; a method that declares
`fusable = True` (none, kd, dkd, dist…: no modules or initialisation stage of its own, logits only,
vmap-safe ops); models
without active dropout (per-model random masks cannot be reproduced under vmap); no stop epoch or
snapshots. Jobs differ in seed and teacher. Batch norm is fine: the running statistics are stacked
like the weights and updated per model inside the vmapped forward.

A fused group writes every job's usual artifacts and final metrics but no per-epoch checkpoint: it
is meant for students whose epochs take seconds, and an interrupted group is trained again from its
first epoch.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

from kdbench import paths
from kdbench.errors import NonFiniteLoss
from kdbench.jobs import Job, JobFinal, Recipe
from kdbench.methods import METHODS
from kdbench.methods.base import Batch
from kdbench.outputs import TeacherOutput
from kdbench.store import Store
from kdbench.zoo.datasets import DataSplits
from kdbench.zoo.datasets.base import augment_batch

from .data import dataset_on, shuffled_batches
from .loop import evaluate
from .optim import build_optimizer, build_scheduler
from .run import Training, _augment, _finish, _setup, _stage


def fusable(jobs: list[Job]) -> str | None:
    """None when `jobs` can train as one fused group, else the reason they cannot."""
    if not jobs:
        return "no jobs"
    first = jobs[0]
    same = ("kind", "dataset", "model", "recipe", "method", "combine")
    for job in jobs[1:]:
        for attr in same:
            if getattr(job, attr) != getattr(first, attr):
                return f"jobs differ in {attr}: only seeds and teachers may differ"
    if first.kind not in ("baseline", "student"):
        return f"{first.kind} jobs are not fused"
    if not METHODS.get(first.method.name).fusable:
        return f"method {first.method.name} declares fusable = False"
    if any(j.stop_epoch or getattr(j, "snapshots", ()) for j in jobs):
        return "jobs with a stop epoch or snapshots are not fused"
    if first.recipe.precision != "fp32" or first.recipe.channels_last:
        return "mixed precision and channels-last jobs are not fused"
    if len({len(j.teachers) for j in jobs}) > 1:
        return "jobs differ in their number of teachers"
    if any((j.replay or {}).get("tail") == "lumped" for j in jobs):  # the fused step stacks dense member logits
        return "jobs reading a lumped top-k teacher cache are not fused"
    return None


def _model_reason(run: Training) -> str | None:
    if any(isinstance(m, nn.Dropout) and m.p > 0 for m in run.model.modules()):
        return f"{type(run.model).__name__} uses dropout: per-model random masks cannot be reproduced"
    if getattr(run.model, "stochastic_forward", False):  # e.g. variational layers sampling their activations
        return f"{type(run.model).__name__} samples noise in its forward: per-model draws cannot be reproduced"
    method = run.method
    needs = method.needs
    if needs.features or needs.indices or any(True for _ in method.parameters()) or method.init_epochs:
        # A wrong declaration: the fused step feeds logits alone and optimises the models' parameters only.
        return (f"method {method.name} declares fusable = True but reads feature taps or sample indices, or has "
                "modules or an initialisation stage of its own: declare fusable = False")
    return None


class FusedGroup:
    """The stacked parameters of N equal architectures and one optimizer over them."""

    def __init__(self, runs: list[Training], recipe: Recipe) -> None:
        self.runs = runs
        self.base = copy.deepcopy(runs[0].model).to("meta")  # the architecture; weights come from `params`
        params, buffers = stack_module_state([r.model for r in runs])
        self.params = {k: v.detach().requires_grad_() for k, v in params.items()}
        self.buffers = buffers  # batch-norm running statistics, (N, …) each, updated in place per model
        self.optimizer = build_optimizer(list(self.params.values()), recipe.optimizer)
        self.scheduler = build_scheduler(self.optimizer, recipe)
        self.method = runs[0].method

    def losses(self, x, y, idx, t_logits, combine, state):
        """Per-model loss terms, (N,) each, and logits, (N, B, K)."""

        def one(params, buffers, x, y, idx, t_logits):
            out = functional_call(self.base, (params, buffers), (x,))
            teacher = None if t_logits is None else TeacherOutput(t_logits, combine or "arithmetic")
            terms = self.method(Batch(x, y, idx), out, teacher, state)
            return terms, out.logits

        self.base.train()
        in_dims = (0, 0, 0, 0, 0, None if t_logits is None else 0)
        return torch.vmap(one, in_dims=in_dims, randomness="error")(self.params, self.buffers, x, y, idx, t_logits)

    @torch.no_grad()
    def unstack(self) -> None:
        """Copy each model's slice of the stacked parameters and buffers into its own module (for eval
        and saving)."""
        for i, run in enumerate(self.runs):
            for name, p in run.model.named_parameters():
                p.copy_(self.params[name][i])
            for name, b in run.model.named_buffers():
                b.copy_(self.buffers[name][i])


def train_fused(jobs: list[Job], store: Store, *, device: str | torch.device = "cpu") -> list[JobFinal]:
    """Train `jobs` as one fused group; returns each job's final metrics, as `run_job` would."""
    reason = fusable(jobs)
    if reason is not None:
        raise ValueError(f"cannot fuse these jobs: {reason}")
    start = time.perf_counter()
    device = torch.device(device)
    data = dataset_on(jobs[0].dataset, device)
    runs = []
    for job in jobs:  # each job draws its initial weights from its own seed, as run_job does
        torch.manual_seed(job.seed)
        runs.append(_setup(job, store, data, device))
    reason = _model_reason(runs[0])
    if reason is not None:
        raise ValueError(f"cannot fuse these jobs: {reason}")
    group = FusedGroup(runs, jobs[0].recipe)
    for epoch in range(jobs[0].recipe.epochs):
        _fused_epoch(jobs, group, data, epoch)
    finals = []
    for job, run in zip(jobs, runs, strict=True):
        final = _finish(job, store, run, data, wall_seconds=time.perf_counter() - start, device=str(device))
        final = dataclasses.replace(final, counters={**final.counters, "fused": len(jobs)})
        store.write_bytes(paths.artifact(job.job_id, paths.HISTORY), json.dumps(run.history).encode())
        store.write_bytes(paths.artifact(job.job_id, paths.FINAL), final.to_json())
        finals.append(final)
    return finals


def _fused_epoch(jobs: list[Job], group: FusedGroup, data: DataSplits, epoch: int) -> None:
    t0 = time.perf_counter()
    runs, first = group.runs, jobs[0]
    state = _stage(runs[0], first, epoch)
    for r in runs:
        r.model.train()
        r.method.train()
    augments = [_augment(r, data) if first.recipe.augment else None for r in runs]  # one recipe
    batches = [shuffled_batches(data.train, first.recipe.batch_size, j.seed, epoch) for j in jobs]
    sums: dict[str, torch.Tensor] = {}
    stats: dict[str, torch.Tensor] = {}  # the task's per-model batch sums, (N,) each
    task = runs[0].task
    for step in zip(*batches, strict=True):
        xs, ys, idxs, t_logits = [], [], [], []
        for (x, y, idx), job, run, aug in zip(step, jobs, runs, augments, strict=True):
            if aug is not None:
                x, y = augment_batch(aug, x, y, idx, job.seed, epoch)
            xs.append(x)
            ys.append(y)
            idxs.append(idx)
            if run.teacher is not None:
                t_logits.append(run.teacher(x, idx, epoch).member_logits)
        x, y, idx = torch.stack(xs), torch.stack(ys), torch.stack(idxs)
        terms, logits = group.losses(x, y, idx, torch.stack(t_logits) if t_logits else None, first.combine, state)
        loss = sum(terms.values())  # (N,)
        group.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()  # the models are independent: each gets its own loss's gradient
        group.optimizer.step()
        n = y.shape[1]
        for k, v in (*terms.items(), ("loss", loss)):
            sums[k] = sums.get(k, 0) + v.detach() * n
        for k, v in torch.vmap(task.batch_sums)(logits.detach(), y).items():
            stats[k] = stats.get(k, 0) + v
    total = len(data.train)
    per_job = {f"train_{k}": v / total for k, v in sums.items()} | task.train_metrics(stats, total)
    per_job = {k: v.tolist() for k, v in per_job.items()}  # the epoch's one sync
    if not all(torch.isfinite(torch.tensor(v)).all() for v in per_job.values()):
        raise NonFiniteLoss(f"non-finite training loss in epoch {epoch + 1} of a fused group")
    lr = group.optimizer.param_groups[0]["lr"]
    group.scheduler.step()
    group.unstack()
    for i, run in enumerate(runs):
        fit_on = task.fit_split(data)  # a read-out's labelled split (a linear probe's), None for most tasks
        val = evaluate(task, run.model, data.val, fit_on)[1] if len(data.val) else {}  # none: `protocol: paper`
        if val:
            run.keep_if_best(val, state.epoch + 1)
        metrics = {k: v[i] for k, v in per_job.items()}
        metrics.update(lr=lr, epoch=epoch + 1, stage_epoch=state.epoch + 1, epoch_seconds=time.perf_counter() - t0,
                       **{f"val_{k}": v for k, v in val.items()})
        run.history.append(metrics)
        run.epoch = epoch + 1
