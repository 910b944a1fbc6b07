"""Leaderboards (the `methods` and `teacher-size` views, the failures table, the terminal tables and the
report files) over a hand-made suite; expected numbers computed independently with `statistics`.

Suite: teachers big (10k params) and small (2k); student mlp alone (baseline) and distilled with kd
from each teacher and through a teacher assistant (big → ta → mlp); seeds 0–2; kd from small fails
on seed 2; one planned job has no result yet; one result belongs to another suite only.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import statistics

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from kdbench.results.report import build_leaderboard, write_report
from kdbench.results.schema import PLAN_SCHEMA, RESULT_SCHEMA
from kdbench.results.store import write_result
from kdbench.results.views.cells import table
from kdbench.results.views.failures import failures_rows
from kdbench.results.views.jobs import SuiteJobs, suite_jobs
from kdbench.results.views.methods import FIELDS as METHODS_FIELDS
from kdbench.results.views.methods import methods_rows
from kdbench.results.views.plots import plot_methods, plot_teacher_size
from kdbench.results.views.render import terminal_tables
from kdbench.results.views.teacher_size import FIELDS as TEACHER_SIZE_FIELDS
from kdbench.results.views.teacher_size import teacher_size_rows
from kdbench.store import Store

from .conftest import write_plan_rows

T2, T1 = 4.302652729911275, 12.706204736174707  # t_{0.975, 2}, t_{0.975, 1}
PNG = b"\x89PNG\r\n\x1a\n"
SUITE = "toy"

ACC = {  # (student, teacher, chain) -> test accuracy per seed (None: failed)
    ("mlp", None, ("mlp",)): [0.80, 0.82, 0.81],
    ("mlp", "big", ("big", "mlp")): [0.85, 0.86, 0.84],
    ("mlp", "small", ("small", "mlp")): [0.83, 0.845, None],
    ("mlp", "big", ("big", "ta", "mlp")): [0.87, 0.85, 0.88],
    ("ta", "big", ("big", "ta")): [0.90],
}
TEACHER = {"big": (10_000, [0.95, 0.96, 0.94]), "small": (2_000, [0.90, 0.91, 0.92])}


def _result(job_id: str, kind: str, **kw) -> dict:
    row = dict.fromkeys(RESULT_SCHEMA.names)
    row.update(job_id=job_id, kind=kind, status="ok", suite=SUITE, dataset="digits", method="none",
               method_params="{}", schema_version=1, finished_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    row.update(kw)
    return row


def _student_rows() -> list[dict]:
    rows = []
    for (student, teacher, chain), accs in ACC.items():
        kind = "student" if teacher else "baseline"
        for seed, acc in enumerate(accs):
            params, t_accs = TEACHER.get(teacher, (None, [None] * 3))
            status, error = ("ok", None) if acc else ("failed", "RuntimeError: boom")
            rows.append(_result(f"{'-'.join(chain)}-{seed}", kind, teacher=teacher, student=student,
                                chain=list(chain), seed=seed, test_acc=acc, status=status, error=error,
                                method="kd" if teacher else "none", teacher_params=params,
                                teacher_test_acc=t_accs[seed], student_params=500))
    return rows


def _results() -> list[dict]:
    teachers = [_result(f"{t}-0", "teacher", student=t, chain=[t], seed=0, test_acc=accs[0], student_params=p)
                for t, (p, accs) in TEACHER.items()]
    other = _result("other-0", "baseline", suite="other", student="cnn", chain=["cnn"], seed=0, test_acc=0.5)
    rows = teachers + _student_rows() + [other]
    rows[2]["student"] = "renamed-elsewhere"  # the baseline job carries another suite's name in results
    return rows


def _plan(results: list[dict]) -> list[dict]:
    keys = ["job_id", "kind", "teacher", "method", "method_params", "chain", "seed"]
    # A student's upstream: its own teacher's job (seed 0's, enough for the views: they count upstreams).
    plan = [{"suite": SUITE, "student": r["chain"][-1], "upstream": [f"{'-'.join(r['chain'][:-1])}-0"] if
             r["kind"] == "student" else [], **{k: r[k] for k in keys}} for r in results if r["suite"] == SUITE]
    pending = {"job_id": "big-mlp-T8-0", "kind": "student", "teacher": "big", "student": "mlp",
               "method": "kd", "method_params": '{"T": 8}', "chain": ["big", "mlp"], "seed": 0}
    return [*plan, {"suite": SUITE, "upstream": ["big-0"], **pending}]


@pytest.fixture
def tables() -> tuple[pa.Table, pa.Table]:
    results = _results()
    return (pa.Table.from_pylist(results, schema=RESULT_SCHEMA),
            pa.Table.from_pylist(_plan(results), schema=PLAN_SCHEMA))


def _expected_ci(xs: list[float], t: float) -> tuple[float, float]:
    m, s = statistics.mean(xs), statistics.stdev(xs)
    return m - t * s / math.sqrt(len(xs)), m + t * s / math.sqrt(len(xs))


def _jobs(results: pa.Table, plan: pa.Table | None = None) -> SuiteJobs:
    return suite_jobs(SUITE, results, plan)


def _methods(jobs: SuiteJobs) -> pa.Table:
    return table(methods_rows(jobs), METHODS_FIELDS)


def _teacher_size(jobs: SuiteJobs) -> pa.Table:
    return table(teacher_size_rows(jobs), TEACHER_SIZE_FIELDS)


PENDING = '{"T":8}'  # the method_params of the pending job's cell, in no aggregate


def _cell(methods: pa.Table, teacher: str | None, chain: str) -> dict:
    (row,) = [r for r in methods.to_pylist() if r["teacher"] == teacher and r["chain"] == chain
              and r["method_params"] != PENDING]
    return row


def test_view_takes_names_from_the_plan_and_marks_pending(tables):
    view = _jobs(*tables).rows
    by_id = {r["job_id"]: r for r in view}
    assert "other-0" not in by_id  # another suite's job
    assert by_id["mlp-0"]["student"] == "mlp"  # plan's name, not the results'
    assert by_id["mlp-0"]["test_acc"] == 0.80
    assert by_id["big-mlp-T8-0"]["status"] == "pending"
    assert by_id["big-mlp-T8-0"]["test_acc"] is None
    assert len(view) == tables[1].num_rows


def test_view_without_plan_uses_result_names(tables):
    view = _jobs(tables[0]).rows
    assert len(view) == tables[0].num_rows
    assert "renamed-elsewhere" in [r["student"] for r in view]


def test_methods_means_intervals_and_counts(tables):
    methods = _methods(_jobs(*tables))
    assert len(methods) == 6  # the pending job's cell is listed, in no aggregate:
    (pending,) = [r for r in methods.to_pylist() if r["method_params"] == PENDING]
    assert (pending["n"], pending["failed"], pending["mean"], pending["rank"]) == (0, 0, None, None)
    kd_big = _cell(methods, "big", "big → mlp")
    accs = ACC[("mlp", "big", ("big", "mlp"))]
    assert kd_big["n"] == 3 and kd_big["failed"] == 0
    assert kd_big["mean"] == pytest.approx(statistics.mean(accs))
    assert kd_big["std"] == pytest.approx(statistics.stdev(accs))
    assert (kd_big["ci_low"], kd_big["ci_high"]) == pytest.approx(_expected_ci(accs, T2))
    kd_small = _cell(methods, "small", "small → mlp")
    assert kd_small["n"] == 2 and kd_small["failed"] == 1
    assert (kd_small["ci_low"], kd_small["ci_high"]) == pytest.approx(_expected_ci([0.83, 0.845], T1))
    ta = _cell(methods, "big", "big → ta")  # one seed: no spread, no interval, no baseline
    assert (ta["n"], ta["std"], ta["ci_low"], ta["gain"], ta["gain_ci_low"]) == (1, None, None, None, None)


def test_methods_gain_is_over_the_student_alone_with_paired_interval(tables):
    methods = _methods(_jobs(*tables))
    base = ACC[("mlp", None, ("mlp",))]
    distilled = [("big", ("big", "mlp")), ("small", ("small", "mlp")), ("big", ("big", "ta", "mlp"))]
    for teacher, chain in distilled:
        accs = ACC[("mlp", teacher, chain)]
        row = _cell(methods, teacher, " → ".join(chain))
        ok = [a for a in accs if a is not None]
        assert row["gain"] == pytest.approx(statistics.mean(ok) - statistics.mean(base))
        diffs = [a - b for a, b in zip(accs, base, strict=True) if a is not None]
        expected = _expected_ci(diffs, T2 if len(diffs) == 3 else T1)
        assert (row["gain_ci_low"], row["gain_ci_high"]) == pytest.approx(expected)
    alone = _cell(methods, None, "mlp")
    assert alone["gain"] is None and alone["method"] == "none"


def test_methods_rank_within_dataset_teacher_student(tables):
    methods = [r for r in _methods(_jobs(*tables)).to_pylist() if r["method_params"] != PENDING]
    ranks = {(r["teacher"], r["chain"]): r["rank"] for r in methods}
    assert ranks == {(None, "mlp"): 1, ("big", "big → ta → mlp"): 1, ("big", "big → mlp"): 2,
                     ("small", "small → mlp"): 1, ("big", "big → ta"): 1}
    order = [(r["student"], r["teacher"]) for r in methods]
    assert order == [("mlp", None), ("mlp", "big"), ("mlp", "big"), ("mlp", "small"), ("ta", "big")]


def test_teacher_size_rows(tables):
    everything = _teacher_size(_jobs(*tables)).to_pylist()
    rows = [r for r in everything if r["method_params"] != PENDING]
    (pending,) = [r for r in everything if r["method_params"] == PENDING]
    assert (pending["teacher"], pending["n"], pending["mean"]) == ("big", 0, None)
    assert [(r["student"], r["teacher"], r["teacher_params"], r["n"]) for r in rows] == [
        ("mlp", "small", 2_000, 2), ("mlp", "big", 10_000, 3), ("ta", "big", 10_000, 1)]
    big = rows[1]
    accs = ACC[("mlp", "big", ("big", "mlp"))]
    assert big["mean"] == pytest.approx(statistics.mean(accs))
    assert (big["ci_low"], big["ci_high"]) == pytest.approx(_expected_ci(accs, T2))
    assert big["teacher_score"] == pytest.approx(0.95)
    assert rows[0]["teacher_score"] == pytest.approx(0.905)  # the failed seed's row is not ok
    assert big["baseline_mean"] == pytest.approx(statistics.mean(ACC[("mlp", None, ("mlp",))]))
    assert rows[2]["baseline_mean"] is None


def test_failures_lists_failed_jobs_only(tables):
    rows = failures_rows(_jobs(*tables))
    assert [(r["job_id"], r["status"], r["error"]) for r in rows] == [
        ("small-mlp-2", "failed", "RuntimeError: boom")]


def test_terminal_tables_render(tables):
    jobs = _jobs(*tables)
    console = Console(record=True, width=250)
    for t in terminal_tables(_methods(jobs), _teacher_size(jobs)):
        console.print(t)
    text = console.export_text()
    half = 100 * T2 * statistics.stdev([0.85, 0.86, 0.84]) / math.sqrt(3)
    assert f"85.00 ± {half:.2f}" in text
    assert "+4.00" in text and "10.0k" in text


def test_terminal_tables_leave_out_an_empty_teacher_size_table(tables):
    results, _ = tables
    alone = results.filter(pc.equal(results["kind"], "baseline"))
    jobs = _jobs(alone)
    shown = terminal_tables(_methods(jobs), _teacher_size(jobs))
    assert [t.title.split(" on ")[0] for t in shown] == ["Methods"]
    assert shown[0].row_count > 0


def test_plots_are_pngs_even_when_empty(tables):
    jobs = _jobs(*tables)
    assert plot_methods(_methods(jobs)).startswith(PNG)
    assert plot_teacher_size(_teacher_size(jobs)).startswith(PNG)
    empty = _jobs(RESULT_SCHEMA.empty_table())
    assert plot_methods(_methods(empty)).startswith(PNG)
    assert plot_teacher_size(_teacher_size(empty)).startswith(PNG)


def _store_with_suite(tmp_path) -> Store:
    store = Store(tmp_path)
    results = _results()
    for row in results:
        write_result(store, row)
    write_plan_rows(store, SUITE, _plan(results))
    return store


def test_an_unchanged_report_is_not_rendered_again(tmp_path, monkeypatch):
    """Same plan, rows, reference and code: the files already written are the report. A new row for a job,
    a changed reference or a missing file each make it render again."""
    import kdbench.results.report as report

    store = _store_with_suite(tmp_path)
    renders = []
    real = report._write_files
    monkeypatch.setattr(report, "_write_files", lambda *a: renders.append(a) or real(*a))
    first = write_report(store, SUITE)
    assert write_report(store, SUITE) == first and len(renders) == 1
    row = _results()[3]  # a job of the plan finishing again, later, with another accuracy
    write_result(store, {**row, "test_acc": 0.5, "finished_at": dt.datetime(2026, 2, 1, tzinfo=dt.UTC)})
    assert write_report(store, SUITE) == first and len(renders) == 2
    assert write_report(store, SUITE) == first and len(renders) == 2
    store.write_bytes(f"references/{SUITE}.csv", b"teacher,student,method,paper_acc,source\nbig,mlp,kd,0.9,x\n")
    write_report(store, SUITE)
    assert len(renders) == 3
    (tmp_path / first["methods.png"]).unlink()
    write_report(store, SUITE)
    assert len(renders) == 4 and store.read_bytes(first["methods.png"]).startswith(PNG)
    write_result(store, {**_results()[0], "job_id": "not-planned"})  # a row of no planned job changes nothing
    write_report(store, SUITE)
    assert len(renders) == 4


def test_build_leaderboard_reads_only_the_plans_jobs(tmp_path):
    lb = build_leaderboard(_store_with_suite(tmp_path), SUITE)
    assert "other-0" not in [r["job_id"] for r in lb.jobs.rows] and len(lb.jobs.rows) == len(_plan(_results()))
    # 5 cells with results and the pending job's cell; in the teacher-size table too
    assert len(lb.methods) == 6 and len(lb.teacher_size) == 4 and len(lb.failures) == 1


def test_write_report_writes_every_file(tmp_path):
    store = _store_with_suite(tmp_path)
    paths = write_report(store, SUITE)
    main = {"leaderboard.html", "methods.csv", "teacher_size.csv", "methods.parquet", "teacher_size.parquet",
            "methods.png", "teacher_size.png"}
    # the study views with rows: the plan has a TA chain and direct distillation from two teachers; every suite
    # with results has an efficiency view
    views = {f"view-{v}.{ext}" for v in ("methods", "takd", "teacher-size", "efficiency")
             for ext in ("html", "png", "csv", "parquet")}
    assert set(paths) == main | views
    assert all(p.startswith(f"leaderboards/{SUITE}/") and store.exists(p) for p in paths.values())
    page = store.read_bytes(paths["leaderboard.html"]).decode()
    assert "data:image/png;base64,iVBORw0KGgo" in page  # base64 of the PNG signature
    assert "big → ta → mlp" in page and "85.00" in page and "RuntimeError: boom" in page  # in percent
    assert "0.8500" not in page.split("<script>")[0], page[page.find("0.8500") - 300:page.find("0.8500") + 30]
    assert "rank: the method" in page and "addEventListener" in page  # sortable
    assert store.read_bytes(paths["methods.png"]).startswith(PNG)
    assert store.read_bytes(paths["teacher_size.png"]).startswith(PNG)
    methods = pq.read_table(io.BytesIO(store.read_bytes(paths["methods.parquet"])))
    assert methods.num_rows == 6  # with the pending job's cell
    assert store.read_bytes(paths["methods.csv"]).decode().splitlines()[0].startswith('"dataset","teacher"')


def test_published_numbers_join_the_methods_table_as_the_paper_column(tmp_path):
    from kdbench.results import result_row, write_plan, write_result
    from kdbench.results.views.reference import reference_path
    from kdbench.suite import expand, load_suite

    from .conftest import TINY_SUITE, write_suite

    store = Store(tmp_path / "store")
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    write_plan(store, plan)
    for e in plan.entries:
        write_result(store, result_row(e, "tiny", {"test_acc": 0.5, "val_acc": 0.5}))
    store.write_bytes(reference_path("tiny"), b"teacher,student,method,paper_acc,source\n"
                                             b"big,small,kd,73.33,Table 1\n,small,none,72.50,Table 1\n")
    rows = build_leaderboard(store, "tiny").methods.to_pylist()
    paper = {(r["teacher"], r["method"], r["chain"]): r["paper_acc"] for r in rows}
    assert paper[("big", "kd", "big → small")] == pytest.approx(0.7333)
    assert paper[(None, "none", "small")] == pytest.approx(0.7250)
    assert paper[("mid", "kd", "mid → small")] is None
    assert paper[("big", "kd", "big → mid → small")] is None  # a TA chain is not the paper's direct KD


def test_a_report_reads_the_plan_and_the_results_once(tmp_path, monkeypatch):
    """write_report joins the plan and the results once (views.jobs.load_jobs) and hands that join to every view,
    the failures table, the plots and the fingerprint; so does build_leaderboard."""
    import kdbench.results.store as store_module
    import kdbench.results.views.jobs as jobs_module

    store = _store_with_suite(tmp_path)
    reads = {"read_plan": 0, "read_results": 0}
    for module in (store_module, jobs_module):
        for name in reads:
            real = getattr(module, name)
            monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k:
                                reads.__setitem__(_name, reads[_name] + 1) or _real(*a, **k))
    paths = write_report(store, SUITE)
    assert reads == {"read_plan": 1, "read_results": 1}
    assert {"methods.csv", "teacher_size.png", "view-takd.html", "view-efficiency.parquet"} <= set(paths)
    write_report(store, SUITE)  # unchanged: the same one read decides that the files are current
    assert reads == {"read_plan": 2, "read_results": 2}
    build_leaderboard(store, SUITE)
    assert reads == {"read_plan": 3, "read_results": 3}
