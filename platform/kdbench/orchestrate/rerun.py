"""`kdbench run SUITE --rerun SELECTOR`: recompute chosen jobs on purpose, and nothing else.

A job whose result is in the store is never run again: its id says what it computed. When the user knows
better — code a plugin imports from another file changed, a machine was faulty — a selector names jobs to
recompute:

    --rerun method=kd                 every job of the method kd
    --rerun method=kd,seed=0          both conditions (comma: and); several --rerun options: or
    --rerun student=resnet8x4 --rerun job=3f2a9c   a student's jobs, or a job by (a prefix of) its id

Keys: `job` (id prefix), `kind` (teacher, baseline, student, teacher_outputs, pretrained), `method`,
`teacher` (the source a student learns from), `student` (the model a job trains), `seed`, or `all`.
Every job downstream of a selected one is recomputed too (it learnt from the old weights).

Nothing is lost: before anything runs, each selected job's artifacts and result row are moved under
`superseded/<job_id>/<stamp>/` (paths.superseded), then the jobs run as if they had never run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from kdbench import paths
from kdbench.store import Store
from kdbench.suite.plan import Plan, PlanEntry

KEYS = ("job", "kind", "method", "teacher", "student", "seed")


class SelectorError(ValueError):
    """A `--rerun` selector that is malformed or matches no job of the suite (refused before any work)."""


@dataclass(frozen=True)
class Selector:
    """Conditions that must all hold; `all` (no conditions) selects every job."""

    text: str
    conditions: tuple[tuple[str, str], ...]

    def matches(self, entry: PlanEntry) -> bool:
        return all(_value_matches(key, value, entry) for key, value in self.conditions)


def parse_selector(text: str) -> Selector:
    """`key=value[,key=value…]` or `all`; a SelectorError names what is wrong."""
    text = text.strip()
    if text == "all":
        return Selector(text, ())
    conditions = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise SelectorError(f"--rerun {text!r}: write key=value (keys: {', '.join(KEYS)}) or all")
        if key not in KEYS:
            raise SelectorError(f"--rerun {text!r}: unknown key {key!r} (keys: {', '.join(KEYS)})")
        if key == "seed" and not value.lstrip("-").isdigit():
            raise SelectorError(f"--rerun {text!r}: seed must be an integer")
        conditions.append((key, value))
    return Selector(text, tuple(conditions))


def _value_matches(key: str, value: str, entry: PlanEntry) -> bool:
    job = entry.job
    if key == "job":
        return entry.job_id.startswith(value)
    if key == "kind":
        return job.kind == value
    if key == "method":
        return job.method.name == value
    if key == "teacher":
        return entry.teacher == value
    if key == "student":
        return entry.student == value
    return job.seed == int(value)  # seed


def rerun_ids(plan: Plan, selectors: Iterable[Selector]) -> set[str]:
    """The jobs the selectors match, and every job downstream of them (linear in the plan's size)."""
    selectors = list(selectors)
    chosen: set[str] = set()
    for entry in plan.entries:  # topological order: a job's upstreams come first
        if any(s.matches(entry) for s in selectors) or any(u in chosen for u in entry.job.depends_on):
            chosen.add(entry.job_id)
    return chosen


def selectors_for(plan: Plan, texts: Iterable[str]) -> list[Selector]:
    """The parsed selectors, each matching at least one job of the plan (a mistyped name must not silently
    rerun nothing: a SelectorError before any work)."""
    selectors = [parse_selector(t) for t in texts]
    for s in selectors:
        if not any(s.matches(e) for e in plan.entries):
            raise SelectorError(f"--rerun {s.text!r} matches no job of suite {plan.suite.name}")
    return selectors


def set_aside(store: Store, job_ids: Iterable[str], stamp: str | None = None) -> int:
    """Move each job's artifacts and result row under `superseded/<job_id>/<stamp>/`; the number of files
    moved. Copy first, delete after: an interruption leaves the files in both places, never in neither."""
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    moved = 0
    for job_id in sorted(job_ids):
        folder = f"artifacts/{job_id}/"
        files = [(rel, rel[len(folder):]) for rel in store.list_files(folder.rstrip("/"))]
        result = paths.result(job_id)
        if store.exists(result):
            files.append((result, "result.parquet"))
        for rel, name in files:
            data = store.read_bytes(rel)
            if data is None:
                continue
            store.write_bytes(paths.superseded(job_id, stamp, name), data)
            store.delete(rel)
            moved += 1
    return moved
