"""Datasets, registered by name. Importing this package registers them all."""

from . import (  # noqa: F401  (registration)
    digits,
    imagefolder,
    lab,
    paired,
    pose_datasets,
    shards,
    stick_figures,
    synthetic,
    synthetic_regression,
    text,
    vision,
)
from .base import DATASETS, DatasetParams, DataSplits, Split, load_dataset, register_dataset

__all__ = ["DATASETS", "DataSplits", "DatasetParams", "Split", "load_dataset", "register_dataset"]
