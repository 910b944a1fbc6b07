"""The `glue` view from hand-made rows: each fine-tune job placed in its upstream's cell, a task's score the mean of
its named metrics, intervals over the cell's jobs, the macro over tasks (expected values computed here)."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from kdbench.results.views.glue import glue_display, glue_rows
from kdbench.results.views.jobs import suite_jobs

T_975_DF1 = 12.706204736174707  # Student's t, 97.5% quantile, 1 degree of freedom


def _row(job_id, kind, student, *, method="none", chain=None, params=None, task=None, metric=None, start=None,
         metrics=None):
    return {"job_id": job_id, "kind": kind, "teacher": "big" if kind == "student" else None, "student": student,
            "method": method, "method_params": "{}", "chain": chain or [student], "upstream": [], "seed": 0,
            "status": "ok", "task": "sequence_classification" if task else "masked_lm",
            "metrics": list((metrics or {"test_mlm_acc": 0.1}).items()), "student_params": params,
            "student_arch": "hf/masked_lm", "dataset": "text_mlm", "finetune_task": task, "finetune_metric": metric,
            "finetune_from": start}


def test_cells_scores_intervals_and_macro():
    rows = [_row("t", "teacher", "big", params=1000), _row("b", "baseline", "small", params=400),
            _row("s", "student", "small", method="distilbert", chain=["big", "small"], params=400)]
    scores = {"t": [(0.8, 0.6), (0.7, 0.5)], "b": [(0.5, 0.5), (0.3, 0.4)], "s": [(0.6, 0.7), (0.6, 0.5)]}
    for up, pairs in scores.items():
        for i, (f1, acc) in enumerate(pairs):
            rows.append(_row(f"{up}m{i}", "finetune", "x", task="MRPC", metric="f1+acc", start=up,
                             metrics={"test_f1": f1, "test_acc": acc, "test_mcc": 0.0}))
            rows.append(_row(f"{up}c{i}", "finetune", "x", task="CoLA", metric="mcc", start=up,
                             metrics={"test_mcc": f1 - acc, "test_acc": acc, "test_f1": f1}))
    names = ["job_id", "kind", "teacher", "student", "method", "method_params", "chain", "upstream", "seed",
             "status", "task", "metrics", "student_params", "student_arch", "dataset", "finetune_task",
             "finetune_metric", "finetune_from"]
    table = pa.table({n: [r[n] for r in rows] for n in names},
                     schema=pa.schema([(n, pa.map_(pa.string(), pa.float64()) if n == "metrics" else
                                        pa.list_(pa.string()) if n in ("chain", "upstream") else
                                        pa.int64() if n in ("seed", "student_params") else pa.string())
                                       for n in names]))
    board, tasks = glue_rows(suite_jobs("g", table))
    assert tasks == ["MRPC", "CoLA"] and len(board) == 3
    cell = {b["role"]: b for b in board}
    assert cell["teacher"]["params"] == 1000 and cell["distilled"]["chain"] == "big → small"
    for role, up in (("teacher", "t"), ("alone", "b"), ("distilled", "s")):
        mrpc = [(f1 + acc) / 2 for f1, acc in scores[up]]
        cola = [f1 - acc for f1, acc in scores[up]]
        b = cell[role]
        assert b["MRPC_n"] == b["CoLA_n"] == 2 and b["MRPC_metric"] == "f1+acc" and b["CoLA_metric"] == "mcc"
        assert b["MRPC_mean"] == pytest.approx(sum(mrpc) / 2) and b["CoLA_mean"] == pytest.approx(sum(cola) / 2)
        half = T_975_DF1 * abs(mrpc[0] - mrpc[1]) / math.sqrt(2) / math.sqrt(2)  # t · s / √n, s = |a − b| / √2
        low, high = max(0.0, sum(mrpc) / 2 - half), min(1.0, sum(mrpc) / 2 + half)
        assert (b["MRPC_ci_low"], b["MRPC_ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert b["macro"] == pytest.approx((sum(mrpc) / 2 + sum(cola) / 2) / 2) and b["macro_tasks"] == 2
    assert [b["role"] for b in board] == sorted(cell, key=lambda r: -cell[r]["macro"])  # best macro first
    heads, shown = glue_display(pa.Table.from_pylist(
        [{**b, "latency_ms": None, "latency_device": None} for b in board]))
    assert heads == ["role", "model", "distilled along", "method", "params", "latency ms", "MRPC f1+acc", "CoLA mcc",
                     "n", "macro"]
    teacher = shown[[b["role"] for b in board].index("teacher")]
    assert teacher[6] == "65.0 [1.5, 100.0]" and teacher[7] == "20.0 ± 0.0"  # clipped at 100; no spread
    assert teacher[-1] == f"{100 * cell['teacher']['macro']:.1f}"
