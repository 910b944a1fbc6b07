"""The study views over a hand-made store; every expected number computed independently (numpy/scipy).

Suite `study` (student `s`, seeds 0-2): s alone; kd from big, from small (seed 2 failed), from big through
the TA `ta`, from big's epoch-2 snapshot (`big@2`), kd that stops distilling after epoch 1, and kd from an
ensemble of big and small. One planned job has no result yet.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from rich.console import Console
from scipy import stats as sps

from kdbench.results import views
from kdbench.results.report import write_views
from kdbench.results.schema import RESULT_SCHEMA
from kdbench.results.store import write_result
from kdbench.results.views.render import NS, rich_table
from kdbench.store import Store

from .conftest import write_plan_rows

SUITE = "study"
KD = json.dumps({"alpha": 0.9, "temperature": 4.0})
ESKD = json.dumps({"alpha": 0.9, "stop_epoch": 1, "temperature": 4.0})
TEACHERS = {"big": (10_000, 0.95, 20), "small": (2_000, 0.90, 20)}  # params, test acc, epochs
# (name, teacher source, chain, method params, upstream, teacher params, teacher acc) -> accuracy per seed
CELLS = {
    "alone": (None, ["s"], "{}", [], None, None, [0.80, 0.82, 0.81]),
    "big": ("big", ["big", "s"], KD, ["T-big"], 10_000, 0.95, [0.85, 0.86, 0.84]),
    "small": ("small", ["small", "s"], KD, ["T-small"], 2_000, 0.90, [0.83, 0.845, None]),
    "ta": ("big", ["big", "ta"], KD, ["T-big"], 10_000, 0.95, [0.90, 0.91, 0.89]),
    "chain": ("big", ["big", "ta", "s"], KD, ["ta"], 5_000, 0.90, [0.87, 0.85, 0.88]),
    "snap": ("big@2", ["big@2", "s"], KD, ["T-big"], 10_000, 0.70, [0.82, 0.83, 0.81]),
    "eskd": ("big", ["big", "s"], ESKD, ["T-big"], 10_000, 0.95, [0.84, 0.855, 0.83]),
    "ens": ("ens", ["ens", "s"], KD, ["T-big", "T-small"], 12_000, 0.96, [0.86, 0.87, 0.85]),
}


def _row(job_id: str, kind: str, **kw) -> dict:
    row = dict.fromkeys(RESULT_SCHEMA.names)
    row.update(job_id=job_id, kind=kind, status="ok", suite=SUITE, dataset="digits", method="none",
               method_params="{}", schema_version=1, finished_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    return row | kw


def _make(store: Store) -> None:
    plan = []
    for t, (params, acc, epochs) in TEACHERS.items():
        write_result(store, _row(f"T-{t}", "teacher", student=t, chain=[t], seed=0, test_acc=acc,
                                 student_params=params, epochs_trained=epochs, recipe=json.dumps({"epochs": epochs})))
        plan.append({"job_id": f"T-{t}", "kind": "teacher", "teacher": None, "student": t, "method": "none",
                     "method_params": "{}", "chain": [t], "upstream": [], "seed": 0})
    for name, (teacher, chain, params, ups, t_params, t_acc, accs) in CELLS.items():
        for seed, acc in enumerate(accs):
            job_id = name if (name == "ta" and seed == 0) else f"{name}-{seed}"
            kind = "baseline" if teacher is None else "student"
            method = "none" if teacher is None else "kd"
            ok = acc is not None
            write_result(store, _row(job_id, kind, teacher=teacher, student=chain[-1], chain=chain, seed=seed,
                                     test_acc=acc, status="ok" if ok else "failed", method=method,
                                     method_params=params, upstream=ups, teacher_params=t_params,
                                     teacher_test_acc=t_acc, student_params=500 if chain[-1] == "s" else 5_000,
                                     combine="arithmetic" if len(ups) > 1 else None))
            plan.append({"job_id": job_id, "kind": kind, "teacher": teacher, "student": chain[-1], "method": method,
                         "method_params": params, "chain": chain, "upstream": ups, "seed": seed})
    plan.append({"job_id": "pending", "kind": "student", "teacher": "big", "student": "s", "method": "kd",
                 "method_params": json.dumps({"temperature": 8.0}), "chain": ["big", "s"], "upstream": ["T-big"],
                 "seed": 0})
    write_plan_rows(store, SUITE, plan)


@pytest.fixture
def store(tmp_path) -> Store:
    st = Store(str(tmp_path / "store"))
    _make(st)
    return st


def _accs(name: str) -> np.ndarray:
    return np.array([a for a in CELLS[name][-1] if a is not None])


def _check_cell(row: dict, name: str, vs: str | None = "alone") -> None:
    """mean/std/95% CI over seeds and the paired gain over `vs` against numpy/scipy."""
    a = _accs(name)
    low, high = sps.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=sps.sem(a))
    assert row["n"] == len(a) and row["mean"] == pytest.approx(a.mean()) and row["std"] == pytest.approx(a.std(ddof=1))
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    if vs is None:
        return
    seeds = [i for i, x in enumerate(CELLS[name][-1]) if x is not None]
    x = np.array([CELLS[name][-1][i] for i in seeds])
    y = np.array([CELLS[vs][-1][i] for i in seeds])
    ci = sps.ttest_rel(x, y).confidence_interval(0.95)
    assert row["gain_n"] == len(seeds) and row["gain"] == pytest.approx((x - y).mean())
    assert (row["gain_ci_low"], row["gain_ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert row["gain_includes_zero"] is bool(ci.low <= 0 <= ci.high)


def test_methods_view(store):
    rows = views.methods(store, SUITE).to_pylist()
    cells = {(r["teacher"], r["chain"], r["method_params"]): r for r in rows}
    kd = json.dumps(json.loads(KD), sort_keys=True, separators=(",", ":"))
    _check_cell(cells[("big", "big → s", kd)], "big")
    _check_cell(cells[("small", "small → s", kd)], "small")
    assert cells[("small", "small → s", kd)]["failed"] == 1
    _check_cell(cells[("big", "big → ta → s", kd)], "chain")
    _check_cell(cells[(None, "s", "{}")], "alone", vs=None)
    assert cells[("big", "big → s", '{"temperature":8.0}')]["n"] == 0  # pending: in the view, in no aggregate
    ranks = {r["chain"] + r["method_params"]: r["rank"] for r in rows if r["teacher"] == "big"}
    assert ranks["big → ta → s" + kd] == 1


def test_takd_view_compares_chains_with_direct_kd(store):
    rows = {r["via"]: r for r in views.takd(store, SUITE).to_pylist()}
    assert set(rows) == {"(alone)", "", "ta"}
    _check_cell(rows[""], "big")
    _check_cell(rows["ta"], "chain")
    assert rows["ta"]["ta_params"] == 5_000 and rows["ta"]["teacher_params"] == 10_000
    d = np.array(CELLS["chain"][-1]) - np.array(CELLS["big"][-1])
    ci = sps.ttest_rel(CELLS["chain"][-1], CELLS["big"][-1]).confidence_interval(0.95)
    assert rows["ta"]["vs_direct"] == pytest.approx(d.mean())
    assert (rows["ta"]["vs_direct_ci_low"], rows["ta"]["vs_direct_ci_high"]) == (pytest.approx(ci.low),
                                                                                 pytest.approx(ci.high))
    assert rows["ta"]["vs_direct_includes_zero"] is bool(ci.low <= 0 <= ci.high)
    _check_cell(rows["(alone)"], "alone", vs=None)


def test_teacher_size_view_orders_by_size_and_compares_neighbours(store):
    rows = [r for r in views.teacher_size(store, SUITE).to_pylist() if r["student"] == "s" and
            r["method_params"] == json.dumps(json.loads(KD), sort_keys=True, separators=(",", ":"))]
    assert [r["teacher"] for r in rows] == ["small", "big"]  # no snapshot, no ensemble, no chain
    _check_cell(rows[0], "small")
    _check_cell(rows[1], "big")
    assert rows[1]["teacher_score"] == pytest.approx(0.95) and rows[1]["smaller_teacher"] == "small"
    x, y = np.array([0.85, 0.86]), np.array([0.83, 0.845])  # the seeds both have
    assert rows[1]["vs_smaller"] == pytest.approx((x - y).mean()) and rows[1]["vs_smaller_n"] == 2


def test_eskd_view_reads_teacher_epochs_and_kd_stop(store):
    rows = views.eskd(store, SUITE).to_pylist()
    by = {(r["teacher"], r["teacher_epoch"], r["kd_stop_epoch"]): r for r in rows}
    assert by[("big", 2, None)]["teacher_source"] == "snapshot"
    _check_cell(by[("big", 2, None)], "snap")
    assert by[("big", 20, None)]["teacher_source"] == "full"
    _check_cell(by[("big", 20, 1)], "eskd")
    assert by[("big", 2, None)]["teacher_score"] == pytest.approx(0.70)


def test_ensembles_view_compares_with_the_best_member(store):
    rows = {r["teacher"]: r for r in views.ensembles(store, SUITE).to_pylist()
            if r["method_params"] == json.dumps(json.loads(KD), sort_keys=True, separators=(",", ":"))}
    ens = rows["ens"]
    assert ens["combine"] == "arithmetic" and ens["members"] == "big + small" and ens["best_single"] == "big"
    _check_cell(ens, "ens")
    d = np.array(CELLS["ens"][-1]) - np.array(CELLS["big"][-1])
    assert ens["vs_best_single"] == pytest.approx(d.mean()) and ens["vs_best_single_n"] == 3


def test_views_render_and_are_written_under_the_store(store):
    console = Console(width=250, record=True)
    console.print(rich_table("takd", SUITE, views.takd(store, SUITE)))
    text = console.export_text()
    a = _accs("chain")
    assert f"{100 * a.mean():.2f}" in text and "ta" in text
    gain_zero = views.methods(store, SUITE).to_pylist()
    if any(r["gain_includes_zero"] for r in gain_zero):
        console.print(rich_table("methods", SUITE, views.methods(store, SUITE)))
        assert NS in console.export_text()
    paths = write_views(store, SUITE)
    for view in ("takd", "teacher-size", "eskd", "methods", "ensembles"):
        page = store.read_bytes(paths[f"view-{view}.html"]).decode()
        assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
        assert store.read_bytes(paths[f"view-{view}.png"]).startswith(b"\x89PNG")


def test_written_views_read_the_results_once_and_equal_each_view_alone(store, monkeypatch):
    import pyarrow.parquet as pq

    import kdbench.results.views.jobs as jobs_module

    reads = []
    real = jobs_module.read_results
    monkeypatch.setattr(jobs_module, "read_results", lambda *a, **k: reads.append(a) or real(*a, **k))
    paths = write_views(store, SUITE)
    assert len(reads) == 1
    for view, fn in views.VIEWS.items():
        if f"view-{view}.parquet" in paths:
            written = pq.read_table(store.path(paths[f"view-{view}.parquet"]))
            assert written.equals(fn(store, SUITE)), view


def test_hinton_view_counts_test_errors(tmp_path):
    """Errors = (1 − accuracy) × the test split's size (digits: 360 images), with the paper's count beside."""
    st = Store(str(tmp_path / "store"))
    _make(st)
    for name, (_, chain, _, _, _, _, accs) in CELLS.items():
        if name in ("alone", "big"):
            for seed in range(3):
                job_id = f"{name}-{seed}"
                row = [r for r in views.jobs.load_jobs(st, SUITE).rows if r["job_id"] == job_id][0]
                write_result(st, _row(job_id, row["kind"], teacher=row["teacher"], student=chain[-1], chain=chain,
                                      seed=seed, test_acc=accs[seed], method=row["method"],
                                      method_params=CELLS[name][2], upstream=CELLS[name][3],
                                      dataset_params='{"train_fraction": 1.0}'))
    st.write_bytes(f"references/{SUITE}.csv", b"teacher,student,method,paper_errors,source\n,s,none,146,Hinton\n")
    rows = {(r["role"], r["teacher"], r["method_params"]): r for r in views.hinton(st, SUITE).to_pylist()
            if r["model"] == "s"}
    alone = rows[("alone", None, "{}")]
    errs = (1 - np.array(CELLS["alone"][-1])) * 360
    low, high = sps.t.interval(0.95, 2, loc=errs.mean(), scale=sps.sem(errs))
    assert alone["test_size"] == 360 and alone["errors"] == pytest.approx(errs.mean())
    assert (alone["errors_ci_low"], alone["errors_ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert alone["paper_errors"] == 146 and alone["paper_source"] == "Hinton"
    kd = json.dumps(json.loads(KD), sort_keys=True, separators=(",", ":"))
    assert rows[("distilled", "big", kd)]["errors"] == pytest.approx(((1 - np.array(CELLS["big"][-1])) * 360).mean())


def test_cli_shows_a_view_and_writes_its_page(store, tmp_path):
    from typer.testing import CliRunner

    from kdbench.cli import app

    page = tmp_path / "takd.html"
    args = ["leaderboard", SUITE, "--store", store.uri, "--view", "takd", "--html", str(page)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Teacher assistants" in result.output and f"{100 * _accs('chain').mean():.2f}" in result.output
    assert page.read_text().startswith("<!DOCTYPE html>") and "data:image/png;base64," in page.read_text()
    bad = CliRunner().invoke(app, ["leaderboard", SUITE, "--store", store.uri, "--view", "tkd"])
    assert bad.exit_code == 2 and "unknown --view 'tkd'" in bad.output


def test_the_metric_and_its_direction_are_read_in_one_place(store, monkeypatch):
    """views.jobs.score is the views' only read of the test metric and higher_is_better their only direction:
    scoring by the error rate (1 − accuracy), lower is better, gives the same ranks, best ensemble members and
    Pareto fronts, with error rates for means."""
    import importlib

    jobs_module = importlib.import_module("kdbench.results.views.jobs")
    before = {v: views.VIEWS[v](store, SUITE).to_pylist() for v in ("methods", "ensembles", "efficiency")}
    monkeypatch.setattr(jobs_module, "score", lambda r: None if r["test_acc"] is None else 1 - r["test_acc"])
    for name in ("methods", "ensembles", "efficiency"):  # the modules that decide what is better
        monkeypatch.setattr(importlib.import_module(f"kdbench.results.views.{name}"), "higher_is_better",
                            lambda rows=(): False)
    after = {v: views.VIEWS[v](store, SUITE).to_pylist() for v in before}
    for view, column in (("methods", "rank"), ("ensembles", "best_single"), ("efficiency", "pareto_params")):
        assert [r[column] for r in after[view]] == [r[column] for r in before[view]], view
        assert any(r[column] for r in after[view])
    for old, new in zip(before["methods"], after["methods"], strict=True):
        assert new["mean"] == (None if old["mean"] is None else pytest.approx(1 - old["mean"]))
        assert new["gain"] == (None if old["gain"] is None else pytest.approx(-old["gain"]))
