"""Teachers for a student job: the upstream jobs' selected weights, frozen in eval mode."""

from __future__ import annotations

import torch
from torch import nn

from kdbench.engine import checkpoint
from kdbench.engine.errors import CorruptArtifact, MissingUpstream
from kdbench.methods.base import TeacherOutput
from kdbench.spec.job import Job
from kdbench.store import Store
from kdbench.zoo.models import create_model

MODEL_FILE = "model.pt"  # a job's selected weights, read by its downstream jobs


def snapshot_file(epoch: int) -> str:
    """A teacher's weights after `epoch` (Job.snapshots), same checkpoint format as MODEL_FILE."""
    return f"epoch_{epoch}.pt"


def weights_file(up) -> str:
    """The file of an upstream's weights: its result, or its snapshot when the upstream names an epoch."""
    return MODEL_FILE if up.epoch is None else snapshot_file(up.epoch)


class Teacher(nn.Module):
    """One teacher or an ensemble; `forward` returns a TeacherOutput, never tracks gradients."""

    def __init__(self, members: list[nn.Module], combine: str | None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.combine = combine or "arithmetic"
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)  # a teacher stays in eval mode (dropout off, BN frozen)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> TeacherOutput:
        outs = [m(x) for m in self.members]
        features = outs[0].features if len(outs) == 1 else {}
        return TeacherOutput(torch.stack([o.logits for o in outs]), self.combine, features)  # (M, B, K)


def load_teacher(job: Job, store: Store, input_shape, num_classes: int, device) -> Teacher | None:
    if not job.teachers:
        return None
    members = []
    for up in job.teachers:
        model = create_model(up.model.name, up.model.params, input_shape, num_classes)
        try:
            state = checkpoint.load(store, Store.artifact(up.job_id, weights_file(up)))
        except CorruptArtifact as e:
            raise CorruptArtifact(f"teacher weights of job {up.job_id} are corrupt ({e}); run the suite "
                                  "again: it retrains the teacher first") from None
        if state is None:
            raise MissingUpstream(f"teacher weights of job {up.job_id} not found in {store.uri}")
        model.load_state_dict(state["model"])
        members.append(model)
    return Teacher(members, job.combine).to(device).eval()
