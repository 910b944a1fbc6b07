"""Teacher weights from a file: a job's artifact or a user's checkpoint, checked against the architecture.

`load_weights` loads strictly and, when the file does not fit the model, says which file and what does
not fit (missing and unexpected names, shape mismatches) instead of torch's bare RuntimeError.
`checkpoint_file` reads a user's checkpoint path (weights only: no pickled code) in the layouts in use:
a plain state dict, `{"model": …}` (kdbench), `{"state_dict": …}` (Lightning, many repositories), with a
`module.` prefix from DataParallel stripped. The zoo's ImageNet ResNets take torchvision's weights files
as they are (same module names). `run_pretrained` runs a suite's `weights:` teacher (a `pretrained` job).
"""

from __future__ import annotations

import hashlib
import os

import torch
from torch import nn

from kdbench.errors import JobFailed


class TeacherMismatch(JobFailed):
    """A teacher's weights that do not fit its architecture (another arch, width or class count)."""


class TeacherNotFound(JobFailed):
    pass


def _describe(names: list[str], limit: int = 5) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], where: str, arch: str) -> nn.Module:
    """`model` with `state` loaded strictly; TeacherMismatch naming `where` and every kind of misfit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = [f"{label}: {_describe(items)}" for label, items in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if items]
    if problems:
        raise TeacherMismatch(f"{where}: the weights do not fit architecture '{arch}': " + "; ".join(problems))
    model.load_state_dict(state)
    return model


def checkpoint_file(path: str) -> dict[str, torch.Tensor]:
    """The state dict in a user's checkpoint file."""
    if not os.path.isfile(path):
        raise TeacherNotFound(f"teacher checkpoint {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, or one that holds code
        raise TeacherMismatch(f"{path}: not a weights-only PyTorch checkpoint ({type(e).__name__}: {e})") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TeacherMismatch(f"{path}: holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
