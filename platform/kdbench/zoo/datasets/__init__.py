"""Datasets, registered by name. Importing this package registers them all."""

from . import digits, imagefolder, lab, paired, synthetic, synthetic_regression, vision  # noqa: F401  (registration)
from .base import DATASETS, DatasetParams, DataSplits, Split, load_dataset, register_dataset

__all__ = ["DATASETS", "DataSplits", "DatasetParams", "Split", "load_dataset", "register_dataset"]
