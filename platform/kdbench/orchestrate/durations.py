"""How long a job will take, for `jobs_per_trial: auto`: a FLOP prior, corrected by what the driver measures.

    prior(job) = epochs × (⌈n_train / batch_size⌉ × STEP_S + n_train × FLOPs per sample / throughput)

FLOPs per sample are the plan estimate's (kdbench/suite/estimate.py: 3 × student forward + the live teachers'
forwards, counted once per architecture); `throughput` is the trial's device: `cpus` × CPU_FLOPS on a CPU trial,
`gpus` × GPU_FLOPS on a GPU trial (the estimate's planning figure). STEP_S is the per-step cost a small model pays
whatever its FLOPs (Python, optimizer, data loader), measured on the P1 jobs (benchmarks/perf/p1: 80 epochs × 125
steps of an mlp took 4.5–5 s). Both constants err towards too long, which only ever packs less.

Measured times replace the constants as the suite runs: when a trial ends, its driver-side wall time (trial start
to end, divided among a pack's jobs) is recorded against the job's pack key (jobs that may share a trial), and a
running job's per-epoch times (its progress results) are recorded as they arrive. The estimate of a job is then
its prior × measured/prior of its key, or of every measured job when its key has none yet. Each update and each
estimate is O(1) (a job's FLOPs are counted once per architecture and input): O(jobs) over a suite.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from kdbench.jobs import Component, Job, canonical_json

# Measured constants (benchmarks/perf/RESULTS.md, P1; docs/performance.md "Packing by default").
STEP_S = 0.5e-3  # seconds of a training step beyond its FLOPs: P1's mlp, 10,000 steps in 4.5–5 s on one core
CPU_FLOPS = 10e9  # effective FLOP/s per CPU of a trial (below a core's peak: small kernels, one thread)
GPU_FLOPS = 25e12  # effective FLOP/s per GPU, the plan estimate's planning figure (kdbench/suite/estimate.py)


class Durations:
    """Estimated seconds of each job, kept up to date from the jobs that ran."""

    def __init__(self, described: tuple[tuple[int, ...], int, int] | None, cpus: float, gpus: float,
                 key: Callable[[Job], str | None]) -> None:
        """`described`: the dataset's (input shape, classes, training samples), None when it cannot tell without
        loading its data (no prior then: a job's duration is unknown until one of its key has been measured);
        `key`: which jobs are alike (the packer's key)."""
        self.described = described
        self.throughput = gpus * GPU_FLOPS if gpus > 0 else cpus * CPU_FLOPS
        self.key = key
        self._keys: dict[str, str | None] = {}  # job id -> key, computed once
        self._measured: dict[str, list[float]] = {}  # key -> [measured seconds, their jobs' prior seconds]
        self._all = [0.0, 0.0]  # the same over every measured job
        self._epochs_seen: dict[str, list[float]] = {}  # running job -> [its reported epochs' seconds, their prior]

    def _key(self, job: Job) -> str | None:
        if job.job_id not in self._keys:
            self._keys[job.job_id] = self.key(job)
        return self._keys[job.job_id]

    def prior(self, job: Job) -> float | None:
        """Seconds from the FLOP count alone; without a described dataset, the job's epochs (a unit the measured
        ratio turns into seconds)."""
        if self.described is None:
            return float(job.epochs)
        shape, classes, n_train = self.described
        teachers = () if job.outputs else job.teachers
        per_sample = 3 * _flops(job.model, shape, classes) + sum(_flops(t.model, shape, classes) for t in teachers)
        steps = math.ceil(n_train / job.recipe.batch_size)
        return job.epochs * (steps * STEP_S + n_train * per_sample / self.throughput)

    def seconds(self, job: Job) -> float | None:
        """The job's estimated seconds; None when nothing tells yet (no prior and nothing measured)."""
        prior = self.prior(job)
        measured = self._measured.get(self._key(job))
        ratio = (measured[0] / measured[1] if measured and measured[1] > 0 else
                 self._all[0] / self._all[1] if self._all[1] > 0 else None)
        if ratio is not None:
            return prior * ratio
        return None if self.described is None else prior

    def _add(self, job: Job, seconds: float, prior: float) -> None:
        key = self._key(job)
        if key is None:  # a job that is never packed (a teacher): its speed says nothing of the students'
            return
        entry = self._measured.setdefault(key, [0.0, 0.0])
        for acc in (entry, self._all):
            acc[0] += seconds
            acc[1] += prior

    def epoch(self, job: Job, seconds: float) -> None:
        """One epoch of a running job took `seconds`: its key's estimate follows before the job ends."""
        if seconds <= 0 or job.epochs <= 0:
            return
        prior = self.prior(job) / job.epochs
        seen = self._epochs_seen.setdefault(job.job_id, [0.0, 0.0])
        seen[0], seen[1] = seen[0] + seconds, seen[1] + prior
        self._add(job, seconds, prior)

    def finished(self, job: Job, seconds: float) -> None:
        """The job ended after `seconds` of its trial (a pack's trial time divided among its jobs); the epochs it
        reported while running are replaced by the whole, so each job counts once."""
        seen = self._epochs_seen.pop(job.job_id, None)
        if seen is not None:
            self._add(job, -seen[0], -seen[1])
        if seconds > 0 and job.epochs > 0:
            self._add(job, seconds, self.prior(job))


def _flops(model: Component, shape: tuple[int, ...], classes: int) -> float:
    from kdbench.zoo.models.cost import forward_flops  # counted once per (architecture, input): cached

    return forward_flops(model.name, canonical_json(model.params), shape, classes)
