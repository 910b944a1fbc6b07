"""Teachers for a student job: the upstream jobs' selected weights, frozen in eval mode."""

from __future__ import annotations

from torch import nn

from kdbench import checkpoint, paths
from kdbench.errors import CorruptArtifact, MissingUpstream
from kdbench.jobs import Job, Upstream
from kdbench.store import Store
from kdbench.zoo.models import create_model

from .inference import InferenceSpec, TeacherEngine
from .sources import load_weights


def weights_file(up) -> str:
    """The file of an upstream's weights: its result, or its snapshot when the upstream names an epoch."""
    return paths.MODEL if up.epoch is None else paths.snapshot_file(up.epoch)


# A teacher run by plain PyTorch in fp32 (the inference engine's default); the name the engine always used.
Teacher = TeacherEngine


def load_member(up: Upstream, store: Store, input_shape, num_classes: int) -> nn.Module:
    """One upstream job's weights (its result, or a snapshot) in its architecture, on the CPU."""
    model = create_model(up.model.name, up.model.params, input_shape, num_classes)
    rel = Store.artifact(up.job_id, weights_file(up))
    try:
        state = checkpoint.load(store, rel)
    except CorruptArtifact as e:
        raise CorruptArtifact(f"teacher weights of job {up.job_id} are corrupt ({e}); run the suite "
                              "again: it retrains the teacher first") from None
    if state is None:
        raise MissingUpstream(f"teacher weights of job {up.job_id} not found in {store.uri}")
    return load_weights(model, state["model"], store.path(rel), up.model.name)


def load_teacher(job: Job, store: Store, input_shape, num_classes: int, device) -> TeacherEngine | None:
    """The job's teachers, run live by the inference engine the job names."""
    if not job.teachers:
        return None
    members = [load_member(up, store, input_shape, num_classes) for up in job.teachers]
    return TeacherEngine(members, job.combine, InferenceSpec.of(job.teacher_inference), device, input_shape)
