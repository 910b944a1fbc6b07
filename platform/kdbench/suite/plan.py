"""Expanding a suite into a plan: a DAG of content-addressed jobs, each with its role names.

- every teacher is a `teacher` job (its own seed; a stop epoch makes it early-stopped); its
  `stop_epochs` are snapshots of that one job, sources named `<teacher>@<epoch>`;
- every student × seed gets a `baseline` job (method `none`): every gain is measured against it;
- every (teacher or ensemble) × student × distillation method × seed is a `student` job (only the
  listed `pairs` when the suite gives them);
- a chain [t, a1, …, s] adds, per method × seed, a student job for a1 distilled from t, then a2
  from that job, …, then s. Jobs are deduplicated by id, so a chain's first link and the same
  direct distillation are one job.
Linear in the number of jobs; jobs come out in topological order.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.jobs import Component, Job, Upstream
from kdbench.methods import METHODS

from .finetune import FinetuneTask, finetune_entries
from .load import ModelDef, Suite, snapshot_name
from .outputs import inference_identity, with_teacher_outputs
from .plugins import component_code

NONE = Component("none", {})


def _pretrained(suite: Suite, t: ModelDef) -> Job:
    """A teacher taken as is from a weights file: nothing to train; its id covers the file's content."""
    method = Component("pretrained", {"sha256": t.weights_sha256})
    return Job("pretrained", suite.dataset, t.model, None, method, 0, weights=t.weights)


@dataclass(frozen=True)
class PlanEntry:
    job: Job
    teacher: str | None  # name of the teacher or ensemble this job learns from (the chain's root)
    student: str  # name of the model this job trains
    chain: tuple[str, ...]  # names from the root teacher to this model; [model] for teachers/baselines
    # Fine-tune jobs: the downstream task's name and the metric(s) its score is (suite/finetune.py).
    task: str | None = None
    metric: tuple[str, ...] = ()

    @property
    def job_id(self) -> str:
        return self.job.job_id


@dataclass(frozen=True)
class Plan:
    suite: Suite
    entries: tuple[PlanEntry, ...]  # topological order: upstream jobs first

    @property
    def jobs(self) -> dict[str, Job]:
        return {e.job_id: e.job for e in self.entries}

    def __len__(self) -> int:
        return len(self.entries)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.job.kind] = out.get(e.job.kind, 0) + 1
        return out


def expand(suite: Suite, selections: dict[tuple[str, str], dict] | None = None) -> Plan:
    """`selections`: (teacher, student) -> the hyperparameters the suite's `search` chose for that cell (its
    method's, defaults filled in); each becomes a student job per seed. None: no search has finished yet."""
    entries: dict[str, PlanEntry] = {}

    def add(entry: PlanEntry) -> PlanEntry:
        return entries.setdefault(entry.job_id, entry)

    def job(kind, model: ModelDef, method, seed, teachers=(), combine=None, stop_epoch=None, snapshots=()) -> Job:
        return Job(kind, suite.dataset, model.model, model.recipe, method, seed, stop_epoch,
                   tuple(teachers), combine, tuple(snapshots),
                   teacher_inference=inference_identity(suite.teacher_inference) if teachers else None)

    # Sources a student can learn from: name -> (upstream refs, combine rule).
    sources: dict[str, tuple[tuple[Upstream, ...], str | None]] = {}
    for t in suite.teachers:
        trained = job("teacher", t, NONE, t.seed, stop_epoch=t.stop_epoch, snapshots=t.snapshots)
        e = add(PlanEntry(_pretrained(suite, t) if t.weights else trained, None, t.name, (t.name,)))
        sources[t.name] = ((Upstream(e.job_id, t.model),), None)
        for epoch in t.snapshots:  # the same job, taken after `epoch`: no retraining per stop epoch
            sources[snapshot_name(t.name, epoch)] = ((Upstream(e.job_id, t.model, epoch),), None)
    for ens in suite.ensembles:
        members = tuple(sources[m][0][0] for m in ens.members)
        sources[ens.name] = (members, ens.combine)

    methods = [m for m in suite.methods if METHODS.get(m.name).needs.teacher]
    # Teacher-free jobs per student: `none` always (the baseline every method is compared with), and any other
    # teacher-free method the suite lists (e.g. `untrained`, the floor of a representation study).
    alone = [NONE, *(m for m in suite.methods if not METHODS.get(m.name).needs.teacher and m.name != NONE.name)]
    for s in suite.students:
        for seed in suite.seeds:
            for m in alone:
                add(PlanEntry(job("baseline", s, m, seed), None, s.name, (s.name,)))
    students = {s.name: s for s in suite.students}
    pairs = suite.pairs or [(src, s) for src in sources for s in students]
    for src, name in pairs:
        ups, combine = sources[src]
        for m in methods:
            params = suite.pair_params.get((src, name, m.name))  # a paper's setting for this pair
            m = m if params is None else Component(m.name, params, m.code)
            for seed in suite.seeds:
                add(PlanEntry(job("student", students[name], m, seed, ups, combine), src, name, (src, name)))

    for (src, name), params in (selections or {}).items():  # configurations chosen by the suite's `search`
        ups, combine = sources[src]
        chosen = Component(suite.search.method, params, component_code("method", suite.search.method))
        for seed in suite.seeds:
            add(PlanEntry(job("student", students[name], chosen, seed, ups, combine), src, name, (src, name)))

    models = {m.name: m for m in (*suite.teachers, *suite.students)}
    for chain in suite.chains:
        for m in methods:
            for seed in suite.seeds:
                ups, combine = sources[chain[0]]
                for k, name in enumerate(chain[1:], start=2):
                    model = models[name]
                    e = add(PlanEntry(job("student", model, m, seed, ups, combine), chain[0], name, chain[:k]))
                    ups, combine = (Upstream(e.job_id, model.model),), None
    planned = list(entries.values())
    if suite.finetune is not None:  # each trained model fine-tuned on each downstream task (suite/finetune.py)
        planned += finetune_entries(suite.finetune, planned, _finetune_entry)
    # Teachers whose students need only their logits run once, in teacher-output jobs (`teacher_cache`).
    return Plan(suite, tuple(with_teacher_outputs(suite, planned)))


def _finetune_entry(job: Job, upstream: PlanEntry, task: FinetuneTask) -> PlanEntry:
    return PlanEntry(job, upstream.teacher, upstream.student, upstream.chain, task.name, task.metric)
