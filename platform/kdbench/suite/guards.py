"""Checks that keep a hostile suite from costing anything before it is refused (limits: kdbench/suite/limits.py).

- `strict`: a suite's values validated as JSON data in pydantic's strict mode — an int field takes a whole
  number and nothing else (not `1e12`, `true` or `"3"`), a float field a finite number (ints included), a
  tuple field a list; the same rules for the suite's structure and every component's parameters.
- `big_int`: no component parameter holds an integer beyond MAX_INT (before any model is sized by it).
- `model_size`: a model's parameter count, counted on PyTorch's meta device (nothing allocated).
- `planned_jobs`: an upper bound on the plan's job count, by arithmetic (before expanding anything).
- `weights_file`: a teacher's weights file is a PyTorch checkpoint (its header, and a weights-only load).
- `reference_file`: the published-numbers CSV is a small regular file that parses as CSV.
"""

from __future__ import annotations

import json
import math
import zipfile
from typing import Any, TypeVar

from pydantic import BaseModel

from .errors import Loc
from .limits import MAX_INT, MAX_MODEL_PARAMS, MAX_REFERENCE_BYTES

M = TypeVar("M", bound=BaseModel)


def strict(model: type[M], data: Any) -> M:
    """`data` (YAML's values: dicts, lists, text, numbers) validated strictly; raises ValidationError."""
    return model.model_validate_json(json.dumps(data, default=str, allow_nan=False), strict=True)


def big_int(data: Any, loc: Loc = ()) -> tuple[Loc, int] | None:
    """The first integer (outside booleans) beyond ±MAX_INT in `data`, and where it is."""
    stack = [(loc, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((where + (k,), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list | tuple):
            stack.extend((where + (i,), v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
            return where, value
    return None


def model_size(arch: str, params: dict, shape: tuple[int, ...], classes: int) -> int | str | None:
    """Parameters of the model, built on the meta device (no memory); a string: why it cannot be built
    (the architecture's ValueError); None: it could not be sized this way (let later steps tell)."""
    from kdbench.jobs import canonical_json
    from kdbench.zoo.models.base import count_parameters
    from kdbench.zoo.models.profile import meta_model

    try:  # cached: the planner's and the estimate's profiles reuse this model (zoo/models/profile.py)
        model = meta_model(arch, canonical_json(params), tuple(shape), classes)
    except ValueError as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    except RuntimeError as e:
        if "overflow" in str(e):  # a tensor whose size does not fit in 64 bits
            return MAX_MODEL_PARAMS + 1
        return None
    except Exception:  # an operation the meta device lacks: the model is sized when it is built
        return None
    return count_parameters(model)


def too_big(n: int | str | None) -> bool:
    return isinstance(n, int) and n > MAX_MODEL_PARAMS


def input_values(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def weights_file(path: str) -> str | None:
    """None when `path` reads as a PyTorch checkpoint of tensors; else why not.

    The zip header is checked first (cheap; every `torch.save` since 1.6 writes one); then the file is
    loaded weights-only on the meta device's memory map (tensors are not materialised). A `.safetensors`
    file: its header is read (names, dtypes, shapes; no data)."""
    if path.lower().endswith(".safetensors"):
        return _safetensors_file(path)
    if not zipfile.is_zipfile(path):
        try:
            with open(path, "rb") as f:
                head = f.read(2)
        except OSError as e:
            return f"cannot read the file: {e.strerror}"
        if head[:1] != b"\x80":  # neither a zip (torch.save) nor a legacy pickle
            return "not a PyTorch checkpoint (no torch.save header)"
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the verdict below is what the user sees
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="meta", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:  # noqa: BLE001 - any reason a checkpoint cannot be read is the user's to see
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return f"not a weights-only PyTorch checkpoint: {first[:200]}"
    for key in ("model", "state_dict"):  # the wrappers kdbench/teachers/sources.py accepts
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    return "holds no state dict of tensors (a state dict, {model: …} or {state_dict: …})"


def _safetensors_file(path: str) -> str | None:
    try:
        from safetensors import safe_open
    except ImportError:
        return "reading .safetensors needs safetensors: pip install 'kdbench[vision]'"
    try:
        with safe_open(path, framework="pt") as f:
            if not list(f.keys()):
                return "holds no tensors"
    except Exception as e:  # noqa: BLE001 - any reason the header cannot be read is the user's to see
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return f"not a safetensors file: {first[:200]}"
    return None


def reference_file(path: str) -> str | None:
    """None when `path` is a CSV the leaderboard can read (it is copied into the store); else why not."""
    import io
    import os
    import stat

    import pyarrow.csv as pacsv

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > MAX_REFERENCE_BYTES:
            return f"larger than {MAX_REFERENCE_BYTES // 2**20} MiB; not a table of published numbers"
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"cannot read the file: {e.strerror}"
    try:
        data.decode("utf-8")
        pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(use_threads=False))
    except (UnicodeDecodeError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        return f"not a CSV table: {(str(e).strip().splitlines() or [type(e).__name__])[0][:200]}"
    return None
