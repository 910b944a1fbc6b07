"""Per-cell hyperparameter searches: validation of `search:`, content keys, and a search run end to end
through Ray Tune (OptunaSearch + ASHA), its trials in the store, the selection run over the seeds, no rerun."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from kdbench.orchestrate.search import SEARCH_TRIALS_SCHEMA, search_cells, trial_job
from kdbench.store import Store
from kdbench.suite import SpecError, expand, load_suite

from .conftest import write_suite

SUITE = """\
name: searchy
dataset: {name: synthetic, n_train: 256, n_val: 128, n_test: 256, dim: 8, num_classes: 4}
recipe: {epochs: 4, batch_size: 64, optimizer: {name: sgd, lr: 0.1}}
teachers:
  - {name: big, arch: mlp, widths: [32]}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [none]
search:
  method: kd
  space: {temperature: {loguniform: [1, 20]}, alpha: {uniform: [0.1, 0.99]}}
  trials: 4
  grace_epochs: 1
seeds: [0, 1]
"""


def test_search_is_validated_with_file_line_and_field(tmp_path):
    cases = {
        "{temperature: {loguniform: [1, 20]}, alpha: {uniform: [0.1, 0.99]}}": None,
        "{temp: {loguniform: [1, 20]}}": r"search\.space\.temp: 'kd' has no hyperparameter 'temp'",
        "{temperature: {loguniform: [0, 20]}}": r"loguniform needs low > 0",
        "{temperature: {normal: [1, 2]}}": r"search\.space\.temperature: one distribution",
        "{alpha: {uniform: [0.5, 2.0]}}": r":\d+: search\.space\.alpha\.uniform\[1\]: must be <= 1",  # kd's alpha
    }
    for space, error in cases.items():
        text = SUITE.replace("{temperature: {loguniform: [1, 20]}, alpha: {uniform: [0.1, 0.99]}}", space)
        path = write_suite(tmp_path, text)
        if error is None:
            assert load_suite(str(path)).search.trials == 4
        else:
            with pytest.raises(SpecError, match=error) as e:
                load_suite(str(path))
            assert str(e.value).startswith(f"{path}:")


def test_search_keys_follow_the_content(tmp_path):
    base = search_cells(load_suite(str(write_suite(tmp_path, SUITE))))
    again = search_cells(load_suite(str(write_suite(tmp_path, SUITE.replace("name: searchy", "name: other")))))
    more = search_cells(load_suite(str(write_suite(tmp_path, SUITE.replace("trials: 4", "trials: 5")))))
    assert base[0].key == again[0].key != more[0].key  # the suite's name is not content; the budget is
    job = trial_job(base[0].template, {"temperature": 3.0, "alpha": 0.5})
    assert job.method.params == {"temperature": 3.0, "alpha": 0.5, "stop_epoch": None}  # defaults filled in
    assert job.seed == 0 and job.kind == "student"


def test_selections_become_student_jobs_over_the_seeds(tmp_path):
    suite = load_suite(str(write_suite(tmp_path, SUITE)))
    plan = expand(suite, {("big", "small"): {"temperature": 3.0, "alpha": 0.5}})
    chosen = [e for e in plan.entries if e.job.kind == "student"]
    assert sorted(e.job.seed for e in chosen) == [0, 1] and {e.chain for e in chosen} == {("big", "small")}
    assert len(expand(suite)) == len(plan) - 2


@pytest.mark.slow
def test_a_search_runs_records_its_trials_selects_on_val_and_is_not_rerun(tmp_path, ray_local):
    from kdbench.orchestrate import RunOptions, run_suite
    from kdbench.results import views

    path = str(write_suite(tmp_path, SUITE))
    opts = RunOptions(store=str(tmp_path / "store"), track=False)
    counts = run_suite(path, opts)
    assert counts.failed == 0
    store = Store(opts.store)
    (cell,) = search_cells(load_suite(path))
    trials = pq.read_table(store.path(f"searches/{cell.key}/trials.parquet"))
    assert trials.schema.equals(SEARCH_TRIALS_SCHEMA) and trials.num_rows == 4
    rows = trials.to_pylist()
    for r in rows:  # per-epoch val_acc reached Tune: every trial ran to the end or was stopped by ASHA
        assert r["error"] is None and r["best_epoch_val"] is not None
        assert r["epochs"] == 4 or (r["stopped_early"] and 1 <= r["epochs"] < 4)
    finished = [r for r in rows if not r["stopped_early"]]
    best = max(finished, key=lambda r: (r["val"], -r["trial"]))
    assert [r["trial"] for r in rows if r["selected"]] == [best["trial"]]
    record = json.loads(store.read_bytes(f"searches/{cell.key}/selected.json"))
    assert record["selected_params"] == json.loads(best["params"]) and record["best_val"] == best["val"]
    assert record["metric"] == "val_acc"  # the classification task's primary metric on validation

    table = views.methods(store, "searchy").to_pylist()
    (row,) = [r for r in table if r["teacher"] == "big"]
    assert json.loads(row["method_params"]) == record["selected_params"] and row["n"] == 2
    assert row["chosen_by"].startswith("search: 4 trials, Optuna TPE") and "ASHA" in row["chosen_by"]

    before = store.read_bytes(f"searches/{cell.key}/trials.parquet")
    again = run_suite(path, opts)  # a finished search is not run again, nor are its selected jobs
    assert again.run == 0 and again.cached == again.total
    assert store.read_bytes(f"searches/{cell.key}/trials.parquet") == before
