"""Packing ready jobs into one trial (`resources.jobs_per_trial`), for grids of small students.

A Tune trial costs a scheduling round trip, and a small student leaves its GPU mostly idle. With
`jobs_per_trial: N`, up to N ready jobs that differ only in seed and teacher (same kind, dataset,
model, recipe, method and hyperparameters) are handed to one trial, which trains them fused into one
vmapped model when the architecture allows (kdbench/engine/fused.py) and one after another
otherwise. Teachers and other job kinds always run alone. Packing changes scheduling, not results'
meaning: job ids, rows and artifacts are per job as usual.

`jobs_per_trial: auto` (the default) sizes each pack from the jobs' estimated durations (durations.py), when the
trial is requested, from the jobs ready then (`auto_pack_size`): a job packs only when it is short against a
trial's fixed cost, a pack's estimated duration stays bounded, and a bucket is not packed into fewer trials than
the cluster has slots for (at most ⌈bucket / slots⌉ jobs per pack, `bucket` counting the jobs that entered the
bucket since it was last empty, unless the pack would still be mostly fixed cost), so packing does not idle a
worker that one more trial would have used. An explicit integer packs exactly as before.

`ReadyPacker` drains the DAG's ready jobs into buckets keyed by what must be equal, in the order
the DAG released them (its critical-path priority), and hands out the oldest bucket first. Every
job passes through one bucket once: linear in the number of jobs.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict
from itertools import islice

from kdbench.jobs import Job, canonical_json
from kdbench.suite.limits import MAX_JOBS_PER_TRIAL

from .dag import JobGraph
from .durations import Durations

PACKABLE_KINDS = ("baseline", "student")

# `jobs_per_trial: auto` (docs/performance.md "Packing by default"). TRIAL_FIXED_S is what a trial costs beyond its
# job's training and a pack shares: Tune's round trip, the job's set-up (data, model), its evaluation and store
# writes — measured by P1 as kdbench's extra seconds per job over a bare loop (+1.43 to +1.68 s on 2 cores).
TRIAL_FIXED_S = 1.5
SHORT_S = 20 * TRIAL_FIXED_S  # a job estimated longer (its trial's fixed cost < 5% of it) always runs alone
PACK_MAX_S = 40 * TRIAL_FIXED_S  # a pack's estimated duration (its jobs' estimates summed) stays within this
MIN_FILL_S = 2 * TRIAL_FIXED_S  # a pack estimated shorter is filled past ⌈ready / slots⌉: a trial that is mostly
# fixed cost is worth less than the slot it would leave idle
MAX_PACK = MAX_JOBS_PER_TRIAL  # as many as an explicit `jobs_per_trial` may ask for


def pack_key(job: Job) -> str | None:
    """What jobs sharing a trial must have in common; None for jobs that always run alone."""
    if job.kind not in PACKABLE_KINDS:
        return None
    return canonical_json([job.kind, asdict(job.dataset), asdict(job.model), job.recipe.model_dump(mode="json"),
                           asdict(job.method), job.combine, len(job.teachers)])


def auto_pack_size(estimates: Iterable[float | None], bucket: int, slots: int) -> int:
    """How many of a bucket's ready jobs (in order, with their estimated seconds; None: unknown) share the next
    trial: short jobs only, while the pack's estimate stays ≤ PACK_MAX_S, at most ⌈bucket / slots⌉ (`bucket`: the
    jobs that entered the bucket since it was last empty, so its packs come out equal) unless the pack is still
    estimated under MIN_FILL_S; at least 1."""
    spread = max(1, math.ceil(bucket / max(1, slots)))
    count, total = 0, 0.0
    for seconds in estimates:
        if count >= MAX_PACK or seconds is None or seconds > SHORT_S or (count and total + seconds > PACK_MAX_S):
            break
        if count >= spread and total >= MIN_FILL_S:
            break
        count, total = count + 1, total + seconds
    return max(1, count)


class ReadyPacker:
    def __init__(self, graph: JobGraph, jobs: dict[str, Job], size: int | None,
                 durations: Durations | None = None, slots: Callable[[], int] = lambda: 1) -> None:
        """`size`: an explicit `jobs_per_trial`; None for `auto`, which sizes packs with `durations` and the
        cluster's `slots` (jobs that can run at once)."""
        self.graph, self.jobs, self.size = graph, jobs, size
        self.durations, self.slots = durations, slots
        self._buckets: OrderedDict[str, deque[str]] = OrderedDict()
        self._entered: dict[str, int] = {}  # bucket -> jobs that entered it since it was last empty

    def take(self) -> list[str]:
        """The next trial's job ids (empty while nothing is ready)."""
        while (job_id := self.graph.pop_ready()) is not None:
            key = pack_key(self.jobs[job_id]) or f"alone:{job_id}"
            self._buckets.setdefault(key, deque()).append(job_id)
            self._entered[key] = self._entered.get(key, 0) + 1
        if not self._buckets:
            return []
        key, ids = next(iter(self._buckets.items()))
        size = self.size if self.size is not None else self._auto_size(key, ids)
        taken = [ids.popleft() for _ in range(min(size, len(ids)))]  # O(pack), not O(bucket): no list slicing
        if not ids:
            del self._buckets[key]
            self._entered.pop(key, None)
        return taken

    def _auto_size(self, key: str, ids: deque[str]) -> int:
        if key.startswith("alone:"):
            return 1
        estimates = (self.durations.seconds(self.jobs[i]) for i in islice(ids, MAX_PACK))  # lazily: the pack's own
        return auto_pack_size(estimates, self._entered[key], self.slots())
