"""The teacher inference engine: one teacher (or an ensemble's members) run forward only, by plain PyTorch
or by DeepSpeed (`deepspeed.init_inference`), in a chosen dtype and tensor-parallel degree.

- `torch` (default, fp32): the members in eval mode under `no_grad`; fp16/bf16 cast the members and the
  inputs to that dtype. The fp32 default computes exactly what the engine always did.
- `deepspeed`: each member wrapped by `deepspeed.init_inference(member, dtype=…, tensor_parallel={"tp_size": N},
  replace_with_kernel_inject=…)`. Kernel injection is used on a GPU for members built from Hugging Face
  transformers (DeepSpeed has injection policies for those, not for CNNs). On a CPU, DeepSpeed 0.19 uses its
  CPU accelerator, which takes fp32 and bf16 only: fp16 there is a JobFailed naming the fix. DeepSpeed is
  imported only when this engine is asked for (importing it takes seconds).

Logits and features always come back as float32, whatever dtype the teacher ran in. The engine counts
its forward passes (`forward_batches`, `forward_samples`: samples × members) from tensor shapes, which
are host metadata, so counting costs no device synchronisation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from kdbench.errors import JobFailed
from kdbench.outputs import TeacherOutput
from kdbench.zoo.models import ModelOutput, count_parameters
from kdbench.zoo.models.features import feature_shapes

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class InferenceSpec:
    """How a teacher is run: the suite's `teacher_inference`."""

    engine: Literal["torch", "deepspeed"] = "torch"
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    tp_size: int = 1

    @classmethod
    def of(cls, spec: dict[str, Any] | None) -> InferenceSpec:
        return cls(**(spec or {}))

    def identity(self) -> dict[str, Any] | None:
        """The spec as part of a job id; None for the default, so ids without it are unchanged."""
        return None if self == InferenceSpec() else asdict(self)


def _is_transformer(model: nn.Module) -> bool:
    return any(type(m).__module__.startswith("transformers.") for m in model.modules())


def _deepspeed_member(model: nn.Module, spec: InferenceSpec, device: torch.device) -> nn.Module:
    if device.type == "cpu" and spec.dtype == "fp16":
        raise JobFailed("teacher_inference: DeepSpeed's CPU accelerator does not run fp16; use dtype bf16 or "
                        "fp32, or run the job on a GPU")
    import deepspeed  # lazily: importing DeepSpeed takes seconds

    kwargs: dict[str, Any] = {"dtype": DTYPES[spec.dtype],
                              "replace_with_kernel_inject": device.type == "cuda" and _is_transformer(model)}
    if spec.tp_size > 1:  # tensor parallelism: one process per GPU, joined in torch.distributed
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        if world < spec.tp_size:
            raise JobFailed(f"teacher_inference.tp_size {spec.tp_size} needs {spec.tp_size} processes in "
                            f"torch.distributed (found {world}); launch the job with one process per GPU")
        kwargs["tensor_parallel"] = {"tp_size": spec.tp_size}
    return deepspeed.init_inference(model, **kwargs)


class TeacherEngine(nn.Module):
    """One teacher or an ensemble; `forward` returns a TeacherOutput, never tracks gradients.

    `forward(x, idx, epoch)` takes the batch's sample indices and epoch for the signature it shares with a
    cached teacher (kdbench.teachers.cache.CachedTeacher); a live teacher needs only `x`."""

    def __init__(self, members: list[nn.Module], combine: str | None = None, spec: InferenceSpec = InferenceSpec(),
                 device: str | torch.device = "cpu", input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        device = torch.device(device)
        self.spec, self.combine = spec, combine or "arithmetic"
        self.members = nn.ModuleList(members).to(device).eval().requires_grad_(False)
        self._params = sum(count_parameters(m) for m in members)
        # Tap shapes are probed in fp32 before any conversion (a single teacher only: an ensemble gives none).
        self.tap_shapes = feature_shapes(members[0], input_shape) if input_shape and len(members) == 1 else {}
        self._dtype = DTYPES[spec.dtype]
        if spec.engine == "deepspeed":
            self._runners = [_deepspeed_member(m, spec, device) for m in self.members]
        else:
            self._runners = [m.to(self._dtype) for m in self.members]
        self.forward_batches = 0
        self.forward_samples = 0

    def train(self, mode: bool = True) -> TeacherEngine:
        return super().train(False)  # a teacher stays in eval mode (dropout off, BN frozen)

    def parameter_count(self) -> int:
        return self._params

    def replayed(self, augment):
        """The student's augmentation: a live teacher sees the student's own views."""
        return augment

    def _run(self, runner: nn.Module, x: torch.Tensor) -> ModelOutput:
        # Only floating inputs take the teacher's dtype: token ids (a language model's input) stay integers.
        out = runner(x if self._dtype == torch.float32 or not x.is_floating_point() else x.to(self._dtype))
        self.forward_batches += 1
        self.forward_samples += x.shape[0]
        if self._dtype == torch.float32:
            return out
        return ModelOutput(out.logits.float(), {k: v.float() for k, v in out.features.items()})

    @torch.no_grad()
    def forward(self, x: torch.Tensor, idx: torch.Tensor | None = None, epoch: int | None = None) -> TeacherOutput:
        outs = [self._run(r, x) for r in self._runners]
        features = outs[0].features if len(outs) == 1 else {}
        return TeacherOutput(torch.stack([o.logits for o in outs]), self.combine, features)  # (M, B, K)

    def counts(self) -> dict[str, int]:
        return {"teacher_forward_batches": self.forward_batches, "teacher_forward_samples": self.forward_samples}
