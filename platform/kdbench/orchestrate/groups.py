"""Packing ready jobs into one trial (`resources.jobs_per_trial`), for grids of small students.

A Tune trial costs a scheduling round trip, and a small student leaves its GPU mostly idle. With
`jobs_per_trial: N`, up to N ready jobs that differ only in seed and teacher (same kind, dataset,
model, recipe, method and hyperparameters) are handed to one trial, which trains them fused into one
vmapped model when the architecture allows (kdbench/engine/fused.py) and one after another
otherwise. Teachers and other job kinds always run alone. Packing changes scheduling, not results'
meaning: job ids, rows and artifacts are per job as usual.

`ReadyPacker` drains the DAG's ready jobs into buckets keyed by what must be equal, in the order
the DAG released them (its critical-path priority), and hands out the oldest bucket first. Every
job passes through one bucket once: linear in the number of jobs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict

from kdbench.jobs import Job, canonical_json

from .dag import JobGraph

PACKABLE_KINDS = ("baseline", "student")


def pack_key(job: Job) -> str | None:
    """What jobs sharing a trial must have in common; None for jobs that always run alone."""
    if job.kind not in PACKABLE_KINDS:
        return None
    return canonical_json([job.kind, asdict(job.dataset), asdict(job.model), job.recipe.model_dump(mode="json"),
                           asdict(job.method), job.combine, len(job.teachers)])


class ReadyPacker:
    def __init__(self, graph: JobGraph, jobs: dict[str, Job], size: int) -> None:
        self.graph, self.jobs, self.size = graph, jobs, size
        self._buckets: OrderedDict[str, list[str]] = OrderedDict()

    def take(self) -> list[str]:
        """The next trial's job ids (empty while nothing is ready)."""
        while (job_id := self.graph.pop_ready()) is not None:
            key = pack_key(self.jobs[job_id]) or f"alone:{job_id}"
            self._buckets.setdefault(key, []).append(job_id)
        if not self._buckets:
            return []
        key, ids = next(iter(self._buckets.items()))
        taken, rest = ids[:self.size], ids[self.size:]
        if rest:
            self._buckets[key] = rest
        else:
            del self._buckets[key]
        return taken
