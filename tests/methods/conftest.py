"""Fixtures of the method tests: one small digits teacher, trained once per session and copied into each
test's store (so no test sees another's students)."""

from __future__ import annotations

import shutil

import pytest
import torch

from kdbench.engine import run_job
from kdbench.jobs import Component, Job
from kdbench.store import Store
from kdbench.suite.schema import Recipe

DATA = Component("digits", {"train_fraction": 1.0})
TEACHER_MODEL = Component("cnn", {"channels": [8, 16], "dropout": 0.0})
RECIPE = Recipe(epochs=2, batch_size=64).model_dump(mode="json")
TEACHER = Job("teacher", DATA, TEACHER_MODEL, RECIPE, Component("none", {}), 0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models are tiny: intra-op threads only add synchronisation (seconds on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def teacher_store(tmp_path_factory):
    """The folder of a store holding the trained teacher `TEACHER` (and nothing else)."""
    root = tmp_path_factory.mktemp("teacher")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_job(TEACHER, Store(root))
    torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="module")
def trained_teacher(teacher_store, tmp_path_factory):
    """(a store holding the trained teacher, shared by a module's tests; the teacher job)."""
    return Store(shutil.copytree(teacher_store, tmp_path_factory.mktemp("store") / "store")), TEACHER


@pytest.fixture
def store(teacher_store, tmp_path):
    """A fresh store holding the trained teacher (copied, not retrained)."""
    return lambda name="store": Store(shutil.copytree(teacher_store, tmp_path / name))
