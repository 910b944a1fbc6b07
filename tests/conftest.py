"""Shared fixtures: tiny suites on offline data, a temporary store, one local Ray per session; test tiers.

Every test gets exactly one tier marker, applied here at collection (`pytest -m unit` runs one tier):

- `cluster`: a multi-node Ray cluster (the fixture `cluster` of tests/test_cluster_e2e.py, or marked);
- `services`: real services on loopback: moto's S3, PostgreSQL, an `mlflow server` (tests/services.py's
  fixtures `s3_server`, `postgres`, `mlflow_server`, or marked);
- `ray`: a local Ray, in this process (the `ray_local` fixture) or in a subprocess (`kdbench run`);
- `unit`: everything else: no Ray, no services. The tier runs in under two minutes.

A tier comes from the fixtures a test uses (directly or through other fixtures), the heaviest first. A
test that starts Ray or a service without those fixtures (e.g. `kdbench run` in a subprocess) carries its
tier as an explicit marker (`@pytest.mark.ray`), which wins. A unit test that starts Ray in this process
fails: `ray.init` raises during unit tests (the autouse fixture `unit_tests_start_no_ray` below).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Session fixtures for real services on loopback (S3, PostgreSQL, MLflow server); started only when used.
pytest_plugins = ["tests.services"]
# Ray workers (started by the tests' local Ray) import test plugins such as tests.faulty_plugin.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

TINY_SUITE = """\
name: tiny
dataset: {name: synthetic, n_train: 256, n_val: 128, n_test: 256, dim: 8, num_classes: 4}
recipe:
  epochs: 3
  batch_size: 64
  optimizer: {name: sgd, lr: 0.1}
teachers:
  - {name: big, arch: mlp, widths: [64]}
  - {name: mid, arch: mlp, widths: [16]}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [none, kd]
chains:
  - [big, mid, small]
ensembles:
  - {name: both, members: [big, mid], combine: geometric}
seeds: [0, 1]
"""


# Suites whose methods fail inside the loss (tests/faulty_plugin.py).
FAULTY_SUITE = """\
name: faulty
plugins: [tests.faulty_plugin]
dataset: {name: synthetic, n_train: 128, n_val: 64, n_test: 64, dim: 8, num_classes: 3}
recipe: {epochs: 2, batch_size: 64}
teachers: [{name: big, arch: mlp, widths: [32]}]
students: [{name: small, arch: mlp, widths: [4]}]
methods: [kd, test_raise_in_loss, test_out_of_memory]
seeds: [0]
retries: 1
"""


def write_plan_rows(store, suite: str, rows: list[dict]) -> None:
    """A hand-made plan of `suite` (PLAN_SCHEMA rows, `suite` filled in), as `kdbench run` would record it."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from kdbench.results.schema import PLAN_SCHEMA

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{**r, "suite": suite} for r in rows], schema=PLAN_SCHEMA), buf)
    store.write_bytes(f"plans/{suite}/20260101T000000000000-abc.parquet", buf.getvalue())


def write_suite(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path, TINY_SUITE)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for every test that runs suites (starting Ray costs seconds)."""
    from kdbench.orchestrate.ray_session import init_ray

    ray = init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


TIERS = ("unit", "ray", "services", "cluster")
# The fixtures that put a test in a tier, heaviest tier first.
TIER_FIXTURES = (
    ("cluster", {"cluster"}),
    ("services", {"s3_server", "postgres", "mlflow_server"}),
    ("ray", {"ray_local"}),
)


def tier_of(item) -> str:
    explicit = [name for name in TIERS if item.get_closest_marker(name) is not None]
    if len(explicit) > 1:
        raise pytest.UsageError(f"{item.nodeid}: more than one tier marker: {explicit}")
    if explicit:
        return explicit[0]
    used = set(getattr(item, "fixturenames", ()))
    return next((tier for tier, fixtures in TIER_FIXTURES if used & fixtures), "unit")


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(item)
        if item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def unit_tests_start_no_ray(request):
    """In a unit test, starting Ray in this process (`ray.init`, directly or through Tune) raises and fails
    the test, even when the test catches the error; `ray.is_initialized()` answers False, so a Ray that an
    earlier `ray` test started is not silently reused."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    import ray
    import ray._private.worker

    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(request.node.nodeid)
        raise RuntimeError("a unit-tier test started Ray: give it the `ray` marker (see tests/conftest.py)")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray, "init", refuse)
        mp.setattr(ray._private.worker, "init", refuse)
        mp.setattr(ray, "is_initialized", lambda: False)
        yield
    if attempts:
        pytest.fail(f"{request.node.nodeid} is in the unit tier but started Ray", pytrace=False)
