"""MLflow tracking: an experiment per suite, a parent run per `kdbench run`, a child run per job.

MLflow is imported only here (lazily, on the tracker's worker thread), never by the engine.
"""

from .backfill import TrackingError, backfill
from .fields import final_metrics, run_fields, run_name
from .tracker import Tracker
from .uri import embedded_artifact_root, embedded_tracking_uri, resolve

__all__ = ["Tracker", "TrackingError", "backfill", "embedded_artifact_root", "embedded_tracking_uri",
           "final_metrics", "resolve", "run_fields", "run_name"]
