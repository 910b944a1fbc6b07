"""Distillation methods, one file each, registered by name. Importing this package registers them all:
every module in this folder is imported, so adding a method is adding a file (docs/adding-a-method.md)."""

import importlib
import pkgutil

from .base import (
    METHODS,
    Batch,
    Incompatible,
    Method,
    MethodContext,
    MethodParams,
    Needs,
    TeacherOutput,
    TrainState,
    create_method,
    register_method,
)

_SUPPORT = {"base", "taps", "mixing"}
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _SUPPORT and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "Batch", "Incompatible", "Method", "MethodContext", "MethodParams", "Needs", "TeacherOutput",
           "TrainState", "create_method", "register_method"]
