"""The DistilBERT twin runs through Ray Tune with nothing downloaded: a tiny BERT teacher trained on masked LM,
a half-depth student distilled from alternate teacher layers, from a random start, and alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kdbench.orchestrate import RunOptions, run_suite
from kdbench.results import open_results
from kdbench.results.report import build_leaderboard
from kdbench.results.views import efficiency
from kdbench.store import Store

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "suites" / "distilbert_twin.yaml"


@pytest.mark.slow
def test_the_distilbert_twin_runs_through_ray_tune(tmp_path, ray_local):
    counts = run_suite(str(SUITE), RunOptions(store=str(tmp_path / "s"), track=False))
    assert counts.failed == 0 and counts.run == counts.total == 7
    rows = open_results(tmp_path / "s").to_arrow().to_pylist()
    assert {r["task"] for r in rows} == {"masked_lm"} and all(r["status"] == "ok" for r in rows)
    acc = {(r["kind"], r["method_params"], r["seed"]): dict(r["metrics"])["test_mlm_acc"] for r in rows}
    assert all(0.0 <= a <= 1.0 and math.isfinite(a) for a in acc.values())
    teacher = next(r for r in rows if r["kind"] == "teacher")
    student = next(r for r in rows if r["kind"] == "student")
    assert student["student_params"] < teacher["student_params"]  # half the layers
    assert dict(teacher["metrics"])["test_ppl"] < 250  # better than a uniform guess over the 250-token vocabulary
    copied = {r["seed"]: dict(r["metrics"])["test_mlm_acc"] for r in rows
              if r["method"] == "distilbert" and '"none"' not in (r["method_params"] or "")}
    scratch = {r["seed"]: dict(r["metrics"])["test_mlm_acc"] for r in rows
               if r["method"] == "distilbert" and '"none"' in (r["method_params"] or "")}
    assert len(copied) == len(scratch) == 2
    assert all(copied[s] > scratch[s] for s in copied)  # the teacher's layers are a head start, every seed
    board = build_leaderboard(Store(tmp_path / "s"), "distilbert_twin")
    cells = board.methods.to_pylist()
    assert {c["metric"] for c in cells} == {"mlm_acc"} and len(cells) == 3
    assert next(c for c in cells if c["rank"] == 1 and c["teacher"] is not None)["mean"] == pytest.approx(
        sum(copied.values()) / 2)
    costs = efficiency(Store(tmp_path / "s"), "distilbert_twin").to_pylist()  # params and latency per model
    assert len(costs) == 4 and all(r["params"] > 0 and r["latency_ms"] > 0 for r in costs)
    teacher_size = next(r["params"] for r in costs if r["role"] == "teacher")
    assert teacher_size > max(r["params"] for r in costs if r["role"] != "teacher")
