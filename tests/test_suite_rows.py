"""The rows of suite X, right by construction: a job two suites share is a row of each (under each suite's own
names), though the results table's `suite` names only the suite whose run wrote it."""

from __future__ import annotations

from kdbench.jobs import JobFinal
from kdbench.results import open_results, result_row, write_result
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_plan_rows, write_suite


def test_a_shared_job_is_a_row_of_every_suite_that_plans_it(tmp_path):
    store = Store(tmp_path / "store")
    a = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE, "a.yaml"))))
    b_text = TINY_SUITE.replace("name: tiny", "name: other").replace("big", "large").replace(
        "seeds: [0, 1]", "seeds: [0, 1, 2]")
    b = expand(load_suite(str(write_suite(tmp_path, b_text, "b.yaml"))))
    shared = {e.job_id for e in a.entries} & {e.job_id for e in b.entries}
    assert shared and len(shared) < len(b.entries)  # seeds 0 and 1 shared; seed 2 is other's own
    for entry in a.entries:  # suite `tiny` ran first: its run wrote every row
        final = JobFinal(task="classification", metrics={"test_acc": 0.5}, selected_epoch=1, epochs_trained=1)
        write_result(store, result_row(entry, "tiny", final))
    for plan in (a, b):
        write_plan_rows(store, plan.suite.name, [
            {"job_id": e.job_id, "kind": e.job.kind, "teacher": e.teacher, "student": e.student,
             "method": e.job.method.name, "method_params": "{}", "chain": list(e.chain), "upstream": [],
             "seed": e.job.seed} for e in plan.entries])
    results = open_results(store)
    naive = results.sql("select job_id from results where suite = 'other'")
    assert naive.num_rows == 0  # the trap: `results.suite` is the suite that wrote the row
    rows = results.of_suite("other").to_pylist()
    assert {r["job_id"] for r in rows} == shared and all(r["suite"] == "other" for r in rows)
    teachers = {r["teacher"] for r in rows if r["kind"] == "student"}
    assert "large" in teachers and "big" not in teachers  # named as suite `other` names them
    assert results.of_suite("tiny").num_rows == len(a.entries)
    both = results.sql("select suite, count(*) n from suite_results group by suite order by suite").to_pylist()
    assert both == [{"suite": "other", "n": len(shared)}, {"suite": "tiny", "n": len(a.entries)}]


def test_a_chain_row_names_its_root_teacher_and_the_assistant_it_learned_from(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    rows = {(e.job.kind, tuple(e.chain)): result_row(e, "tiny") for e in plan.entries if e.job.seed == 0}
    link = rows[("student", ("big", "mid", "small"))]
    assert (link["teacher"], link["direct_teacher"]) == ("big", "mid")  # teacher_params: mid's size
    direct = rows[("student", ("big", "small"))]
    assert (direct["teacher"], direct["direct_teacher"]) == ("big", "big")
    assert rows[("student", ("both", "small"))]["direct_teacher"] == "both"  # an ensemble: its name
    assert rows[("baseline", ("small",))]["direct_teacher"] is None
    assert rows[("teacher", ("big",))]["direct_teacher"] is None
