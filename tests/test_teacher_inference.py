"""The teacher inference engine: DeepSpeed equals plain PyTorch on CPU, dtypes, counting, and clear errors for
missing or mismatched teacher weights."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from kdbench import checkpoint
from kdbench.engine import run_job
from kdbench.errors import JobFailed, MissingUpstream
from kdbench.store import Store
from kdbench.suite import Component, Job, Upstream, expand, load_suite
from kdbench.teachers.inference import InferenceSpec, TeacherEngine
from kdbench.teachers.load import load_teacher
from kdbench.teachers.sources import TeacherMismatch, TeacherNotFound, checkpoint_file, load_weights
from kdbench.zoo.models import create_model

from .conftest import TINY_SUITE, write_suite

SHAPE = (3, 12, 12)


def models(n: int = 2) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [create_model("cnn", {"channels": [8, 16]}, SHAPE, 10) for _ in range(n)]


def copies(ms):
    out = [create_model("cnn", {"channels": [8, 16]}, SHAPE, 10) for _ in ms]
    for a, b in zip(out, ms, strict=True):
        a.load_state_dict(b.state_dict())
    return out


@pytest.mark.parametrize("members", [1, 2])
def test_deepspeed_fp32_equals_plain_pytorch(members):
    ms = models(members)
    x = torch.randn(16, *SHAPE)
    plain = TeacherEngine(copies(ms), "geometric", InferenceSpec(), "cpu", SHAPE)(x)
    ds = TeacherEngine(copies(ms), "geometric", InferenceSpec("deepspeed"), "cpu", SHAPE)(x)
    assert torch.equal(ds.member_logits, plain.member_logits) and ds.member_logits.shape == (members, 16, 10)
    assert torch.equal(ds.log_probs(4.0), plain.log_probs(4.0))
    assert ds.features.keys() == plain.features.keys()
    assert all(torch.equal(ds.features[k], plain.features[k]) for k in ds.features)
    assert not ds.member_logits.requires_grad


@pytest.mark.parametrize("engine", ["torch", "deepspeed"])
def test_bf16_runs_in_bf16_and_returns_fp32_close_to_fp32(engine):
    ms = models(1)
    x = torch.randn(16, *SHAPE)
    exact = TeacherEngine(copies(ms), None, InferenceSpec(), "cpu")(x).member_logits
    low = TeacherEngine(copies(ms), None, InferenceSpec(engine, "bf16"), "cpu")(x).member_logits
    assert low.dtype == torch.float32 and not torch.equal(low, exact)
    torch.testing.assert_close(low, exact, rtol=0.05, atol=0.05)


def test_deepspeed_fp16_on_cpu_is_a_clear_failure():
    with pytest.raises(JobFailed, match="fp16.*bf16 or fp32"):
        TeacherEngine(models(1), None, InferenceSpec("deepspeed", "fp16"), "cpu")


def test_the_engine_counts_forward_passes_and_reports_taps():
    engine = TeacherEngine(models(2), None, InferenceSpec(), "cpu", SHAPE)
    engine(torch.randn(5, *SHAPE))
    engine(torch.randn(3, *SHAPE))
    assert engine.counts() == {"teacher_forward_batches": 4, "teacher_forward_samples": 16}  # 2 members
    assert engine.tap_shapes == {}  # an ensemble has no features
    single = TeacherEngine(models(1), None, InferenceSpec(), "cpu", SHAPE)
    assert single.tap_shapes["stage2"] == (16, 6, 6) and single.parameter_count() > 0


def test_importing_the_engine_does_not_import_deepspeed():
    code = ("import sys, kdbench.engine, kdbench.teachers.inference, kdbench.teachers.cache; "
            "sys.exit('deepspeed' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _student(teacher_id: str, arch: str, params: dict) -> Job:
    return Job("student", Component("synthetic", {}), Component("mlp", {"widths": [4]}), {"epochs": 1},
               Component("kd", {}), 0, teachers=(Upstream(teacher_id, Component(arch, params)),))


def test_missing_teacher_weights_name_the_job_and_the_store(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(MissingUpstream, match=f"abc123.*{tmp_path}"):
        load_teacher(_student("abc123", "mlp", {"widths": [8]}), store, (8,), 4, "cpu")


def test_mismatched_teacher_weights_name_the_file_and_the_misfit(tmp_path):
    store = Store(tmp_path)
    saved = create_model("mlp", {"widths": [8]}, (8,), 4)
    checkpoint.save(store, "artifacts/t1/model.pt", {"model": saved.state_dict()})
    with pytest.raises(TeacherMismatch, match=r"artifacts/t1/model\.pt.*'mlp'.*shape mismatch: layers\.0\.weight "
                                              r"\(8, 8\) in the file, \(16, 8\) in the model"):
        load_teacher(_student("t1", "mlp", {"widths": [16]}), store, (8,), 4, "cpu")
    with pytest.raises(TeacherMismatch, match=r"model\.pt.*'cnn'.*missing: .*unexpected: layers"):
        load_teacher(_student("t1", "cnn", {}), store, (1, 4, 2), 4, "cpu")


def test_a_users_checkpoint_file_in_the_usual_layouts(tmp_path):
    model = create_model("mlp", {"widths": [8]}, (8,), 4)
    with pytest.raises(TeacherNotFound, match="nowhere.pt"):
        checkpoint_file(str(tmp_path / "nowhere.pt"))
    path = tmp_path / "lightning.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    other = load_weights(create_model("mlp", {"widths": [8]}, (8,), 4), checkpoint_file(str(path)), str(path), "mlp")
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), model.state_dict().values(), strict=True))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TeacherMismatch, match="junk.pt: not a weights-only"):
        checkpoint_file(str(tmp_path / "junk.pt"))


def test_a_student_distilled_through_deepspeed_equals_one_through_pytorch(tmp_path):
    """The engine is part of a student's id (only when not the default), and on CPU in fp32 changes nothing."""
    text = TINY_SUITE.replace("chains:\n  - [big, mid, small]\n", "").replace("ensembles:\n  - {name: both, members: "
                                                                              "[big, mid], combine: geometric}\n", "")
    plain = expand(load_suite(str(write_suite(tmp_path, text, "a.yaml"))))
    ds = expand(load_suite(str(write_suite(tmp_path, text + "teacher_inference: {engine: deepspeed}\n", "b.yaml"))))
    pick = lambda plan: next(e.job for e in plan.entries if e.job.kind == "student")  # noqa: E731
    assert plain.entries[0].job_id == ds.entries[0].job_id  # teachers train as before
    assert pick(plain).job_id != pick(ds).job_id and pick(ds).teacher_inference["engine"] == "deepspeed"
    store = Store(tmp_path / "store")
    run_job(plain.entries[0].job, store)
    a, b = run_job(pick(plain), store), run_job(pick(ds), store)
    assert (a["test_acc"], a["final_train_loss"], a["teacher_agreement"]) == \
        (b["test_acc"], b["final_train_loss"], b["teacher_agreement"])


PRETRAINED = """\
name: pre
dataset: {name: synthetic, n_train: 256, n_val: 128, n_test: 256, dim: 8, num_classes: 4}
recipe: {epochs: 2, batch_size: 64, optimizer: {name: sgd, lr: 0.1}}
teachers:
  - {name: big, arch: mlp, widths: [64], weights: weights/big.pt}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [kd]
seeds: [0]
"""


def _save(path, widths, seed=0):
    path.parent.mkdir(exist_ok=True)
    torch.manual_seed(seed)
    model = create_model("mlp", {"widths": widths}, (8,), 4)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)  # a DataParallel run
    return model


def test_a_teacher_from_a_weights_file_is_used_as_is_and_identified_by_its_content(tmp_path):
    from kdbench.engine.data import dataset_on
    from kdbench.engine.loop import evaluate
    from kdbench.tasks.classification import Classification

    model = _save(tmp_path / "weights" / "big.pt", [64])
    plan = expand(load_suite(str(write_suite(tmp_path, PRETRAINED))))
    teacher = plan.entries[0].job
    assert plan.counts() == {"pretrained": 1, "baseline": 1, "student": 1}
    store = Store(tmp_path / "store")
    done = run_job(teacher, store)
    data = dataset_on(teacher.dataset, torch.device("cpu"))
    assert done["test_acc"] == evaluate(Classification(), model, data.test)[1]["acc"]
    student = run_job(plan.entries[-1].job, store)
    assert student["teacher_test_acc"] == done["test_acc"] and student["teacher_params"] == done["student_params"]
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "weights").mkdir()
    (moved / "weights" / "big.pt").write_bytes((tmp_path / "weights" / "big.pt").read_bytes())
    again = expand(load_suite(str(write_suite(moved, PRETRAINED))))
    assert again.entries[0].job_id == teacher.job_id  # where the file is is not what it holds
    _save(tmp_path / "weights" / "big.pt", [64], seed=1)  # other weights: another teacher
    assert expand(load_suite(str(write_suite(tmp_path, PRETRAINED)))).entries[0].job_id != teacher.job_id
    with pytest.raises(TeacherMismatch, match="changed after the suite was planned"):
        run_job(teacher, Store(tmp_path / "other"))


def test_a_weights_file_that_does_not_fit_or_is_missing_is_a_clear_error(tmp_path):
    from kdbench.suite import SpecError

    with pytest.raises(SpecError, match=r"suite.yaml:5: teachers\[0\]\.weights: file not found: .*weights/big.pt"):
        load_suite(str(write_suite(tmp_path, PRETRAINED)))
    _save(tmp_path / "weights" / "big.pt", [32])  # checked when the suite loads (suite/weights_fit.py), in one line
    with pytest.raises(SpecError, match=r"suite.yaml:5: teachers\[0\]\.weights: .*weights/big.pt: the weights do "
                                        r"not fit architecture 'mlp': shape mismatch: layers\.0\.weight \(32, 8\) in "
                                        r"the file, \(64, 8\)[^\n]*$"):
        load_suite(str(write_suite(tmp_path, PRETRAINED)))
