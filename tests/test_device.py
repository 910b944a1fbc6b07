"""The one device choice of a job's worker (kdbench.engine.device), used by every kind of trial."""

from __future__ import annotations

import torch

from kdbench.engine.device import worker_device


def test_a_worker_gets_cuda_only_with_a_gpu_and_its_cpus_as_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert worker_device(2, 0) == torch.device("cpu") and torch.get_num_threads() == 2
        assert worker_device(0.5, 0) == torch.device("cpu") and torch.get_num_threads() == 1  # at least one
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        assert worker_device(1, 1) == torch.device("cpu")  # a GPU asked for, none there
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert worker_device(1, 0.5) == torch.device("cuda") and worker_device(1, 0) == torch.device("cpu")
    finally:
        torch.set_num_threads(before)
