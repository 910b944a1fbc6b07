"""Plan scale — suite loading, expansion, pruning and the run-time job DAG at 2.5k, 5k and 10k jobs.

Claim: load_suite + expand + prune_incompatible of a ~10,000-job suite takes < 2 s, and every stage
grows linearly with the job count (jobs/s roughly constant from 2.5k to 10k). JobGraph construction
and draining (pop_ready / complete(ok=True) until finished; no Ray) is timed on the same plans.
Conditions: a generated YAML suite on the `digits` dataset: 2 MLP teachers, 50 MLP students, methods
none + kd, S seeds (jobs = S · (2 + 50 + 100)); median of 5 runs after 1 warm-up, single process.
Run: .venv/bin/python benchmarks/perf/plan_scale.py
"""

from __future__ import annotations

import argparse
import os
import tempfile

import yaml

from kdbench.orchestrate.dag import JobGraph
from kdbench.suite import expand, load_suite
from kdbench.suite.compat import prune_incompatible

SIZES = {2_500: 16, 5_000: 33, 10_000: 66}  # target jobs -> seeds (152 jobs per seed)


def suite_yaml(seeds: int) -> str:
    return yaml.safe_dump({
        "name": f"scale-{seeds}", "version": 1, "dataset": {"name": "digits"},
        "recipe": {"epochs": 1, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
        "teachers": [{"name": f"t{i}", "arch": "mlp", "widths": [256 >> i]} for i in range(2)],
        "students": [{"name": f"s{i}", "arch": "mlp", "widths": [8 + i]} for i in range(50)],
        "methods": ["none", {"kd": {"temperature": 4, "alpha": 0.9}}],
        "seeds": list(range(seeds)),
    }, sort_keys=False)


def plan_of(path: str):
    plan, _ = prune_incompatible(expand(load_suite(path)))
    return plan


def drain(plan) -> int:
    graph = JobGraph({e.job_id: e.job for e in plan.entries})
    n = 0
    while not graph.finished:
        job_id = graph.pop_ready()
        graph.complete(job_id, ok=True)
        n += 1
    return n


def measure(seeds: int, repeats: int) -> dict:
    from _common import timed

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "suite.yaml")
        with open(path, "w") as f:
            f.write(suite_yaml(seeds))
        t_load, suite = timed(lambda: load_suite(path), repeats)
        t_expand, plan = timed(lambda: expand(suite), repeats)
        t_prune, (pruned, _) = timed(lambda: prune_incompatible(plan), repeats)
        t_all, _ = timed(lambda: plan_of(path), repeats)
        t_dag, drained = timed(lambda: drain(pruned), repeats)
    assert drained == len(pruned.entries)
    return {"jobs": len(pruned.entries), "load": t_load, "expand": t_expand, "prune": t_prune, "plan": t_all,
            "dag": t_dag}


def run(repeats: int = 5) -> list:
    from _common import Row, table

    results = [measure(seeds, repeats) for seeds in SIZES.values()]
    print(table([[str(r["jobs"]), *(f"{r[k]:.3f}" for k in ("load", "expand", "prune", "plan", "dag")),
                  f"{r['jobs'] / r['plan']:.0f}", f"{r['jobs'] / r['dag']:.0f}"] for r in results],
                ["jobs", "load s", "expand s", "prune s", "load+expand+prune s", "dag build+drain s",
                 "plan jobs/s", "dag jobs/s"]))
    small, big = results[0], results[-1]
    linear = (big["plan"] / big["jobs"]) / (small["plan"] / small["jobs"])  # per-job cost, 10k vs 2.5k
    print(f"per-job planning cost at {big['jobs']} jobs / at {small['jobs']} jobs: {linear:.2f} (1.0 = linear)")
    return [Row(f"plan: load+expand+prune {big['jobs']} jobs (s)", f"{big['plan']:.2f}", "2.0 (goal)",
                big["plan"] / 2.0, "< 2 s", big["plan"] < 2.0),
            Row(f"plan: per-job cost {big['jobs']} vs {small['jobs']} jobs", f"{linear:.2f}", "1.0 (linear)",
                linear, "<= 1.3", linear <= 1.3),
            Row(f"dag: build+drain {big['jobs']} jobs (s)", f"{big['dag']:.3f}", "—", None, "(info)", True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    run(ap.parse_args().repeats)


if __name__ == "__main__":
    main()
