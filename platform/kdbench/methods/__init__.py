"""Distillation methods, one file each, registered by name. Importing this package registers them all."""

from . import kd, none  # noqa: F401  (registration side effects)
from .base import (
    METHODS,
    Batch,
    Method,
    MethodContext,
    MethodParams,
    Needs,
    TeacherOutput,
    TrainState,
    create_method,
    register_method,
)

__all__ = ["METHODS", "Batch", "Method", "MethodContext", "MethodParams", "Needs", "TeacherOutput",
           "TrainState", "create_method", "register_method"]
