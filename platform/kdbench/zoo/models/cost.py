"""What a model costs to run: parameters, forward FLOPs per sample, and measured inference latency.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on one forward of a single zero sample
(a multiply-add counts 2; elementwise operations, normalisation and activations are not counted), so they
are exact, machine-independent and cheap. Latency is measured: the median wall time of a forward of one
sample (batch 1, `torch.inference_mode`, one CPU thread unless told otherwise) after warm-up runs — what
edge-deployment studies report — and depends on the machine it was measured on (`device_tag`).
"""

from __future__ import annotations

import platform
import statistics
import time
from functools import cache

import torch
from torch import nn

from .base import count_parameters, create_model


def forward_flops(arch: str, params_json: str, input_shape: tuple[int, ...], num_classes: int) -> float:
    """FLOPs of one sample's forward pass of `arch` built with the JSON `params_json`.

    Counted once per architecture on the meta device (shapes only: nothing allocated, so sizing a large model
    costs no memory), on the CPU for a model the meta device cannot run (profile.py)."""
    from .profile import arch_profile

    return arch_profile(arch, params_json, tuple(input_shape), num_classes).flops


def latency_ms(model: nn.Module, input_shape: tuple[int, ...], *, batch: int = 1, threads: int | None = 1,
               device: str = "cpu", warmup: int = 3, min_runs: int = 5, max_runs: int = 200,
               budget_s: float = 0.1) -> float:
    """Median milliseconds of one forward of `batch` samples: `warmup` untimed runs, then timed runs until
    `budget_s` is spent (at least `min_runs`, at most `max_runs`). `threads`: torch's intra-op threads while
    measuring (restored after); None leaves them as they are. CUDA is synchronised around every run."""
    model = model.to(device).eval()
    x = torch.zeros(batch, *input_shape, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            sync()
            times: list[float] = []
            deadline = time.perf_counter() + budget_s
            while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() < deadline):
                start = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(saved)
    return 1000 * statistics.median(times)


def model_cost(arch: str, params: dict, input_shape: tuple[int, ...], num_classes: int, **latency) -> dict:
    """{params, flops, latency_ms} of an untrained `arch` (weights do not change any of them)."""
    from kdbench.jobs import canonical_json

    torch.manual_seed(0)
    model = create_model(arch, params, tuple(input_shape), num_classes)
    return {"params": count_parameters(model),
            "flops": forward_flops(arch, canonical_json(params), tuple(input_shape), num_classes),
            "latency_ms": latency_ms(model, tuple(input_shape), **latency)}


def device_tag(device: str = "cpu", threads: int | None = 1) -> str:
    """Where a latency was measured, e.g. `cpu:AMD EPYC 7B13:1 thread` or `cuda:NVIDIA H200`."""
    if torch.device(device).type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    name = _cpu_model() or platform.processor() or platform.machine() or "unknown"
    n = threads or torch.get_num_threads()
    return f"cpu:{name}:{n} thread{'' if n == 1 else 's'}"


@cache
def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
