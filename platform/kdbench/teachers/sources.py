"""Teacher weights from a file: a job's artifact or a user's checkpoint, checked against the architecture.

`load_weights` loads strictly and, when the file does not fit the model, says which file and what does
not fit (missing and unexpected names, shape mismatches) instead of torch's bare RuntimeError.
`checkpoint_file` reads a user's checkpoint path (weights only: no pickled code) in the layouts in use:
a `.safetensors` file (Hugging Face / timm), or a torch file holding a plain state dict (torchvision),
`{"model": …}` (kdbench, DeiT), `{"state_dict": …}` (timm's train.py, Lightning, many repositories), with a
`module.` prefix from DataParallel stripped. `state_shapes` reads only the names and shapes (safetensors' header;
a torch file on the meta device), which is how `kdbench validate` checks a file fits its architecture.
The zoo's ImageNet ResNets take torchvision's weights files
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
    state = adapt_state(model, state)
    problem = misfit(model, {k: tuple(v.shape) for k, v in state.items()})
    if problem:
        raise TeacherMismatch(f"{where}: the weights do not fit architecture '{arch}': {problem}")
    model.load_state_dict(state)
    return model


def adapt_state(model: nn.Module, state: dict) -> dict:
    """A library checkpoint's keys as the model names them (timm/torchvision models: zoo/models/external.py)."""
    adapt = getattr(model, "adapt_state", None)
    return adapt(state) if adapt is not None else state


def misfit(model: nn.Module, shapes: dict[str, tuple]) -> str | None:
    """None when a state dict of these names and shapes loads strictly into `model`; else every kind of
    misfit on one line (missing and unexpected names, shape mismatches, a few of each)."""
    own = model.state_dict()
    missing = [k for k in own if k not in shapes]
    unexpected = [k for k in shapes if k not in own]
    wrong = [f"{k} {tuple(shapes[k])} in the file, {tuple(own[k].shape)} in the model"
             for k in own if k in shapes and tuple(shapes[k]) != tuple(own[k].shape)]
    problems = [f"{label}: {_describe(items)}" for label, items in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)) if items]
    return "; ".join(problems) or None


def is_safetensors(path: str) -> bool:
    return path.lower().endswith(".safetensors")


def _unwrap(obj):
    """The state dict inside the checkpoint layouts in use, `module.` prefixes stripped; None if there is none."""
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    return {k.removeprefix("module."): v for k, v in obj.items()}


def state_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict in a checkpoint file, without reading its tensors' data."""
    if is_safetensors(path):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            return {k.removeprefix("module."): tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    import zipfile

    obj = torch.load(path, map_location="meta", weights_only=True, mmap=zipfile.is_zipfile(path))
    state = _unwrap(obj)
    if state is None:
        raise TeacherMismatch(f"{path}: holds no state dict of tensors")
    return {k: tuple(v.shape) for k, v in state.items()}


def checkpoint_file(path: str) -> dict[str, torch.Tensor]:
    """The state dict in a user's checkpoint file."""
    if not os.path.isfile(path):
        raise TeacherNotFound(f"teacher checkpoint {path} not found")
    if is_safetensors(path):
        from safetensors.torch import load_file

        try:
            return {k.removeprefix("module."): v for k, v in load_file(path, device="cpu").items()}
        except Exception as e:  # noqa: BLE001 - a header or data the reader refuses
            raise TeacherMismatch(f"{path}: not a safetensors file ({type(e).__name__}: {e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, or one that holds code
        raise TeacherMismatch(f"{path}: not a weights-only PyTorch checkpoint ({type(e).__name__}: {e})") from None
    state = _unwrap(obj)
    if state is None:
        raise TeacherMismatch(f"{path}: holds no state dict of tensors")
    return state


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
