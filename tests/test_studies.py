"""Issue 4's studies: identities that stay put, teacher snapshots of one run, early-stopped KD, and the
offline twins of the study suites run end to end (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kdbench.engine import checkpoint, run_job
from kdbench.engine.loop import accuracy, predict
from kdbench.engine.run import HISTORY
from kdbench.methods.base import Batch, TeacherOutput, TrainState, create_method
from kdbench.methods.kd import KDParams
from kdbench.spec import SpecError, expand, load_suite
from kdbench.store import Store
from kdbench.teachers.load import MODEL_FILE, snapshot_file
from kdbench.zoo.models import create_model
from kdbench.zoo.models.base import ModelOutput

from .conftest import TINY_SUITE, write_suite

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "job_ids_head.json"

SNAP_SUITE = """\
name: snap
dataset: {name: synthetic, n_train: 256, n_val: 128, n_test: 256, dim: 8, num_classes: 4}
recipe: {epochs: 3, batch_size: 64, optimizer: {name: sgd, lr: 0.1}}
teachers:
  - {name: big, arch: mlp, widths: [32], stop_epochs: [1, 2]}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [none, kd, {kd: {stop_epoch: 1}}]
seeds: [0]
"""


def test_existing_job_ids_are_unchanged(tmp_path, monkeypatch):
    """Ids computed before issue 4 (tests/fixtures/job_ids_head.json) come out equal after it."""
    folder = tmp_path / "cifar-100-python"  # validation checks CIFAR-100's file names exist; nothing reads them
    folder.mkdir()
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes(b"")
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(tmp_path))
    expected = json.loads(FIXTURE.read_text())
    for path in ("benchmarks/suites/quickstart.yaml", "benchmarks/suites/crd_digits.yaml",
                 "benchmarks/suites/crd_cifar100.yaml"):
        assert sorted(e.job_id for e in expand(load_suite(str(ROOT / path))).entries) == expected[path], path
    mid = "{name: mid, arch: mlp, widths: [16]}"
    text = TINY_SUITE.replace(mid, mid[:-1] + ", stop_epoch: 2}")
    got = sorted(e.job_id for e in expand(load_suite(str(write_suite(tmp_path, text)))).entries)
    assert got == expected["tiny_with_stop_epoch"]


def test_snapshots_and_eskd_enter_identity_only_when_set(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, SNAP_SUITE))))
    teachers = [e for e in plan.entries if e.job.kind == "teacher"]
    assert len(teachers) == 1 and teachers[0].job.snapshots == (1, 2)  # one run, not one per stop epoch
    assert teachers[0].job.identity()["snapshots"] == [1, 2]
    students = {(e.teacher, e.job.method.params.get("stop_epoch")): e.job for e in plan.entries
                if e.job.kind == "student"}
    assert set(students) == {(t, s) for t in ("big", "big@1", "big@2") for s in (None, 1)}
    ups = {k: v.identity()["upstream"] for k, v in students.items()}
    tid = teachers[0].job_id
    assert ups[("big", None)] == [tid] and ups[("big@1", None)] == [f"{tid}@1"]
    assert "stop_epoch" not in students[("big", None)].method.params
    assert len({j.job_id for j in students.values()}) == 6


def test_snapshot_epochs_are_checked(tmp_path):
    bad = SNAP_SUITE.replace("stop_epochs: [1, 2]", "stop_epochs: [1, 4]")
    with pytest.raises(SpecError, match=r"teachers\[0\]\.stop_epochs\[1\]: must be in 1\.\.3"):
        load_suite(str(write_suite(tmp_path, bad)))
    with pytest.raises(SpecError, match="not a teacher"):
        load_suite(str(write_suite(tmp_path, SNAP_SUITE + "pairs: [[big@5, small]]\n")))


def test_a_student_of_a_snapshot_learns_from_that_epochs_weights(tmp_path):
    torch.set_num_threads(1)
    plan = expand(load_suite(str(write_suite(tmp_path, SNAP_SUITE))))
    store = Store(str(tmp_path / "store"))
    teacher = next(e.job for e in plan.entries if e.job.kind == "teacher")
    run_job(teacher, store)
    snaps = {e: checkpoint.load(store, Store.artifact(teacher.job_id, snapshot_file(e)))["model"] for e in (1, 2)}
    assert checkpoint.load(store, Store.artifact(teacher.job_id, snapshot_file(3))) is None
    assert not torch.equal(snaps[1]["head.weight"], snaps[2]["head.weight"])
    student = next(e.job for e in plan.entries if e.teacher == "big@1" and "stop_epoch" not in e.job.method.params)
    final = run_job(student, store)
    # The teacher accuracy the engine reports is that of the epoch-1 snapshot, recomputed here.
    from kdbench.engine.data import dataset_on

    data = dataset_on(student.dataset, torch.device("cpu"))
    model = create_model("mlp", teacher.model.params, data.input_shape, data.num_classes)
    model.load_state_dict(snaps[1])
    assert final["teacher_test_acc"] == pytest.approx(float(accuracy(predict(model, data.test), data.test)))
    full = checkpoint.load(store, Store.artifact(teacher.job_id, MODEL_FILE))["model"]
    model.load_state_dict(full)
    assert not torch.equal(full["head.weight"], snaps[1]["head.weight"])


def test_eskd_stops_the_distillation_term_after_its_epoch(tmp_path):
    torch.set_num_threads(1)
    plan = expand(load_suite(str(write_suite(tmp_path, SNAP_SUITE))))
    store = Store(str(tmp_path / "store"))
    for e in plan.entries:
        if e.job.kind == "teacher" or (e.teacher == "big" and e.job.method.name == "kd"):
            run_job(e.job, store)
    eskd = next(e.job for e in plan.entries if e.teacher == "big" and e.job.method.params.get("stop_epoch") == 1)
    history = json.loads(store.read_bytes(Store.artifact(eskd.job_id, HISTORY)))
    assert history[0]["train_kd"] > 0 and [h["train_kd"] for h in history[1:]] == [0.0, 0.0]
    assert history[1]["train_loss"] == pytest.approx(history[1]["train_ce"])


def test_eskd_loss_is_plain_cross_entropy_after_the_stop(tmp_path):
    from kdbench.methods.base import MethodContext

    torch.manual_seed(0)
    ctx = MethodContext(num_classes=5, num_train=8)
    method = create_method("kd", KDParams(stop_epoch=2).model_dump(), ctx)
    s, t, y = torch.randn(8, 5), torch.randn(1, 8, 5), torch.randint(5, (8,))
    batch, out, tout = Batch(torch.zeros(8, 1), y, torch.arange(8)), ModelOutput(s, {}), TeacherOutput(t)
    before = method(batch, out, tout, TrainState(1, 3))
    after = method(batch, out, tout, TrainState(2, 3))
    ce = torch.nn.functional.cross_entropy(s, y)
    assert before["kd"] > 0 and torch.allclose(before["ce"], 0.1 * ce)
    assert after["kd"] == 0 and torch.allclose(after["ce"], ce)

