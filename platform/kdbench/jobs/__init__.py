"""Jobs: what one training run is, typed from YAML to Parquet, and its content-addressed identity.

Torch-free: the driver, the results table and the tracker use these types without loading PyTorch."""

from .job import ID_LENGTH, LOCATION_PARAMS, Component, Job, JobKind, Upstream, canonical_json, job_id_of

__all__ = ["ID_LENGTH", "LOCATION_PARAMS", "Component", "Job", "JobKind", "Upstream", "canonical_json", "job_id_of"]
