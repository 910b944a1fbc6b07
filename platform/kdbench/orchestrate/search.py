"""Per-cell hyperparameter searches (a suite's `search:`), chosen on the validation split.

For each cell — a [teacher or ensemble, student] pair — one Ray Tune experiment samples `trials`
configurations of the method's hyperparameters with Optuna's TPE sampler (Ray Tune's `OptunaSearch`,
seeded) and stops poor trials early with ASHA on the per-epoch validation accuracy the engine reports.
Cells run one after another; the trials of a cell run concurrently as the cluster's capacity allows
(`max_concurrent_trials` = CPU or GPU slots for the suite's per-job resources). Tune only ever sees
sampled distributions: grids are kdbench's (`OptunaSearch` refuses `grid_search`).

A trial is an ordinary content-addressed job (the cell's student job with the sampled hyperparameters,
seeded with the search's seed, teachers run live): its checkpoints go to artifacts/<job_id>/ like any job's,
so an interrupted trial resumes and a trial whose config is later selected is not trained twice.

The selected configuration (best final value of the search's metric — the task's primary one on the
validation split by default, `val_acc` for classification — among the trials ASHA let finish; never test) then
enters the plan as ordinary student jobs over the suite's seeds (suite.plan.expand's `selections`), so
the leaderboard reports its test accuracy over seeds. What is stored, under `searches/`:

    searches/<key>/trials.parquet   one row per trial (SEARCH_TRIALS_SCHEMA): queryable with DuckDB
    searches/<key>/selected.json    the choice and how it was made; its presence means "finished"
    searches/<suite>/<key>.json     the same record under the suite's names (what the views read)

`key` is a content hash of the cell's trial job template (dataset, models, recipe, teacher job ids,
fixed hyperparameters), the space, the budget, the scheduler, the metric and the seed: a finished search
is never run again, in this suite or any other sharing the store; change any of these and it is a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kdbench import paths
from kdbench.jobs import Job, canonical_json
from kdbench.methods import METHODS
from kdbench.methods.base import init_epochs
from kdbench.store import Store
from kdbench.suite.load import Suite
from kdbench.suite.plan import Plan, expand

log = logging.getLogger("kdbench.search")

SEARCH_TRIALS_SCHEMA = pa.schema([
    pa.field("search_key", pa.string(), nullable=False),
    pa.field("suite", pa.string()),
    pa.field("teacher", pa.string()),
    pa.field("student", pa.string()),
    pa.field("method", pa.string()),
    pa.field("trial", pa.int64()),  # order in which Tune created the trial
    pa.field("params", pa.string()),  # JSON: the method's hyperparameters (fixed + sampled, defaults filled in)
    pa.field("job_id", pa.string()),  # the trial's job (its checkpoints under artifacts/<job_id>/)
    pa.field("val", pa.float64()),  # last reported value of the search's metric (validation): what selection compares
    pa.field("best_epoch_val", pa.float64()),  # the best per-epoch value it reported, in the metric's direction
    pa.field("epochs", pa.int64()),  # epochs it trained before finishing or being stopped
    pa.field("stopped_early", pa.bool_()),  # stopped by ASHA before its recipe's last epoch
    pa.field("selected", pa.bool_()),
    pa.field("error", pa.string()),
])


@dataclass(frozen=True)
class SearchCell:
    teacher: str
    student: str
    template: Job  # the trial job with the fixed hyperparameters only (sampled ones are added per trial)
    key: str


def _full_params(method: str, params: dict) -> dict:
    cls = METHODS.get(method)
    return cls.Params(**params).model_dump(mode="json")


def search_cells(suite: Suite) -> list[SearchCell]:
    """The suite's search cells, each with its trial template and content key."""
    return _cells(suite)[0]


def _cells(suite: Suite) -> tuple[list[SearchCell], Plan]:
    """The search cells and the plan they were read from: the suite expanded with a placeholder choice per
    cell (its fixed hyperparameters), which holds each cell's student job and every teacher job a trial needs."""
    s = suite.search
    fixed = _full_params(s.method, {**s.params, **{n: args[0] for n, _, args in s.space}})
    plan = expand(suite, {pair: fixed for pair in s.pairs})
    out = []
    for teacher, student in s.pairs:
        entry = next(e for e in plan.entries if e.job.kind == "student" and e.teacher == teacher
                     and e.student == student and tuple(e.chain) == (teacher, student) and e.job.method.params == fixed)
        # Trials run their teachers live (no teacher-output jobs), with the search's seed.
        method = dataclasses.replace(entry.job.method, params=_full_params(s.method, s.params))  # keeps `code`
        template = dataclasses.replace(entry.job, seed=s.seed, outputs=(), replay=None, method=method)
        body = {"template": template.identity(), "space": [list(x) for x in s.space], "trials": s.trials,
                "metric": s.metric, "scheduler": s.scheduler, "grace_epochs": s.grace_epochs, "sampler": "optuna-tpe"}
        key = hashlib.sha256(canonical_json(body).encode()).hexdigest()[:20]
        out.append(SearchCell(teacher, student, template, key))
    return out, plan


def trial_job(template: Job, sampled: dict) -> Job:
    params = {**template.method.params, **sampled}
    return dataclasses.replace(template, method=dataclasses.replace(
        template.method, params=_full_params(template.method.name, params)))  # keeps its plugin `code`


def _tune_space(space) -> dict:
    from ray import tune

    make = {"uniform": lambda a: tune.uniform(*a), "loguniform": lambda a: tune.loguniform(*a),
            "int": lambda a: tune.randint(a[0], a[1] + 1), "choice": lambda a: tune.choice(list(a))}
    return {name: make[kind](args) for name, kind, args in space}


def search_trial(config: dict, template: dict, store: str, plugins: list[str], cpus: float, gpus: float,
                 metric: str = "val_acc") -> None:
    """One trial, on a Tune worker: train the sampled configuration, reporting `metric` (a validation metric of
    the task) every epoch (for ASHA)."""
    from ray import tune

    from kdbench.engine import run_job
    from kdbench.engine.device import worker_device
    from kdbench.suite.plugins import import_plugins

    import_plugins(plugins)
    device = worker_device(cpus, gpus)
    job = trial_job(Job.from_dict(template), config)
    reported = []

    def report(m: dict) -> None:
        reported.append(m[metric])
        tune.report({metric: m[metric], "epoch": m["epoch"], "job_id": job.job_id})

    final = run_job(job, Store(store), device=device, report=report)
    if not reported:  # finished before (content-addressed): report its validation metric once
        tune.report({metric: final[metric], "epoch": final["epochs_trained"], "job_id": job.job_id})


def _concurrency(ray, suite: Suite) -> int:
    res, total = suite.resources, ray.cluster_resources()
    slots = total.get("CPU", 1) / res.cpus
    if res.gpus:
        slots = min(slots, total.get("GPU", 0) / res.gpus)
    return max(1, int(slots))


def _run_cell(cell: SearchCell, suite: Suite, store: Store, ray) -> dict:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    s = suite.search
    # Tune counts reports: one per epoch, a method's initialisation stage included (e.g. AB's init_epochs).
    method = cell.template.method
    epochs = cell.template.recipe.epochs + init_epochs(METHODS.get(method.name).Params(**method.params))
    sampler = OptunaSearch(seed=s.seed)  # TPE (Optuna's default sampler), seeded: the same trials every time
    # max_t one past the last epoch: ASHA stops a trial *at* max_t, which would kill it in its last report,
    # before the engine writes its result; trials that survive every rung finish on their own.
    scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=epochs + 1, grace_period=s.grace_epochs)
                 if s.scheduler == "asha" else FIFOScheduler())
    trainable = tune.with_parameters(search_trial, template=cell.template.to_dict(), store=store.uri,
                                     plugins=list(suite.plugins), cpus=suite.resources.cpus,
                                     gpus=suite.resources.gpus, metric=s.metric)
    trainable = tune.with_resources(trainable, {"cpu": suite.resources.cpus, "gpu": suite.resources.gpus})
    storage, storage_fs = store.path("ray"), (None if store.local else store.fs)
    tuner = tune.Tuner(
        trainable, param_space=_tune_space(s.space),
        tune_config=tune.TuneConfig(metric=s.metric, mode="max" if s.maximize else "min", search_alg=sampler,
                                    scheduler=scheduler,
                                    num_samples=s.trials, max_concurrent_trials=_concurrency(ray, suite),
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=f"search-{cell.key}", storage_path=storage, storage_filesystem=storage_fs,
                                  verbose=0, failure_config=tune.FailureConfig(max_failures=suite.retries),
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))
    grid = tuner.fit()
    rows = []
    for i, result in enumerate(grid):
        sampled = {n: result.config[n] for n, _, _ in s.space}
        job = trial_job(cell.template, sampled)
        history = result.metrics_dataframe
        vals = [] if history is None or s.metric not in history else [float(v) for v in history[s.metric]]
        last = (result.metrics or {}).get(s.metric)
        vals = vals if vals else ([] if last is None else [float(last)])
        epochs_run = int((result.metrics or {}).get("epoch", 0))
        rows.append({"search_key": cell.key, "suite": suite.name, "teacher": cell.teacher, "student": cell.student,
                     "method": s.method, "trial": i, "params": canonical_json(job.method.params),
                     "job_id": job.job_id, "val": vals[-1] if vals else None,
                     "best_epoch_val": (max if s.maximize else min)(vals) if vals else None, "epochs": epochs_run,
                     "stopped_early": bool(vals) and epochs_run < epochs and result.error is None,
                     "selected": False, "error": None if result.error is None else str(result.error)[-2000:]})
    # Trials that ran to the end compete on their final value; one ASHA stopped is measured on fewer epochs.
    scored = [r for r in rows if r["val"] is not None and not r["stopped_early"]]
    scored = scored or [r for r in rows if r["val"] is not None]
    if not scored:
        raise RuntimeError(f"search {cell.key} ({cell.teacher} → {cell.student}): no trial reported {s.metric}")
    sign = 1 if s.maximize else -1  # the best value first; ties: the earlier trial
    best = max(scored, key=lambda r: (sign * r["val"], -r["trial"]))
    best["selected"] = True
    return {"rows": rows, "best": best}


def _how(suite: Suite, n: int, best_val: float) -> str:
    s = suite.search
    sched = f"ASHA (grace {s.grace_epochs} epochs)" if s.scheduler == "asha" else "no early stopping"
    return f"search: {n} trials, Optuna TPE (seed {s.seed}) via Ray Tune, {sched}; best {s.metric} {best_val:.4f}"


def _write(store: Store, suite: Suite, cell: SearchCell, rows: list[dict], best: dict) -> dict:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=SEARCH_TRIALS_SCHEMA), buf)
    store.write_bytes(paths.search(cell.key, "trials.parquet"), buf.getvalue())
    record = {"key": cell.key, "method": suite.search.method, "selected_params": json.loads(best["params"]),
              "best_val": best["val"], "trials": len(rows), "sampler": "optuna-tpe",
              "scheduler": suite.search.scheduler, "grace_epochs": suite.search.grace_epochs,
              "metric": suite.search.metric, "seed": suite.search.seed, "trial_job_id": best["job_id"],
              "how": _how(suite, len(rows), best["val"])}
    store.write_bytes(paths.search(cell.key, "selected.json"), json.dumps(record, sort_keys=True).encode())
    return record


def _link(store: Store, suite: Suite, cell: SearchCell, record: dict) -> None:
    named = record | {"teacher": cell.teacher, "student": cell.student, "suite": suite.name}
    store.write_bytes(f"{paths.suite_searches(suite.name)}/{cell.key}.json", json.dumps(named, sort_keys=True).encode())


def finished(store: Store, cell: SearchCell) -> dict | None:
    data = store.read_bytes(paths.search(cell.key, "selected.json"))
    return None if data is None else json.loads(data)


def run_searches(suite: Suite, store: Store, opts: Any) -> dict[tuple[str, str], dict]:
    """Run the suite's unfinished searches (after the teacher jobs they need); returns the selections for
    suite.plan.expand: (teacher, student) -> the chosen hyperparameters.

    One expansion of the suite here, before any choice is known: it gives the cells' templates (hence their
    keys, which say whether a search has finished) and the teacher jobs the trials need. The runner then
    expands once more with the choices; that second plan cannot be derived from this one, since which
    teacher-output jobs a plan holds depends on all of its student jobs (suite/outputs.py)."""
    cells, plan = _cells(suite)
    todo = [c for c in cells if finished(store, c) is None]
    if todo:
        from .ray_session import init_ray

        _run_upstreams(plan, store, opts, {t.job_id for c in todo for t in c.template.teachers})
        ray = init_ray(opts.address, opts.num_cpus)
        for cell in todo:  # one Tune experiment per cell, one after another
            log.info("search %s: %s → %s, %d trials", cell.key, cell.teacher, cell.student, suite.search.trials)
            out = _run_cell(cell, suite, store, ray)
            _write(store, suite, cell, out["rows"], out["best"])
    selections = {}
    for cell in cells:
        record = finished(store, cell)
        _link(store, suite, cell, record)
        selections[(cell.teacher, cell.student)] = _full_params(suite.search.method, record["selected_params"])
    return selections


def _run_upstreams(plan: Plan, store: Store, opts: Any, needed: set[str]) -> None:
    """Train the teacher jobs the searches read (and what they need), as a plan of their own, untracked.
    `plan`: the cells' plan (_cells); its teacher jobs are the suite's, whatever the placeholder choices."""
    from kdbench.results import STATUS_OK, read_results

    from .ray_session import init_ray
    from .state import SuiteRun
    from .tune_run import run_tune, trial_config

    jobs = plan.jobs
    closure, stack = set(), list(needed)
    while stack:
        j = stack.pop()
        if j in closure or j not in jobs:
            continue
        closure.add(j)
        stack.extend(jobs[j].depends_on)
    sub = Plan(plan.suite, tuple(e for e in plan.entries if e.job_id in closure))
    done = {r["job_id"] for r in read_results(store, closure).to_pylist() if r["status"] == STATUS_OK}
    if done >= closure:
        return
    ray = init_ray(opts.address, opts.num_cpus)
    run = SuiteRun(sub, store, done, None, lambda e: trial_config(e, store, sub))
    run_tune(run, ray)
    if run.counts.failed or run.counts.interrupted:
        raise RuntimeError(f"the teachers the search needs did not finish: {run.counts.summary()}")
