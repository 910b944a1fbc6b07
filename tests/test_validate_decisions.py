"""Validation decides from one shape profile per architecture exactly what it decided by building everything.

`tests/fixtures/validate_decisions.json` was written by `decisions()` below run with the code of commits 6c4ca65
and 79d3f7c (main, with its suites), where pruning built every (method, teacher, student) cell's models and
method on the meta device without shortcuts, and FLOPs came from FlopCounterMode. Per text of each benchmark
suite (name and hash: a suite edited later is skipped rather than compared with stale decisions) it holds the
kept jobs (count and hash of their ids), every pruned job and its reason, the estimate's FLOPs, and for every
model its parameter count, FLOPs and feature-tap shapes. The current path (kdbench/zoo/models/profile.py: one
meta-device profile per architecture with shape shortcuts and a per-call FLOP tally) must give the same for
every suite this environment can load. Regenerate (only for a deliberate change of decisions):
`python tests/test_validate_decisions.py [REPO_ROOT] > tests/fixtures/validate_decisions.json`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = json.loads((ROOT / "tests/fixtures/validate_decisions.json").read_text())


def suite_decisions(path: Path) -> dict:
    """One suite's decisions with the kdbench on the path (SpecError / ImportError: it cannot load here)."""
    from kdbench.jobs import canonical_json
    from kdbench.suite import expand, guards, load_suite
    from kdbench.suite.compat import _shapes, prune_incompatible
    from kdbench.suite.estimate import estimate
    from kdbench.zoo.datasets import DATASETS
    from kdbench.zoo.datasets.base import data_checked_later
    from kdbench.zoo.models.cost import forward_flops

    with data_checked_later():
        plan = expand(load_suite(str(path)))
        kept, pruned = prune_incompatible(plan)
        est = estimate(kept)
        described = DATASETS.get(plan.suite.dataset.name).params(**plan.suite.dataset.params).describe()
    models = {}
    if described is not None:
        shape, classes, _ = described
        for e in plan.entries:
            for m in (e.job.model, *(t.model for t in e.job.teachers)):
                pj = canonical_json(m.params)
                models[f"{m.name} {pj}"] = [guards.model_size(m.name, m.params, tuple(shape), classes),
                                            forward_flops(m.name, pj, tuple(shape), classes),
                                            {k: list(v) for k, v in _shapes(m.name, pj, tuple(shape), classes).items()}]
    ids = sorted(e.job_id for e in kept.entries)
    return {"kept": len(ids), "kept_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "pruned": {p.entry.job_id: p.reason for p in pruned},
            "flops": None if est is None else est.flops, "models": models}


def fixture_key(path: Path) -> str:
    """`name@sha256[:16]` of the suite file: an entry holds for exactly that text of the suite."""
    return f"{path.name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


def decisions(root: Path) -> dict:
    from kdbench.suite.errors import SpecError

    out = {}
    for path in sorted((root / "benchmarks/suites").glob("*.yaml")):
        try:
            out[fixture_key(path)] = suite_decisions(path)
        except (SpecError, ImportError):
            continue
    return out


SUITES = sorted((ROOT / "benchmarks/suites").glob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=[p.name for p in SUITES])
def test_same_decisions_as_building_every_cell(path):
    want = FIXTURE.get(fixture_key(path))
    if want is None:  # a suite written or changed after the switch-over: nothing recorded by the old path
        pytest.skip(f"{path.name}: no decisions of the build-based path recorded for this text of the suite")
    from kdbench.suite.errors import SpecError

    torch.set_num_threads(1)
    try:
        got = suite_decisions(path)
    except (SpecError, ImportError) as e:
        pytest.skip(f"{path.name} cannot be loaded here: {e}")
    assert got["models"] == want["models"]  # parameters, FLOPs and tap shapes of every architecture
    assert got["pruned"] == want["pruned"]  # every pruned cell and its reason
    assert (got["kept"], got["kept_sha256"]) == (want["kept"], want["kept_sha256"])
    assert got["flops"] == want["flops"]


def test_fixture_prunes_something_real():
    """The comparison is not vacuous: the fixture holds pruned cells (FSP's channels, VS's layers …)."""
    crd = FIXTURE[fixture_key(ROOT / "benchmarks/suites/crd_cifar100.yaml")]
    assert len(crd["pruned"]) == 35 and crd["kept"] == 1056 and len(crd["models"]) == 15
    assert any("fsp needs equal channels" in r for r in crd["pruned"].values())


def test_shortcuts_match_plain_meta_forward():
    """The meta shortcuts (conv, pools, broadcasting, cat, batch norm …) give the shapes a plain meta forward gives,
    including cases they hand back to torch (string padding, ceil mode, broadcasting)."""
    import torch.nn.functional as F

    from kdbench.zoo.models.profile import on_meta

    cases = [
        lambda x: F.conv2d(x, torch.empty(8, 3, 3, 3), None, 2, 1),
        lambda x: F.conv2d(x, torch.empty(6, 1, 5, 3), None, (1, 2), (2, 0), (1, 2), 3),
        lambda x: F.conv2d(x, torch.empty(4, 3, 3, 3), padding="same"),
        lambda x: F.max_pool2d(x, 3, 2, 1),
        lambda x: F.max_pool2d(x, 2, ceil_mode=True),
        lambda x: F.avg_pool2d(x, (3, 2), (2, 1)),
        lambda x: F.adaptive_avg_pool2d(x, (None, 2)),
        lambda x: x + torch.empty(3, 1, 1),
        lambda x: 2.5 * x - x[:, :1],
        lambda x: torch.cat([x, x[:, :2]], 1),
        lambda x: F.relu(F.batch_norm(x, torch.empty(3), torch.empty(3))),
        lambda x: F.linear(x.flatten(1), torch.empty(5, 3 * 9 * 7)),
    ]
    for i, case in enumerate(cases):
        with torch.device("meta"):
            want = case(torch.empty(2, 3, 9, 7))
        with on_meta():
            got = case(torch.empty(2, 3, 9, 7))
        assert (got.shape, got.dtype, got.device.type) == (want.shape, want.dtype, "meta"), i


def test_validate_imports_no_compiler_ray_or_tracking():
    """`kdbench validate` of the large suite: no TorchDynamo (meta kernels), Ray, MLflow or model hubs."""
    code = ("import runpy, sys, json\n"
            "sys.argv = ['kdbench', 'validate', 'benchmarks/suites/crd_cifar100.yaml']\n"
            "try:\n    runpy.run_module('kdbench.cli', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'ray', 'mlflow', 'deepspeed', 'transformers', 'timm'} or m == 'torch._dynamo')))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


if __name__ == "__main__":
    json.dump(decisions(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT), sys.stdout, indent=1, sort_keys=True)
