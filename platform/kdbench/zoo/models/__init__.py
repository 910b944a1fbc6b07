"""Architectures, registered by name. Importing this package registers them all."""

from . import (  # noqa: F401  (registration side effects)
    cifar_resnet,
    cifar_resnet_imagenet_style,
    cnn,
    hf,
    imagenet_resnet,
    mlp,
    mobilenetv2,
    pose_nets,
    shufflenet,
    svd_nets,
    takd_cnn,
    vgg,
    wrn,
)
from .base import ARCHS, ArchParams, ModelOutput, count_parameters, create_model, register_model

__all__ = ["ARCHS", "ArchParams", "ModelOutput", "count_parameters", "create_model", "register_model"]
