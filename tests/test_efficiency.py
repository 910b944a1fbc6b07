"""The `efficiency` view: accuracy against parameters, FLOPs and batch-1 latency, with the Pareto fronts.

FLOPs are checked against the formula (2 per multiply-add of each linear layer), the fronts against a
brute-force reading of the definition, and the costs are measured once per architecture and kept in the store.
"""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from kdbench.results import costs as costs_module
from kdbench.results.report import write_views
from kdbench.results.schema import RESULT_SCHEMA
from kdbench.results.store import write_result
from kdbench.results.views import VIEWS
from kdbench.results.views.efficiency import pareto_front
from kdbench.store import Store
from kdbench.zoo.models.cost import forward_flops, latency_ms

from .conftest import write_plan_rows

SUITE = "eff"
DIGITS = (64, 10)  # flattened 1×8×8 inputs, 10 classes
KD = json.dumps({"alpha": 0.9, "temperature": 4.0})
# model -> widths; accuracies per seed of each cell
WIDTHS = {"big": [128, 128], "s8": [8], "s32": [32]}
CELLS = {  # (kind, model, teacher, chain) -> accuracies over seeds 0, 1, 2
    ("teacher", "big", None, ("big",)): [0.95],
    ("baseline", "s8", None, ("s8",)): [0.60, 0.62, 0.61],
    ("student", "s8", "big", ("big", "s8")): [0.70, 0.72, 0.71],
    ("baseline", "s32", None, ("s32",)): [0.80, 0.82, 0.81],
    ("student", "s32", "big", ("big", "s32")): [0.79, 0.80, 0.78],
}


def mlp_flops(widths: list[int], inputs: int = DIGITS[0], classes: int = DIGITS[1]) -> int:
    dims = [inputs, *widths, classes]
    return sum(2 * a * b for a, b in zip(dims, dims[1:], strict=False))


def mlp_params(widths: list[int], inputs: int = DIGITS[0], classes: int = DIGITS[1]) -> int:
    dims = [inputs, *widths, classes]
    return sum(a * b + b for a, b in zip(dims, dims[1:], strict=False))


def _make(store: Store) -> None:
    plan = []
    for (kind, model, teacher, chain), accs in CELLS.items():
        for seed, acc in enumerate(accs):
            job_id = f"{kind}-{model}-{seed}"
            row = dict.fromkeys(RESULT_SCHEMA.names)
            row.update(job_id=job_id, kind=kind, status="ok", suite=SUITE, dataset="digits", dataset_params="{}",
                       student=model, student_arch="mlp",
                       student_arch_params=json.dumps({"dropout": 0.0, "widths": WIDTHS[model]}),
                       student_params=mlp_params(WIDTHS[model]), teacher=teacher, chain=list(chain), seed=seed,
                       method="kd" if kind == "student" else "none", method_params=KD if kind == "student" else "{}",
                       upstream=["teacher-big-0"] if teacher else [], test_acc=acc, schema_version=1,
                       finished_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
            write_result(store, row)
            plan.append({"suite": SUITE, "job_id": job_id, "kind": kind, "teacher": teacher, "student": model,
                         "method": row["method"], "method_params": row["method_params"], "chain": list(chain),
                         "upstream": row["upstream"], "seed": seed})
    # A planned job with no result yet (seed 3 of s8 distilled): it belongs to its cell, not to a cell of its own.
    plan.append({**next(p for p in plan if p["job_id"] == "student-s8-0"), "job_id": "pending", "seed": 3})
    write_plan_rows(store, SUITE, plan)


@pytest.fixture
def store(tmp_path) -> Store:
    st = Store(str(tmp_path / "store"))
    _make(st)
    return st


def test_forward_flops_are_two_per_multiply_add_of_each_layer():
    for widths in ([8], [32], [128, 128], [64, 16, 4]):
        params = json.dumps({"dropout": 0.0, "widths": widths}, sort_keys=True, separators=(",", ":"))
        assert forward_flops("mlp", params, (1, 8, 8), 10) == mlp_flops(widths)


def test_latency_is_a_positive_median_and_leaves_the_thread_setting_alone():
    import torch

    from kdbench.zoo.models import create_model

    before = torch.get_num_threads()
    model = create_model("mlp", {"widths": [8]}, (1, 8, 8), 10)
    ms = latency_ms(model, (1, 8, 8), budget_s=0.05)
    assert 0 < ms < 1000 and torch.get_num_threads() == before


def brute_front(points):
    out = []
    for i, (c, a) in enumerate(points):
        if c is None or a is None:
            out.append(None)
            continue
        dominated = any(j != i and c2 is not None and a2 is not None and c2 <= c and a2 >= a and (c2 < c or a2 > a)
                        for j, (c2, a2) in enumerate(points))
        out.append(not dominated)
    return out


def test_the_pareto_front_matches_its_definition_ties_and_unknowns_included():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(0, 12)
        points = [(rng.choice([None, *range(5)]), rng.choice([None, 0.1, 0.2, 0.3, 0.4])) for _ in range(n)]
        assert pareto_front(points) == brute_front(points), points


def test_the_view_has_each_cells_size_flops_latency_and_fronts(store):
    table = VIEWS["efficiency"](store, SUITE)
    rows = {(r["role"], r["model"]): r for r in table.to_pylist()}
    assert table.num_rows == len(rows) == 5  # the pending job made no row of its own
    assert set(rows) == {("teacher", "big"), ("alone", "s8"), ("distilled", "s8"), ("alone", "s32"),
                         ("distilled", "s32")}
    for (_, model), r in rows.items():
        assert r["params"] == mlp_params(WIDTHS[model])
        assert r["mflops"] == pytest.approx(mlp_flops(WIDTHS[model]) / 1e6)
        assert r["latency_ms"] > 0 and r["latency_device"].startswith("cpu:")
    roles = {"teacher": "teacher", "baseline": "alone", "student": "distilled"}
    for (kind, model, _, _), accs in CELLS.items():
        r = rows[(roles[kind], model)]
        assert r["dataset"] == "digits" and r["n"] == len(accs) and r["mean"] == pytest.approx(sum(accs) / len(accs))
    # Accuracy vs parameters: s8 distilled (0.71, 610 params) beats s8 alone at the same size; s32 alone (0.81)
    # beats s32 distilled (0.79); the teacher is the most accurate. So the front is: s8 kd, s32 alone, big.
    front = {k for k, r in rows.items() if r["pareto_params"]}
    assert front == {("distilled", "s8"), ("alone", "s32"), ("teacher", "big")}
    assert rows[("distilled", "s8")]["gain"] == pytest.approx(0.10)
    assert rows[("distilled", "s8")]["chain"] == "big → s8" and rows[("alone", "s8")]["chain"] is None
    latency_front = {k for k, r in rows.items() if r["pareto_latency"]}
    assert latency_front == {k for k, f in zip(rows, pareto_front([(r["latency_ms"], r["mean"]) for r in
                                                                   rows.values()]), strict=True) if f}


def test_costs_are_measured_once_per_architecture_and_kept_in_the_store(store, monkeypatch):
    first = VIEWS["efficiency"](store, SUITE).to_pylist()
    assert len(store.list_files("costs", ".json")) == len(WIDTHS)  # three architectures, five cells

    def never(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr("kdbench.zoo.models.cost.model_cost", never)
    again = VIEWS["efficiency"](store, SUITE).to_pylist()
    assert [r["latency_ms"] for r in again] == [r["latency_ms"] for r in first]
    files = write_views(store, SUITE)
    assert {"view-efficiency.html", "view-efficiency.png", "view-efficiency.csv"} <= set(files)


def test_a_dataset_that_cannot_describe_itself_leaves_costs_empty_not_the_view(store, monkeypatch):
    monkeypatch.setattr(costs_module, "describe", lambda dataset, params: None)
    rows = VIEWS["efficiency"](store, SUITE).to_pylist()
    assert len(rows) == 5 and all(r["latency_ms"] is None and r["mflops"] is None for r in rows)
    assert all(r["params"] is not None for r in rows)  # from the results
    assert all(r["pareto_latency"] is None for r in rows) and any(r["pareto_params"] for r in rows)
