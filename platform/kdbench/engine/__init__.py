"""The training engine: plain PyTorch, importable without Ray or MLflow (a test checks it)."""

from kdbench.errors import JobFailed, NonFiniteLoss

from .run import run_job

__all__ = ["JobFailed", "NonFiniteLoss", "run_job"]
