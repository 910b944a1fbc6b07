"""Architectures, registered by name. Importing this package registers them all."""

from . import cnn, mlp  # noqa: F401  (registration side effects)
from .base import ARCHS, ArchParams, ModelOutput, count_parameters, create_model, register_model

__all__ = ["ARCHS", "ArchParams", "ModelOutput", "count_parameters", "create_model", "register_model"]
