"""Driver scale — `kdbench run` of N near-empty jobs: the per-job cost of the driver (Tune's loop, the DAG
searcher, the recording callback, result files, MLflow) must not grow with N.

Claim: the marginal wall seconds per job between the two largest sizes is within 1.25× of the marginal
seconds between the two smallest (1.0 = linear; a per-job cost that grew with N, e.g. a scan over all
trials on every event, would show as a ratio that grows with the sizes). Reported beside it: jobs/s and
the jobs' own mean wall seconds, so the per-job orchestration cost can be read off.
Conditions: a suite of N baseline jobs of one epoch on 64 synthetic samples (an MLP of width 4), one per
seed, `resources: {cpus: 1, jobs_per_trial: 1}` (one trial per job: `auto`, the default, would pack these
near-empty jobs) on a local Ray with every core; each size in a fresh store, the embedded
MLflow on (`tracked`) and off (`--no-track`). Wall time is the whole command (Ray start, report included).
Run: .venv/bin/python benchmarks/perf/driver_scale.py [--sizes 100,400,1600]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

SIZES = (100, 400, 1600)
QUICK_SIZES = (50, 200, 800)
GOAL = 1.25


def suite_yaml(n: int) -> str:
    return yaml.safe_dump({
        "name": f"driver-scale-{n}", "version": 1,
        "description": "Driver scale: N near-empty baseline jobs, one per seed.",
        "dataset": {"name": "synthetic", "n_train": 64, "n_val": 16, "n_test": 16},
        "recipe": {"epochs": 1, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
        "teachers": [], "students": [{"name": "s", "arch": "mlp", "widths": [4]}],
        "methods": ["none"], "seeds": list(range(n)), "resources": {"cpus": 1, "jobs_per_trial": 1},
    }, sort_keys=False)


def _kdbench() -> str:
    return os.path.join(os.path.dirname(sys.executable), "kdbench")


def run_once(n: int, tracked: bool, workdir: str) -> dict:
    """Wall seconds of one `kdbench run` of the n-job suite in a fresh store, and its jobs' mean seconds."""
    from kdbench.results import read_results
    from kdbench.store import Store

    path, store = os.path.join(workdir, f"suite-{n}.yaml"), os.path.join(workdir, f"store-{n}-{tracked}")
    with open(path, "w") as f:
        f.write(suite_yaml(n))
    shutil.rmtree(store, ignore_errors=True)
    cmd = [_kdbench(), "run", path, "--store", store] + ([] if tracked else ["--no-track"])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    rows = read_results(Store(store), columns=["status", "wall_seconds"]).to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    if len(ok) != n:
        raise RuntimeError(f"{n}-job suite: {len(ok)} jobs succeeded")
    shutil.rmtree(store, ignore_errors=True)
    return {"n": n, "tracked": tracked, "wall": wall, "job_s": sum(r["wall_seconds"] for r in ok) / n}


def run(sizes: tuple[int, ...] = SIZES) -> list:
    from _common import Row, table

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for tracked in (False, True):
            for n in sizes:
                results.append(run_once(n, tracked, tmp))
                print(f"  driver scale: {n} jobs, {'tracked' if tracked else 'untracked'}: "
                      f"{results[-1]['wall']:.1f} s", flush=True)
    lines, rows = [], []
    for tracked in (False, True):
        rs = [r for r in results if r["tracked"] == tracked]
        marginal = [(b["wall"] - a["wall"]) / (b["n"] - a["n"]) for a, b in zip(rs, rs[1:], strict=False)]
        for i, r in enumerate(rs):
            lines.append([r["n"], "tracked" if tracked else "untracked", f"{r['wall']:.1f}",
                          f"{r['n'] / r['wall']:.1f}", f"{1000 * r['job_s']:.0f}",
                          f"{1000 * marginal[i - 1]:.1f}" if i else "—"])
        growth = marginal[-1] / marginal[0]
        side = "tracked" if tracked else "untracked"
        rows.append(Row(f"driver: marginal s/job {rs[-2]['n']}→{rs[-1]['n']} vs {rs[0]['n']}→{rs[1]['n']} ({side})",
                        f"{marginal[-1]:.4f}", f"{marginal[0]:.4f}", growth, f"≤ {GOAL} (linear)", growth <= GOAL))
    print(table([[str(c) for c in line] for line in lines],
                ["jobs", "MLflow", "wall s", "jobs/s", "mean job ms", "marginal ms/job"]))
    return rows


def main() -> None:
    from _common import machine, table, versions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="three or more job counts, ascending")
    a = ap.parse_args()
    sizes = tuple(int(s) for s in a.sizes.split(","))
    if len(sizes) < 3 or list(sizes) != sorted(set(sizes)):
        ap.error("--sizes: three or more ascending job counts")
    print(f"{machine()}; {versions()}", flush=True)
    rows = run(sizes)
    print(table([r.cells() for r in rows], ["benchmark", "kdbench", "baseline", "ratio", "goal", "met?"]))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
