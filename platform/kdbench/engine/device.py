"""Where a job runs on its worker: the one place that turns a job's resources into a device."""

from __future__ import annotations

import torch


def worker_device(cpus: float, gpus: float) -> torch.device:
    """The device for a job given `cpus` CPUs and `gpus` GPUs (CUDA when it has a GPU and CUDA is there,
    else the CPU); also sets torch's intra-op threads to its CPUs (at least one), so concurrent jobs on a
    node do not each take every core."""
    torch.set_num_threads(max(1, int(cpus)))
    return torch.device("cuda" if gpus > 0 and torch.cuda.is_available() else "cpu")
