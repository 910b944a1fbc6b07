"""Validation time — what `kdbench validate` spends on a large real suite, stage by stage.

Goal (issue 19): `kdbench validate benchmarks/suites/crd_cifar100.yaml` in under 2 s. Stages, each in a fresh
process (the per-architecture caches start empty, as in the CLI): importing kdbench's validation path,
load_suite (builds each model once on the meta device to size it), expand, prune_incompatible (one profile per
architecture — parameters, FLOPs, feature-tap shapes, from one meta forward with shape shortcuts,
kdbench/zoo/models/profile.py — then every distinct method × pair built on the meta device) and estimate (sums
the profiles' FLOPs); then the whole CLI command's wall time. The data need not be on this machine (a note).
The machine's load average is printed beside the numbers: on a shared machine they scale with it.
Run: .venv/bin/python benchmarks/perf/validate_time.py [SUITE] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

STAGES = r"""
import json, sys, time
t0 = time.perf_counter()
from kdbench.suite import expand, load_suite
from kdbench.suite.compat import prune_incompatible
from kdbench.suite.estimate import estimate
from kdbench.zoo.datasets.base import data_checked_later
out = {"import": time.perf_counter() - t0}
with data_checked_later():
    t = time.perf_counter(); suite = load_suite(sys.argv[1]); out["load"] = time.perf_counter() - t
    t = time.perf_counter(); plan = expand(suite); out["expand"] = time.perf_counter() - t
    t = time.perf_counter(); plan, pruned = prune_incompatible(plan); out["prune"] = time.perf_counter() - t
    t = time.perf_counter(); estimate(plan); out["estimate"] = time.perf_counter() - t
out["jobs"], out["pruned"] = len(plan), len(pruned)
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", nargs="?", default="benchmarks/suites/crd_cifar100.yaml")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = []
    for _ in range(args.repeats):
        done = subprocess.run([sys.executable, "-c", STAGES, args.suite], capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    walls = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kdbench.cli", "validate", args.suite], capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
    med = {k: statistics.median(r[k] for r in runs) for k in ("import", "load", "expand", "prune", "estimate")}
    print(f"suite {args.suite}: {runs[0]['jobs']} jobs kept, {runs[0]['pruned']} pruned; median of {args.repeats}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| import s | load s | expand s | prune s | estimate s | stages s | `kdbench validate` wall s |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {med['import']:.2f} | {med['load']:.2f} | {med['expand']:.2f} | {med['prune']:.2f} | "
          f"{med['estimate']:.2f} | {sum(med.values()):.2f} | {statistics.median(walls):.2f} |")


if __name__ == "__main__":
    main()
