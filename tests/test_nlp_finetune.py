"""DistilBERT's whole pipeline at CI size, through Ray Tune: distil on masked LM, then fine-tune the teacher and
every student on a labelled task (benchmarks/suites/distilbert_glue_twin.yaml); the `glue` view shows each model's
parameters, latency and task score with its interval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdbench.orchestrate import RunOptions, run_suite
from kdbench.results import open_results
from kdbench.results.views import glue
from kdbench.results.views.render import display
from kdbench.store import Store

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "suites" / "distilbert_glue_twin.yaml"


@pytest.mark.ray
@pytest.mark.slow
def test_distil_then_finetune_runs_through_ray_tune(tmp_path, ray_local):
    store = tmp_path / "s"
    counts = run_suite(str(SUITE), RunOptions(store=str(store), track=False))
    assert counts.failed == 0 and counts.run == counts.total == 12
    rows = {r["job_id"]: r for r in open_results(store).to_arrow().to_pylist()}
    tuned = [r for r in rows.values() if r["kind"] == "finetune"]
    assert len(tuned) == 8 and all(r["status"] == "ok" and r["task"] == "sequence_classification" for r in tuned)
    # each row says its task, its metric and the job it started from, which ran (and finished) first
    assert {(r["finetune_task"], r["finetune_metric"]) for r in tuned} == {("polarity", "acc")}
    assert {rows[r["finetune_from"]]["kind"] for r in tuned} == {"teacher", "baseline", "student"}
    assert all(rows[r["finetune_from"]]["finished_at"] <= r["finished_at"] for r in tuned)
    for r in tuned:  # the upstream's encoder, a fresh pooler and head (4 tensors); the MLM head dropped
        start = json.loads(Store(store).read_bytes(f"artifacts/{r['job_id']}/start.json"))
        assert start["from"] == r["finetune_from"] and dict(r["counters"])["start_new_tensors"] == 4
        assert sorted(start["new"]) == ["bert.pooler.dense.bias", "bert.pooler.dense.weight",
                                        "classifier.bias", "classifier.weight"]
        assert all(k.startswith("cls.") for k in start["dropped"]) and start["loaded"]
    board = glue(Store(store), "distilbert_glue_twin").to_pylist()
    assert {(b["role"], b["model"]) for b in board} == {("teacher", "bert-4"), ("alone", "bert-2"),
                                                        ("distilled", "bert-2")} and len(board) == 4
    for b in board:  # two fine-tune seeds per model (one distillation seed): a mean with its interval
        assert b["polarity_n"] == 2 and b["params"] > 0 and b["latency_ms"] > 0
        assert 0.0 <= b["polarity_ci_low"] <= b["polarity_mean"] <= b["polarity_ci_high"] <= 1.0
        assert b["macro"] == pytest.approx(b["polarity_mean"])
    cells = {}  # (role, model, method params of a distilled model) -> fine-tuned test accuracies
    for r in tuned:
        up = rows[r["finetune_from"]]
        role = {"teacher": "teacher", "baseline": "alone", "student": "distilled"}[up["kind"]]
        cells.setdefault((role, up["student"], up["method_params"] if role == "distilled" else None), []).append(
            dict(r["metrics"])["test_acc"])
    for b in board:
        scores = cells[(b["role"], b["model"], b["method_params"])]
        assert b["polarity_mean"] == pytest.approx(sum(scores) / len(scores))
    teacher = next(b for b in board if b["role"] == "teacher")
    assert teacher["params"] > max(b["params"] for b in board if b["role"] != "teacher")
    heads, shown = display("glue", glue(Store(store), "distilbert_glue_twin"))
    print("\n".join(" | ".join(line) for line in [heads, *shown]))
    assert heads[:6] == ["role", "model", "distilled along", "method", "params", "latency ms"]
    assert "polarity acc" in heads and heads[-1] == "macro"
