"""The kdbench command: clear one-line errors with exit status 2, and the documented outputs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.results import result_row, write_plan, write_result
from kdbench.store import Store
from kdbench.suite import expand, load_suite

from .conftest import TINY_SUITE, write_suite

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_validate_prints_the_plan_size(tiny_suite):
    result = invoke("validate", str(tiny_suite))
    assert result.exit_code == 0
    assert "tiny v1: 14 jobs (2 baseline, 10 student, 2 teacher)" in result.output


def test_validate_rejects_a_bad_suite_with_one_line_and_status_2(tmp_path):
    path = write_suite(tmp_path, TINY_SUITE.replace("[none, kd]", "[none, {kd: {temperature: -1}}]"))
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert f"{path}:12: methods[1].kd.temperature: must be > 0" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_run_refuses_a_bad_suite_before_writing_anything(tmp_path):
    path = write_suite(tmp_path, TINY_SUITE.replace("arch: mlp, widths: [4]", "arch: nope"))
    result = invoke("run", str(path), "--store", str(tmp_path / "store"))
    assert result.exit_code == 2 and "unknown architecture 'nope'" in result.output
    assert not (tmp_path / "store").exists()


@pytest.fixture
def store_with_results(tmp_path, tiny_suite):
    """A store holding the tiny suite's plan and made-up results (no training)."""
    store = Store(tmp_path / "store")
    plan = expand(load_suite(str(tiny_suite)))
    write_plan(store, plan)
    for i, e in enumerate(plan.entries):
        write_result(store, result_row(e, "tiny", {"test_acc": 0.5 + 0.01 * (i % 7), "val_acc": 0.5}))
    return store


def test_query_prints_sql_results(store_with_results):
    result = invoke("query", "select kind, count(*) as n from results group by kind order by kind",
                    "--store", store_with_results.uri, "--format", "csv")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["kind,n", "baseline,2", "student,10", "teacher,2"]


def test_query_with_invalid_sql_is_a_clear_error(store_with_results):
    result = invoke("query", "select nope from results", "--store", store_with_results.uri)
    assert result.exit_code == 2 and "error:" in result.output and "nope" in result.output
    assert "Traceback" not in result.output


def test_leaderboard_shows_methods_and_knows_its_suites(store_with_results, tmp_path):
    result = invoke("leaderboard", "tiny", "--store", store_with_results.uri, "--html", str(tmp_path / "lb.html"))
    assert result.exit_code == 0, result.output
    assert "Methods on synthetic" in result.output and "Teacher size vs student accuracy" in result.output
    assert (tmp_path / "lb.html").read_text().startswith("<!DOCTYPE html>")
    missing = invoke("leaderboard", "tinyy", "--store", store_with_results.uri)
    assert missing.exit_code == 2 and "no suite 'tinyy'" in missing.output and "tiny" in missing.output


def test_unknown_store_scheme_is_a_clear_error():
    result = invoke("query", "select 1", "--store", "ftp://host/x")
    assert result.exit_code == 2 and "unsupported store URI scheme" in result.output


@pytest.mark.slow
@pytest.mark.ray  # `kdbench run` in a subprocess starts its own local Ray
def test_the_console_script_runs_a_suite_and_reruns_nothing(tmp_path, tiny_suite):
    # A relative store path, as in the README: workers run in other directories than the driver.
    env = {**os.environ, "KDBENCH_STORE": "store"}
    cmd = [sys.executable, "-m", "kdbench.cli", "run", str(tiny_suite), "--num-cpus", "2", "--no-track"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "jobs: 14 total, 0 cached, 14 run, 0 failed" in first.stdout
    assert "Methods on synthetic" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert again.stdout.strip().splitlines()[-1] == "jobs: 14 total, 14 cached, 0 run, 0 failed"
