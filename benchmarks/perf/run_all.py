"""Run every perf benchmark and print one table: benchmark, kdbench, baseline, ratio, goal, met?

Run: .venv/bin/python benchmarks/perf/run_all.py [--quick] [--skip p2,plan,p5,p7]
--quick: skip the MLflow comparison (building its 10k-run store takes minutes the first time) and time
P2 on N=1024 with 2 timed epochs instead of N=4096 with 3.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip", default="", help="comma-separated: plan, p2, p4, p5, p6, p7, p9, driver")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {_common.machine()}; {_common.versions()}", flush=True)
    rows = []
    if "plan" not in skip:
        import plan_scale

        rows += plan_scale.run()
    if "p5" not in skip:
        import p5_leaderboard_query

        rows += p5_leaderboard_query.run(quick=a.quick)
    if "p4" not in skip:
        import p4_fused

        rows += p4_fused.run(*((4, 1, 2048) if a.quick else (8, 2, 4096)))
    if "p6" not in skip:
        import torch

        if torch.cuda.is_available():  # a GPU benchmark: its CPU smoke run says nothing about the goal
            import p6_gpu_data_path

            rows += p6_gpu_data_path.run(*((5000, 2) if a.quick else (50_000, 3)), device="cuda")
        else:
            print("p6: skipped (no CUDA device); run p6_gpu_data_path.py on a GPU machine")
    if "p2" not in skip:
        import p2_trainer_throughput

        rows += p2_trainer_throughput.run(*((1024, 128, 2) if a.quick else (4096, 128, 3)))
    if "driver" not in skip:
        import driver_scale

        rows += driver_scale.run(driver_scale.QUICK_SIZES if a.quick else driver_scale.SIZES)
    if "p7" not in skip:
        import p7_teacher_cache

        rows += p7_teacher_cache.run(8, *((2, 2048) if a.quick else (3, 4096)))
    if "p9" not in skip:
        import p9_shard_throughput

        rows += p9_shard_throughput.run(*((800, 1) if a.quick else (2000, 3)))
    print(_common.table([r.cells() for r in rows], ["benchmark", "kdbench", "baseline", "ratio", "goal", "met?"]))


if __name__ == "__main__":
    main()
