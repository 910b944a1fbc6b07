"""Versions that enter results and job identities."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kdbench")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+src"

# Bump when a change alters what an unchanged job spec computes (training loop, a loss, a
# data split). It is part of every job id, so old results are not mistaken for new ones.
# Changelog: 1 — first release of the engine. 2 — `cnn` gains a stem conv (uniform feature taps).
JOB_SEMANTICS = 2

# Version of the results table's schema (kdbench/results/schema.py). Changelog: 1 — first. 2 — `task`, the
# task's `metrics` (a map), `counters`, `python_version`; plans spell method_params as canonical JSON.
# 3 — `attempt`: a job's rows are ordered by it, not by `finished_at`. 4 — `finetune_task`, `finetune_metric`,
# `finetune_from` (fine-tune jobs).
RESULTS_SCHEMA_VERSION = 4
