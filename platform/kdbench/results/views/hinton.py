"""`hinton` view (Hinton, Vinyals & Dean 2015, §3, MNIST): test *errors* — misclassified test images, out of
the test set's size — of the teachers, the students alone and the distilled students, beside the paper's
67 (2×1200 teacher, dropout + jitter), 146 (2×800 student alone) and 74 (2×800 distilled at T = 20)."""

from __future__ import annotations

import json
from functools import cache

import pyarrow as pa

from kdbench.store import Store

from ..stats import summarize
from .cells import CELL_FIELDS, baselines, cell, dataset_of, table
from .jobs import SuiteJobs, group, load_jobs, ok_scores
from .reference import lookup, reference_rows, with_column

FIXED_TEST_SIZES = {"mnist": 10_000, "cifar10": 10_000, "cifar100": 10_000}  # the official test sets
FIELDS = [pa.field("dataset", pa.string()), pa.field("role", pa.string()),  # teacher | alone | distilled
          pa.field("model", pa.string()), pa.field("teacher", pa.string()), pa.field("method", pa.string()),
          pa.field("method_params", pa.string()), pa.field("test_size", pa.int64()),
          pa.field("errors", pa.float64()),  # mean test errors over seeds: (1 − accuracy) × test size
          pa.field("errors_ci_low", pa.float64()), pa.field("errors_ci_high", pa.float64()),
          pa.field("paper_errors", pa.float64()), pa.field("paper_source", pa.string()), *CELL_FIELDS]


@cache
def test_size(dataset: str, params_json: str) -> int | None:
    """Images in the test split: the official count, or measured by building the (offline) dataset."""
    if dataset in FIXED_TEST_SIZES:
        return FIXED_TEST_SIZES[dataset]
    try:
        return len(_build(dataset, params_json).test)
    except Exception:  # files not here: no count, no errors column
        return None


def _build(dataset: str, params_json: str):
    import torch

    from kdbench.engine.data import dataset_on
    from kdbench.jobs import Component

    return dataset_on(Component(dataset, json.loads(params_json)), torch.device("cpu"))


def hinton_rows(jobs: SuiteJobs, reference: list[dict] = ()) -> list[dict]:
    alone = baselines(jobs.rows)
    out = []
    for (kind, model, teacher, method, params), rows in group(
            jobs.where(lambda r: r["kind"] in ("teacher", "baseline", "student") and len(r["chain"]) <= 2),
            lambda r: (r["kind"], r["student"], r["teacher"], r["method"], r["method_params"])).items():
        role = {"teacher": "teacher", "baseline": "alone", "student": "distilled"}[kind]
        size = next((test_size(r["dataset"], r["dataset_params"]) for r in rows if r["dataset_params"]), None)
        errs = summarize((1 - a) * size for a in ok_scores(rows).values()) if size else None
        paper, source = lookup(reference, "paper_errors", teacher=teacher or "", student=model,
                               method=method if kind != "teacher" else "none")
        out.append({"dataset": dataset_of(rows), "role": role, "model": model, "teacher": teacher, "method": method,
                    "method_params": params, "test_size": size, "errors": errs.mean if errs else None,
                    "errors_ci_low": errs.ci_low if errs else None, "errors_ci_high": errs.ci_high if errs else None,
                    "paper_errors": paper, "paper_source": source,
                    **cell(rows, alone.get(model) if kind == "student" else None)})
    order = {"teacher": 0, "alone": 1, "distilled": 2}
    return sorted(out, key=lambda r: (order[r["role"]], r["model"], r["teacher"] or "", r["method_params"]))


def hinton(store: Store, suite: str, jobs: SuiteJobs | None = None) -> pa.Table:
    ref = with_column(reference_rows(store, suite), "paper_errors")
    return table(hinton_rows(jobs or load_jobs(store, suite), ref), FIELDS)
