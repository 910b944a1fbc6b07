"""Jobs: what one training run is, typed from YAML to Parquet, and its content-addressed identity.

Torch-free: the driver, the results table and the tracker use these types without loading PyTorch."""

from .identity import ID_LENGTH, LATER_DEFAULTS, LOCATION_PARAMS, canonical_json, job_id_of
from .job import Component, Job, JobKind, Upstream
from .recipe import Optimizer, Recipe, Schedule
from .result import JobFinal, JobResult

__all__ = ["ID_LENGTH", "LATER_DEFAULTS", "LOCATION_PARAMS", "Component", "Job", "JobFinal", "JobKind", "JobResult",
           "Optimizer", "Recipe", "Schedule", "Upstream", "canonical_json", "job_id_of"]
