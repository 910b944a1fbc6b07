"""Shared fixtures: tiny suites on offline data, a temporary store, one local Ray per session."""

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
