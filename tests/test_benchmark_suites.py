"""The benchmark suites under benchmarks/suites validate, and the CI twin runs every method end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.methods import METHODS
from kdbench.orchestrate import RunOptions, run_suite
from kdbench.results import open_results
from kdbench.results.report import build_leaderboard
from kdbench.store import Store
from kdbench.suite import expand, load_suite
from kdbench.suite.compat import prune_incompatible
from kdbench.suite.plugins import import_plugins

ROOT = Path(__file__).resolve().parents[1]
SUITES = ROOT / "benchmarks" / "suites"


@pytest.fixture
def fake_cifar100(tmp_path, monkeypatch):
    """A data root holding CIFAR-100's file names (validation checks they exist; nothing reads them here)."""
    folder = tmp_path / "data" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes(b"")
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(tmp_path / "data"))


def test_the_crd_benchmark_validates_and_estimates_its_compute(fake_cifar100):
    result = CliRunner().invoke(app, ["validate", str(SUITES / "crd_cifar100.yaml")])
    assert result.exit_code == 0, result.output
    plan, pruned = prune_incompatible(expand(load_suite(str(SUITES / "crd_cifar100.yaml"))))
    # 6 teachers, 9 students × 5 seeds alone, 13 pairs × 16 distillation settings × 5 seeds, less FSP on the
    # 7 pairs whose channel counts differ (CRD's tables have no FSP there either).
    assert plan.counts() == {"teacher": 6, "baseline": 45, "student": 13 * 16 * 5 - 7 * 5}
    assert {p.entry.job.method.name for p in pruned} == {"fsp"} and len(pruned) == 35
    assert f"{len(plan)} jobs" in result.output and "GPU-hours" in result.output
    mobile = [e.job for e in plan.entries if e.student == "mobilenetv2"]
    assert {j.recipe.optimizer.lr for j in mobile} == {0.01}  # the benchmark's lr for MobileNetV2


def test_data_root_option_points_validation_at_the_data(tmp_path, monkeypatch):
    monkeypatch.delenv("KDBENCH_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data here
    missing = CliRunner().invoke(app, ["validate", str(SUITES / "crd_cifar100.yaml")])
    # Validation works without the data (a laptop validates what a cluster runs) and says it was not checked…
    assert missing.exit_code == 0, missing.output
    said = " ".join(missing.output.split())
    assert "note: not on this machine: dataset folder ./data does not exist" in said and "where the jobs run" in said
    assert "crd_cifar100 v1:" in said and "compute:" in said  # the plan and its estimate, from declared shapes
    # …while `kdbench run`, where the jobs run, refuses it before any work, naming the field.
    run = CliRunner().invoke(app, ["run", str(SUITES / "crd_cifar100.yaml"), "--store", str(tmp_path / "s")])
    assert run.exit_code == 2 and "dataset.root" in run.output and "does not exist" in run.output
    assert not (tmp_path / "s").exists()
    folder = tmp_path / "elsewhere" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes(b"")
    found = CliRunner().invoke(app, ["validate", str(SUITES / "crd_cifar100.yaml"), "--data-root",
                                     str(tmp_path / "elsewhere")])
    assert found.exit_code == 0, found.output


def builtin_methods() -> set[str]:
    """kdbench's own classification methods (kdbench/methods/): the CRD benchmark suites are classification
    suites; a plugin's methods, methods of other tasks (regkd) and methods that need a particular kind of
    student (`Needs.student`, e.g. vs: a sparse variational dropout student, which the CRD suites do not train)
    need no place in them."""
    return {n for n in METHODS.names() if METHODS.get(n).__module__.startswith("kdbench.methods.")
            and "classification" in METHODS.get(n).tasks and METHODS.get(n).needs.student is None}


def test_both_benchmark_suites_cover_every_built_in_method(fake_cifar100):
    import_plugins([str(ROOT / "docs" / "examples" / "plugin_method" / "my_method.py")])  # a plugin: not required
    assert "embedding_hint" in METHODS and "embedding_hint" not in builtin_methods()
    for suite in ("crd_cifar100.yaml", "crd_digits.yaml"):
        names = {m.name for m in load_suite(str(SUITES / suite)).methods}
        missing = builtin_methods() - names
        assert not missing, f"{suite} lacks {missing}"


@pytest.mark.slow
def test_the_ci_twin_runs_every_method_through_ray_tune(tmp_path, ray_local):
    counts = run_suite(str(SUITES / "crd_digits.yaml"), RunOptions(store=str(tmp_path / "s"), track=False))
    assert counts.failed == 0 and counts.run == counts.total
    rows = open_results(tmp_path / "s").to_arrow().to_pylist()
    assert all(r["status"] == "ok" and math.isfinite(r["test_acc"]) for r in rows)
    ran = {r["method"] for r in rows}
    assert ran >= builtin_methods()
    board = build_leaderboard(Store(tmp_path / "s"), "crd_digits")
    cells = {(r["student"], r["method"], r["method_params"]) for r in rows if r["kind"] != "teacher"}
    assert board.methods.num_rows == len(cells)  # one leaderboard row per (student, method setting)
