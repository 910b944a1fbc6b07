"""`kdbench run` loads a suite once (loading hashes its teachers' weight files) and expands it once; a suite
with a `search:` twice, the minimum (see test_a_search_suite_is_loaded_once_and_expanded_twice)."""

from __future__ import annotations

import sys

import pytest
import torch
from typer.testing import CliRunner

import kdbench.cli
import kdbench.orchestrate.runner
import kdbench.orchestrate.search  # noqa: F401  (imported before counting: its alias of `expand` is counted too)
import kdbench.suite.load
import kdbench.suite.plan
from kdbench.zoo.models import create_model

from .conftest import write_suite

pytestmark = pytest.mark.slow

PLAIN = """\
name: once
dataset: {name: synthetic, n_train: 128, n_val: 64, n_test: 64, dim: 8, num_classes: 4}
recipe: {epochs: 1, batch_size: 64, optimizer: {name: sgd, lr: 0.1}}
teachers:
  - {name: big, arch: mlp, widths: [16], weights: weights/big.pt}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [kd]
seeds: [0]
"""

SEARCH = """\
name: once-search
dataset: {name: synthetic, n_train: 128, n_val: 64, n_test: 64, dim: 8, num_classes: 4}
recipe: {epochs: 2, batch_size: 64, optimizer: {name: sgd, lr: 0.1}}
teachers:
  - {name: big, arch: mlp, widths: [16], weights: weights/big.pt}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [none]
search:
  method: kd
  space: {temperature: {loguniform: [1, 20]}}
  trials: 2
  grace_epochs: 1
seeds: [0]
"""


def _weights(tmp_path):
    (tmp_path / "weights").mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = create_model("mlp", {"widths": [16]}, (8,), 4)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "weights" / "big.pt")


def _count(monkeypatch, module, name: str) -> list:
    """Calls of `module.name`, through every kdbench module that imported it by name."""
    fn, calls = getattr(module, name), []

    def counted(*args, **kwargs):
        calls.append(args)
        return fn(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("kdbench") and vars(mod).get(name) is fn:
            monkeypatch.setattr(mod, name, counted)
    return calls


@pytest.fixture
def calls(monkeypatch):
    return {"load": _count(monkeypatch, kdbench.suite.load, "load_suite"),
            "hash": _count(monkeypatch, kdbench.suite.load, "_weights"),  # once per teacher per load
            "expand": _count(monkeypatch, kdbench.suite.plan, "expand")}


def _cli_run(path, store):
    result = CliRunner().invoke(kdbench.cli.app, ["run", str(path), "--store", str(store), "--no-track"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_kdbench_run_loads_and_expands_a_suite_once(tmp_path, ray_local, calls):
    _weights(tmp_path)
    path = write_suite(tmp_path, PLAIN)
    result = _cli_run(path, tmp_path / "store")
    assert "jobs: 3 total, 0 cached, 3 run, 0 failed" in result.output
    assert {k: len(v) for k, v in calls.items()} == {"load": 1, "hash": 1, "expand": 1}


def test_a_search_suite_is_loaded_once_and_expanded_twice(tmp_path, ray_local, calls):
    # Two expansions is the minimum: the searches need one before any choice exists (the cells' trial
    # templates, hence their keys, and the teacher jobs the trials read); the plan that is run needs the
    # choices, and cannot be patched from the first one (which teacher-output jobs it holds depends on all
    # of its student jobs).
    from kdbench.orchestrate import RunOptions, run_suite

    _weights(tmp_path)
    path = write_suite(tmp_path, SEARCH)
    counts = run_suite(str(path), RunOptions(store=str(tmp_path / "store"), track=False))  # the Python API
    # pretrained (run before the search, which reads it), baseline and the chosen student
    assert counts.failed == 0 and counts.total == 3 and counts.cached == 1 and counts.run == 2
    assert {k: len(v) for k, v in calls.items()} == {"load": 1, "hash": 1, "expand": 2}
    for v in calls.values():
        v.clear()
    result = _cli_run(path, tmp_path / "store")  # the search has finished: the same counts through the CLI
    assert "jobs: 3 total, 3 cached, 0 run, 0 failed" in result.output
    assert {k: len(v) for k, v in calls.items()} == {"load": 1, "hash": 1, "expand": 2}
