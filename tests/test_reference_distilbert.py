"""benchmarks/reference/distilbert_glue.csv: DistilBERT's GLUE dev table (Sanh et al. 2019, Table 1, as the
authors' Distil* README gives it; the paper's PDF could not be read here). Its per-task numbers must average to
the published macro-scores, the ratio must be the "97%" claim, and the parameter counts the "40% fewer" one —
checked against the two architectures built from transformers' default configs (no download, no weights)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

CSV = Path(__file__).resolve().parents[1] / "benchmarks" / "reference" / "distilbert_glue.csv"
TASKS = ["CoLA", "MNLI", "MRPC", "QNLI", "QQP", "RTE", "SST-2", "STS-B", "WNLI"]


def _rows() -> dict[str, dict[str, dict[str, str]]]:
    by_model: dict[str, dict[str, dict[str, str]]] = {}
    with CSV.open() as f:
        for r in csv.DictReader(f):
            assert r["source"].startswith("Sanh"), r
            by_model.setdefault(r["student"], {})[r["task"]] = r
    return by_model


def test_the_per_task_scores_average_to_the_published_macro_scores():
    rows = _rows()
    assert set(rows) == {"bert-base-uncased", "distilbert-base-uncased"}
    macro = {}
    for model, tasks in rows.items():
        assert sorted(tasks) == sorted([*TASKS, "macro"])
        mean = sum(float(tasks[t]["paper_score"]) for t in TASKS) / len(TASKS)
        macro[model] = float(tasks["macro"]["paper_score"])
        assert round(mean, 1) == macro[model], (model, mean)  # 79.50 and 77.00
    assert (macro["bert-base-uncased"], macro["distilbert-base-uncased"]) == (79.5, 77.0)
    assert round(100 * macro["distilbert-base-uncased"] / macro["bert-base-uncased"]) == 97  # "retains 97%"
    distil = rows["distilbert-base-uncased"]
    assert {r["teacher"] for r in distil.values()} == {"bert-base-uncased"}
    assert {r["method"] for r in distil.values()} == {"distilbert"}


def test_the_parameter_counts_are_the_architectures_and_forty_percent_fewer():
    transformers = pytest.importorskip("transformers")
    rows = _rows()
    with torch.device("meta"):  # shapes only: no memory, no weights
        bert = transformers.BertModel(transformers.BertConfig())  # bert-base-uncased: 12 × 768, vocab 30,522
        distil = transformers.DistilBertModel(transformers.DistilBertConfig())  # 6 × 768
    n_bert = sum(p.numel() for p in bert.parameters())
    n_distil = sum(p.numel() for p in distil.parameters())
    # 109,482,240 ("110M", BERT's own rounding) and 66,362,880 ("66M"): within 1% of the stated counts
    assert n_bert / 1e6 == pytest.approx(float(rows["bert-base-uncased"]["macro"]["paper_params_m"]), rel=0.01)
    assert n_distil / 1e6 == pytest.approx(float(rows["distilbert-base-uncased"]["macro"]["paper_params_m"]), rel=0.01)
    assert 100 * (1 - n_distil / n_bert) == pytest.approx(40, abs=1)  # "40% fewer": 39.4%
