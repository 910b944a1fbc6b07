"""Before a run: finished jobs whose weights other jobs still need must be intact.

A teacher whose `model.pt` fails its hash check (truncated, tampered) is not "done": its final
record is dropped, so it runs again — resuming from its last checkpoint when that one is intact,
which restores the finished state at once — and its row is replaced, never doubled.
"""

from __future__ import annotations

import logging

from kdbench import paths
from kdbench.checkpoint import is_intact
from kdbench.store import Store
from kdbench.suite.plan import Plan
from kdbench.teachers.cache import outputs_intact
from kdbench.teachers.load import weights_file

log = logging.getLogger("kdbench.orchestrate")


def corrupt_upstreams(store: Store, plan: Plan, done: set[str]) -> set[str]:
    """Done jobs needed by pending jobs whose weights fail verification; their records are cleared."""
    needed = {(t.job_id, weights_file(t)) for e in plan.entries if e.job_id not in done for t in e.job.teachers
              if t.job_id in done}  # the result weights, or a snapshot epoch's
    bad = {i for i, name in needed if not is_intact(store, Store.artifact(i, name))}
    jobs = plan.jobs  # teacher outputs read by pending students: every view file must be there
    outputs = {o for e in plan.entries if e.job_id not in done for o in e.job.outputs if o in done}
    bad |= {o for o in outputs if not outputs_intact(store, o, jobs[o].recipe.epochs)}
    for job_id in bad:
        log.warning("the weights (or teacher outputs) of job %s are missing or corrupt: it runs again", job_id)
        store.delete(paths.artifact(job_id, paths.FINAL))
    return bad
