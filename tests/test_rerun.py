"""Never a stale result: a plugin's edited code makes new jobs (its source digest is in their ids), and
`kdbench run --rerun SELECTOR` recomputes chosen jobs on purpose, setting their old files aside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kdbench.orchestrate import RunOptions, run_suite
from kdbench.orchestrate.rerun import SelectorError, parse_selector, rerun_ids, selectors_for, set_aside
from kdbench.results import read_results
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
import torch.nn.functional as F

from kdbench.methods import Method, Needs, register_method


@register_method
class Scaled(Method):
    """Params defaults: (none)"""

    name = "scaled_ce"
    needs = Needs(teacher=True)

    def forward(self, batch, student, teacher, state):
        return {"ce": SCALE * F.cross_entropy(student.logits, batch.y)}


SCALE = 1.0
'''

IDS_BY_METHOD = """
import json, sys
from kdbench.suite import expand, load_suite
plan = expand(load_suite(sys.argv[1]))
print(json.dumps(sorted([e.job.method.name, e.job.kind, e.job_id] for e in plan.entries)))
"""


def _ids(path: Path) -> list[list[str]]:
    """The plan's (method, kind, id) rows, from a fresh process (as every `kdbench run` is)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "platform"), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", IDS_BY_METHOD, str(path)], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_editing_a_plugin_changes_the_ids_of_its_jobs_and_no_others(tmp_path):
    plugin = tmp_path / "scaled.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    text = TINY_SUITE.replace("methods: [none, kd]", "methods: [none, kd, scaled_ce]") + "plugins: [scaled]\n"
    path = write_suite(tmp_path, text)
    before = _ids(path)
    assert _ids(path) == before  # the same code: the same ids
    plugin.write_text(textwrap.dedent(PLUGIN).replace("SCALE = 1.0", "SCALE = 10.0"))  # the loss × 10
    after = _ids(path)
    changed = {(m, k) for (m, k, i) in after} - {(m, k) for (m, k, i) in before}
    assert not changed  # the same jobs, by method and kind
    old = {i for m, k, i in before if m == "scaled_ce"}
    new = {i for m, k, i in after if m == "scaled_ce"}
    assert old and not old & new  # every job of the edited plugin is a new job
    assert [r for r in before if r[0] != "scaled_ce"] == [r for r in after if r[0] != "scaled_ce"]


def test_a_built_in_component_has_no_code_digest_and_a_plugin_one_does(tmp_path):
    plugin = tmp_path / "scaled.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    text = TINY_SUITE.replace("methods: [none, kd]", "methods: [kd, scaled_ce]") + "plugins: [scaled]\n"
    suite = load_suite(str(write_suite(tmp_path, text)))
    codes = {m.name: m.code for m in suite.methods}
    assert codes["kd"] is None and len(codes["scaled_ce"]) == 16
    assert suite.dataset.code is None and all(t.model.code is None for t in suite.teachers)
    job = next(e.job for e in expand(suite).entries if e.job.method.name == "scaled_ce")
    assert job.identity()["method"]["code"] == codes["scaled_ce"]
    assert "code" not in job.identity()["model"]


@pytest.mark.parametrize("text, why", [
    ("method", "write key=value"), ("colour=red", "unknown key 'colour'"), ("seed=x", "seed must be an integer"),
    ("method=", "write key=value"),
])
def test_malformed_selectors_are_refused_with_the_reason(text, why):
    with pytest.raises(SelectorError, match=why):
        parse_selector(text)


def test_a_selection_takes_every_job_downstream_of_the_selected_ones(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, TINY_SUITE))))
    entries = {e.job_id: e for e in plan.entries}
    mid = next(e for e in plan.entries if e.job.kind == "teacher" and e.student == "mid")
    chosen = rerun_ids(plan, selectors_for(plan, [f"job={mid.job_id[:8]}"]))
    # mid itself; every student of mid (and of the ensemble holding it), and the chain's link from mid's
    # student; not big, not the baselines
    assert mid.job_id in chosen
    for job_id, e in entries.items():
        ups = {u.job_id for u in e.job.teachers} | set(e.job.outputs)
        if ups & chosen:
            assert job_id in chosen
    assert not any(entries[i].job.kind == "baseline" for i in chosen)
    assert not any(entries[i].student == "big" for i in chosen)
    both = rerun_ids(plan, selectors_for(plan, ["method=kd,seed=0", "kind=baseline"]))
    assert all(entries[i].job.seed == 0 or entries[i].job.kind == "baseline" for i in both)
    assert rerun_ids(plan, selectors_for(plan, ["all"])) == set(entries)
    with pytest.raises(SelectorError, match="matches no job"):
        selectors_for(plan, ["student=nobody"])


def test_setting_aside_moves_artifacts_and_the_row_and_loses_nothing(tmp_path):
    store = Store(tmp_path / "s")
    store.write_bytes("artifacts/abc/final.json", b"{}")
    store.write_bytes("artifacts/abc/model.pt", b"weights")
    store.write_bytes("results/ab/abc.parquet", b"row")
    store.write_bytes("artifacts/abd/final.json", b"other")
    assert set_aside(store, ["abc"], stamp="T1") == 3
    assert store.read_bytes("superseded/abc/T1/model.pt") == b"weights"
    assert store.read_bytes("superseded/abc/T1/result.parquet") == b"row"
    assert not store.exists("artifacts/abc/final.json") and not store.exists("results/ab/abc.parquet")
    assert store.read_bytes("artifacts/abd/final.json") == b"other"


SMALL = """\
name: rerun
dataset: {name: synthetic, n_train: 128, n_val: 64, n_test: 64, dim: 8, num_classes: 3}
recipe: {epochs: 2, batch_size: 64}
teachers: [{name: big, arch: mlp, widths: [32]}]
students: [{name: small, arch: mlp, widths: [4]}]
methods: [none, kd]
seeds: [0, 1]
"""


def test_rerun_recomputes_the_chosen_jobs_and_keeps_every_other_result(tmp_path, ray_local):
    path = write_suite(tmp_path, SMALL)
    store = Store(tmp_path / "store")
    first = run_suite(str(path), RunOptions(store=store.uri, track=False))
    assert (first.total, first.run) == (5, 5)
    before = {r["job_id"]: r for r in read_results(store).to_pylist()}
    again = run_suite(str(path), RunOptions(store=store.uri, track=False, rerun=("method=kd,seed=1",)))
    assert (again.total, again.cached, again.run, again.failed) == (5, 4, 1, 0)
    after = {r["job_id"]: r for r in read_results(store).to_pylist()}
    plan = expand(load_suite(str(path)))
    kd1 = next(e.job_id for e in plan.entries if e.job.method.name == "kd" and e.job.seed == 1)
    assert after[kd1]["finished_at"] > before[kd1]["finished_at"] and after[kd1]["status"] == "ok"
    assert all(after[j] == before[j] for j in before if j != kd1)  # untouched, byte for byte the same rows
    kept = store.list_files(f"superseded/{kd1}")
    assert {p.rsplit("/", 1)[-1] for p in kept} >= {"final.json", "model.pt", "result.parquet"}
    teacher = next(e.job_id for e in plan.entries if e.job.kind == "teacher")
    third = run_suite(str(path), RunOptions(store=store.uri, track=False, rerun=(f"job={teacher}",)))
    assert (third.cached, third.run) == (2, 3)  # the teacher and both of its students; the baselines stay


@pytest.mark.parametrize("selector, fragment", [("colour=red", "unknown key 'colour'"),
                                                ("student=nobody", "matches no job of suite tiny")])
def test_kdbench_run_refuses_a_bad_selector_in_one_line_before_any_work(tmp_path, selector, fragment):
    from typer.testing import CliRunner

    from kdbench.cli import app

    path = write_suite(tmp_path, TINY_SUITE)
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["run", str(path), "--store", str(store), "--rerun", selector])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --rerun") and fragment in " ".join(result.output.split())
    assert "Traceback" not in result.output and not store.exists()
