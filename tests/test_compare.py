"""`kdbench compare A B`: the same cells of two suites side by side, with the difference of their means."""

from __future__ import annotations

from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.jobs import JobFinal
from kdbench.results import result_row, write_result
from kdbench.results.compare import compare
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_plan_rows, write_suite


def _store(tmp_path) -> Store:
    """Suites `tiny` (seeds 0, 1) and `more` (seeds 0, 1, 2: its seed 2 scores higher), sharing seeds 0 and 1."""
    store = Store(tmp_path / "store")
    plans = [expand(load_suite(str(write_suite(tmp_path, TINY_SUITE, "a.yaml")))),
             expand(load_suite(str(write_suite(tmp_path, TINY_SUITE.replace("name: tiny", "name: more").replace(
                 "seeds: [0, 1]", "seeds: [0, 1, 2]"), "b.yaml"))))]
    for plan in plans:
        for e in plan.entries:
            acc = {0: 0.50, 1: 0.60, 2: 0.85}[e.job.seed]
            final = JobFinal(task="classification", metrics={"test_acc": acc}, selected_epoch=1, epochs_trained=1)
            write_result(store, result_row(e, plan.suite.name, final))
        write_plan_rows(store, plan.suite.name, [
            {"job_id": e.job_id, "kind": e.job.kind, "teacher": e.teacher, "student": e.student,
             "method": e.job.method.name, "method_params": "{}", "chain": list(e.chain), "upstream": [],
             "seed": e.job.seed} for e in plan.entries])
    return store


def test_two_suites_side_by_side_with_the_difference_of_their_means(tmp_path):
    c = compare(_store(tmp_path), ["tiny", "more"])
    assert c.headers == ["teacher", "student", "via", "method", "tiny acc %", "more acc %", "more − tiny pp",
                         "intervals overlap"]
    row = next(r for r in c.rows if r[:4] == ["big", "small", "", "kd"])
    # tiny: mean 55.00, t(1)·std/√2 = 12.706 · 0.0707 / 1.414 = 0.6353 → ± 63.53; more: mean 65.00
    assert row[4] == "55.00 [0.00, 100.00]"  # two seeds: an interval past both ends, clipped
    assert row[6] == "+10.00" and row[7] == "yes"
    assert any(r[:4] == ["big", "small", "mid", "kd"] for r in c.rows)  # the chain big → mid → small
    assert {r[0] for r in c.rows} >= {"(alone)", "big", "mid", "both"}


def test_the_command_prints_markdown_and_refuses_an_unknown_suite(tmp_path):
    store = _store(tmp_path)
    result = CliRunner().invoke(app, ["compare", "tiny", "more", "--store", store.uri, "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("| teacher | student | via | method | tiny acc % |")
    bad = CliRunner().invoke(app, ["compare", "tiny", "nope", "--store", store.uri])
    assert bad.exit_code == 2 and "no suite 'nope'" in bad.output
    one = CliRunner().invoke(app, ["compare", "tiny", "--store", store.uri])
    assert one.exit_code == 2 and "two or more" in one.output
