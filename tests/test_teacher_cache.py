"""The teacher-output cache: the plan inserts it for logit-only students, its outputs equal live ones, a student
from it equals a live student, it is shared by students and suites, and its size is what validate says."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
from pydantic import Field

from kdbench import checkpoint
from kdbench.engine import run_job
from kdbench.engine.data import shuffled_batches
from kdbench.jobs import JobFinal
from kdbench.store import Store
from kdbench.suite import expand, load_suite
from kdbench.suite.outputs import cache_bytes
from kdbench.teachers.cache import CachedTeacher, read_table, view_file, view_logits
from kdbench.teachers.load import load_teacher
from kdbench.zoo.datasets import DATASETS, DataSplits, Split
from kdbench.zoo.datasets.augment import crop_flip
from kdbench.zoo.datasets.base import DatasetParams, register_dataset

from .conftest import write_suite


class ImagesParams(DatasetParams):
    """Tiny 1×8×8 images labelled by a random linear map, with crop+flip augmentation."""

    n_train: int = Field(default=192, gt=0)
    augment: bool = True

    def describe(self):
        return (1, 8, 8), 5, self.n_train


if "cache_test_images" not in DATASETS:
    @register_dataset("cache_test_images", ImagesParams)
    def _images(p: ImagesParams) -> DataSplits:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(p.n_train + 256, 1, 8, 8, generator=g)
        y = (x.flatten(1) @ torch.randn(64, 5, generator=g)).argmax(1)
        n = p.n_train
        split = lambda a, b: Split(x[a:b], y[a:b])  # noqa: E731
        return DataSplits(split(0, n), split(n, n + 128), split(n + 128, n + 256), 5,
                          crop_flip(1) if p.augment else None)


SUITE = """\
name: {name}
dataset: {dataset}
recipe: {{epochs: 3, batch_size: 48, optimizer: {{name: sgd, lr: 0.05}}}}
teachers:
  - {{name: big, arch: {teacher}}}
students:
  - {{name: s1, arch: {student}, dropout: 0.2}}
  - {{name: s2, arch: {student}}}
methods: {methods}
seeds: [0, 1]
teacher_cache: {cache}
"""
IMAGES = "{name: cache_test_images}"
SYNTH = "{name: synthetic, n_train: 256, n_val: 128, n_test: 256, dim: 8, num_classes: 4}"


def suite(tmp_path, name="c", dataset=IMAGES, methods="[none, kd, dkd]", cache="{enabled: true}",
          teacher="cnn", student="cnn"):
    text = SUITE.format(name=name, dataset=dataset, methods=methods, cache=cache, teacher=teacher, student=student)
    if student == "cnn":  # the cnn has no dropout parameter
        text = text.replace(", dropout: 0.2", ", channels: [4]")
    return expand(load_suite(str(write_suite(tmp_path, text, f"{name}.yaml"))))


def of_kind(plan, kind):
    return [e for e in plan.entries if e.job.kind == kind]


def test_the_plan_adds_one_outputs_job_per_teacher_and_seed_and_keeps_student_ids(tmp_path):
    plan, live = suite(tmp_path), suite(tmp_path, "l", cache="{enabled: false}")
    outputs = of_kind(plan, "teacher_outputs")
    assert len(outputs) == 2 and sorted(e.job.seed for e in outputs) == [0, 1]  # views: all — one per seed
    by_seed = {e.job.seed: e.job_id for e in outputs}
    students = of_kind(plan, "student")
    assert len(students) == 2 * 2 * 2 and all(s.job.outputs == (by_seed[s.job.seed],) for s in students)
    assert {e.job_id for e in of_kind(live, "student")} == {e.job_id for e in students}  # exact: same ids
    assert not of_kind(live, "teacher_outputs")
    ids = [e.job_id for e in plan.entries]
    assert all(ids.index(o) < ids.index(s.job_id) for s in students for o in s.job.outputs)  # topological
    assert outputs[0].job.teachers == students[0].job.teachers


def test_replayed_views_fp16_or_topk_are_one_job_per_teacher_and_other_student_ids(tmp_path):
    live = {e.job_id for e in of_kind(suite(tmp_path, "l", cache="{enabled: false}"), "student")}
    k = suite(tmp_path, "k", cache="{enabled: true, views: 2}")
    (out,) = of_kind(k, "teacher_outputs")
    assert out.job.recipe.epochs == 2 and all(s.job.outputs == (out.job_id,) for s in of_kind(k, "student"))
    assert not live & {e.job_id for e in of_kind(k, "student")}
    half = suite(tmp_path, "h", cache="{enabled: true, dtype: fp16, topk: 2}")
    assert not live & {e.job_id for e in of_kind(half, "student")}
    # Without augmentation every view is the same: K views collapse to one.
    (plain,) = of_kind(suite(tmp_path, "p", dataset=SYNTH, cache="{enabled: true, views: 4}", teacher="mlp",
                             student="mlp"), "teacher_outputs")
    assert plain.job.recipe.epochs == 1


def test_no_outputs_job_for_feature_methods_or_when_off_or_when_auto_saves_too_little(tmp_path):
    assert not of_kind(suite(tmp_path, "f", methods="[kd, fitnet]"), "teacher_outputs")  # fitnet reads features
    assert not of_kind(suite(tmp_path, "o", cache="{enabled: off}"), "teacher_outputs")
    assert not of_kind(suite(tmp_path, "a", cache="{}"), "teacher_outputs")  # auto: a tiny teacher, not worth it


def test_validate_shows_the_cache_size(tmp_path):
    from typer.testing import CliRunner

    from kdbench.cli import app

    plan = suite(tmp_path)
    result = CliRunner().invoke(app, ["validate", plan.suite.path])
    assert result.exit_code == 0, result.output
    expected = 2 * cache_bytes(192, 3, 5, None, "fp32")  # two seeds × 3 epochs of 192 samples × 5 classes
    assert "teacher outputs" in result.output and f"{expected:,} bytes" in result.output


def _run(plan, store, kinds=("teacher", "teacher_outputs")):
    return {e.job_id: run_job(e.job, store) for e in plan.entries if e.job.kind in kinds}


@pytest.mark.parametrize("cache", ["{enabled: true}", "{enabled: true, dtype: fp16}",
                                   "{enabled: true, topk: 3}"])
def test_cached_outputs_equal_live_outputs_on_the_same_views(tmp_path, cache):
    plan = suite(tmp_path, cache=cache)
    store = Store(tmp_path / "store")
    _run(plan, store)
    out = of_kind(plan, "teacher_outputs")[0].job
    student = next(e.job for e in of_kind(plan, "student") if e.job.seed == out.seed)
    data = DATASETS.get("cache_test_images").load(ImagesParams())
    live = load_teacher(student, store, data.input_shape, data.num_classes, "cpu")
    for epoch in range(3):
        index, cached = view_logits(read_table(store, f"artifacts/{out.job_id}/{view_file(epoch)}"), 5)
        rows = []
        for x, _, idx in shuffled_batches(data.train, 48, out.seed, epoch):
            rows.append(live(data.augment(x, idx, out.seed, epoch)).member_logits[0])
        expected = torch.cat(rows)
        assert torch.equal(index, torch.cat([i for *_, i in shuffled_batches(data.train, 48, out.seed, epoch)]))
        if cache == "{enabled: true}":
            assert torch.equal(cached, expected)  # bit-identical: same batches, same engine
        elif "fp16" in cache:
            torch.testing.assert_close(cached, expected, rtol=1e-3, atol=1e-3)
            assert not torch.equal(cached, expected)
        else:  # top-3 of 5 probabilities kept; the other two share what is left
            p, q = torch.softmax(cached, 1), torch.softmax(expected, 1)
            top = q.topk(3, dim=1)
            torch.testing.assert_close(p.gather(1, top.indices), top.values)
            rest = p.scatter(1, top.indices, 0.0)
            torch.testing.assert_close(rest.sum(1), 1 - top.values.sum(1))
            assert torch.allclose(rest.max(1).values, (1 - top.values.sum(1)) / 2)


def _weights(store, job_id):
    return checkpoint.load(store, f"artifacts/{job_id}/model.pt")["model"]


def test_a_student_from_the_cache_equals_a_live_student(tmp_path):
    """Same seed, CPU: same test accuracy, same final weights — with augmentation and dropout in the student."""
    plan = suite(tmp_path, dataset="{name: cache_test_images}", teacher="cnn", student="mlp")
    cached, live = Store(tmp_path / "cached"), Store(tmp_path / "live")
    _run(plan, cached)
    _run(plan, live, ("teacher",))
    for e in [e for e in of_kind(plan, "student") if e.student == "s1"][:2]:  # kd and dkd, with dropout
        a = run_job(e.job, cached)
        b = run_job(dataclasses.replace(e.job, outputs=()), live)  # the same job id, its teacher run live
        assert a["teacher_forward_samples"] == 0 and b["teacher_forward_samples"] > 0
        assert a["test_acc"] == b["test_acc"] and a["final_train_loss"] == b["final_train_loss"]
        assert (a["teacher_test_acc"], a["teacher_agreement"]) == (b["teacher_test_acc"], b["teacher_agreement"])
        wa, wb = _weights(cached, e.job_id), _weights(live, e.job_id)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_replayed_views_train_on_view_e_mod_k(tmp_path):
    plan = suite(tmp_path, cache="{enabled: true, views: 2}")
    store = Store(tmp_path / "store")
    _run(plan, store)
    out = of_kind(plan, "teacher_outputs")[0].job
    data = DATASETS.get("cache_test_images").load(ImagesParams())
    teacher = CachedTeacher(store, (out.job_id,), None, 5, torch.device("cpu"))
    augment = teacher.replayed(data.augment)
    idx = torch.arange(10)
    x0 = data.train.x[idx]
    for epoch in range(4):  # epochs 0, 2 see view 0; 1, 3 see view 1 — whatever the student's seed
        assert torch.equal(augment(x0, idx, 7, epoch), data.augment(x0, idx, 0, epoch % 2))
    live = load_teacher(of_kind(plan, "student")[0].job, store, data.input_shape, 5, "cpu")
    x = data.augment(data.train.x[idx], idx, 0, 1)
    torch.testing.assert_close(teacher(x, idx, 3).member_logits, live(x).member_logits, rtol=1e-5, atol=1e-5)
    s = of_kind(plan, "student")[0]
    assert run_job(s.job, store)["teacher_forward_samples"] == 0


def test_the_size_formula_is_the_files_payload(tmp_path):
    for cache, topk, dtype in [("{enabled: true}", None, "fp32"), ("{enabled: true, topk: 2, dtype: fp16}", 2, "fp16")]:
        plan = suite(tmp_path, cache=cache)
        store = Store(tmp_path / dtype)
        _run(plan, store)
        out = of_kind(plan, "teacher_outputs")[0].job_id
        payload = sum(read_table(store, f"artifacts/{out}/{view_file(v)}").nbytes for v in range(3))
        assert payload == cache_bytes(192, 3, 5, topk, dtype)
        assert JobFinal.from_json(store.read_bytes(f"artifacts/{out}/final.json"))["cache_bytes"] == payload


def test_an_interrupted_outputs_job_resumes_at_the_first_missing_view(tmp_path):
    plan = suite(tmp_path)
    store = Store(tmp_path / "store")
    _run(plan, store, ("teacher",))
    out = of_kind(plan, "teacher_outputs")[0].job

    class Stop(Exception):
        pass

    def stop_after_two(metrics):
        if metrics["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        run_job(out, store, report=stop_after_two)
    seen = []
    final = run_job(out, store, report=seen.append)
    assert [m["epoch"] for m in seen] == [3] and final["teacher_forward_samples"] == 192 + 128


def test_a_missing_cache_is_a_clear_failure(tmp_path):
    from kdbench.errors import MissingUpstream

    plan = suite(tmp_path)
    store = Store(tmp_path / "store")
    _run(plan, store)
    out = of_kind(plan, "teacher_outputs")[0].job_id
    shutil.rmtree(tmp_path / "store" / "artifacts" / out)
    student = next(e.job for e in of_kind(plan, "student") if out in e.job.outputs)
    with pytest.raises(MissingUpstream, match=out):
        run_job(student, store)


@pytest.mark.slow
def test_a_suite_through_ray_runs_each_outputs_job_once_and_its_students_read_it(tmp_path, ray_local):
    """Two suites sharing a store: the second reuses the first one's teacher outputs (no second run)."""
    from kdbench.orchestrate.runner import RunOptions, run_suite

    text = SUITE.format(name="ray1", dataset=SYNTH, methods="[kd, dkd]", cache="{enabled: true}", teacher="mlp",
                        student="mlp").replace("seeds: [0, 1]", "seeds: [0]")
    first = write_suite(tmp_path, text, "a.yaml")
    other = text.replace("ray1", "ray2").replace("{name: s2, arch: mlp}", "{name: s3, arch: mlp, widths: [8]}")
    second = write_suite(tmp_path, other, "b.yaml")
    store = tmp_path / "store"
    opts = RunOptions(store=str(store), track=False, num_cpus=2)
    a = run_suite(str(first), opts)
    plan_a, plan_b = expand(load_suite(str(first))), expand(load_suite(str(second)))
    (out,) = of_kind(plan_a, "teacher_outputs")
    assert (a.failed, a.run) == (0, len(plan_a))
    finals = {e.job_id: JobFinal.from_json((store / "artifacts" / e.job_id / "final.json").read_text())
              for e in plan_a.entries}
    assert finals[out.job_id]["teacher_forward_samples"] == 3 * 256 + 256  # one pass over 3 epochs' views + test
    students = of_kind(plan_a, "student")
    assert len(students) == 4 and all(finals[s.job_id]["teacher_forward_samples"] == 0 for s in students)
    b = run_suite(str(second), opts)
    assert of_kind(plan_b, "teacher_outputs")[0].job_id == out.job_id
    new = {e.job_id for e in plan_b.entries} - {e.job_id for e in plan_a.entries}
    assert (b.run, b.failed) == (len(new), 0) and out.job_id not in new  # the cache was not computed again


def test_a_finished_cache_missing_a_view_runs_again_for_its_pending_students(tmp_path):
    from kdbench.orchestrate.integrity import corrupt_upstreams

    plan = suite(tmp_path)
    store = Store(tmp_path / "store")
    done = set(_run(plan, store))
    assert corrupt_upstreams(store, plan, done) == set()
    out = of_kind(plan, "teacher_outputs")[0].job
    (tmp_path / "store" / "artifacts" / out.job_id / view_file(1)).unlink()
    assert corrupt_upstreams(store, plan, done) == {out.job_id}
    seen = []
    run_job(out, store, report=seen.append)  # its final.json was cleared: it recomputes the missing view only
    assert [m["epoch"] for m in seen] == [2]


def test_under_a_mixed_precision_recipe_a_student_from_the_cache_still_equals_a_live_one(tmp_path):
    from kdbench.suite.schema import Recipe

    if "precision" not in Recipe.model_fields:
        pytest.skip("recipes have no mixed precision in this tree")
    text = SUITE.format(name="bf", dataset=IMAGES, methods="[kd]", cache="{enabled: true}", teacher="cnn",
                        student="mlp").replace("batch_size: 48,", "batch_size: 48, precision: bf16,")
    plan = expand(load_suite(str(write_suite(tmp_path, text, "bf.yaml"))))
    assert all(e.job.recipe.precision == "bf16" for e in of_kind(plan, "teacher_outputs"))
    cached, live = Store(tmp_path / "cached"), Store(tmp_path / "live")
    _run(plan, cached)
    _run(plan, live, ("teacher",))
    e = of_kind(plan, "student")[0]
    a, b = run_job(e.job, cached), run_job(dataclasses.replace(e.job, outputs=()), live)
    assert a["final_train_loss"] == b["final_train_loss"]
    wa, wb = _weights(cached, e.job_id), _weights(live, e.job_id)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_student_trained_without_the_datasets_augmentation_reads_plain_views(tmp_path):
    text = SUITE.format(name="na", dataset=IMAGES, methods="[kd]", cache="{enabled: true}", teacher="cnn",
                        student="mlp")
    spec = load_suite(str(write_suite(tmp_path, text, "na.yaml")))
    s1 = dataclasses.replace(spec.students[0], recipe=spec.students[0].recipe.model_copy(update={"augment": False}))
    plan = expand(dataclasses.replace(spec, students=(s1, *spec.students[1:])))  # s1 trains on plain views
    plain = [e for e in of_kind(plan, "teacher_outputs") if e.job.recipe.augment is False]
    assert len(plain) == 2 and len(of_kind(plan, "teacher_outputs")) == 4  # s1 plain, s2 augmented; 2 seeds
    cached, live = Store(tmp_path / "cached"), Store(tmp_path / "live")
    _run(plan, cached)
    _run(plan, live, ("teacher",))
    e = next(e for e in of_kind(plan, "student") if e.student == "s1")
    a, b = run_job(e.job, cached), run_job(dataclasses.replace(e.job, outputs=()), live)
    assert a["teacher_forward_samples"] == 0 and a["final_train_loss"] == b["final_train_loss"]
    wa, wb = _weights(cached, e.job_id), _weights(live, e.job_id)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_auto_caches_what_saves_enough_teacher_work_within_max_gib(tmp_path, monkeypatch):
    from kdbench.suite import outputs

    assert not of_kind(suite(tmp_path, "a0", cache="{}"), "teacher_outputs")  # a tiny teacher: not worth a job
    monkeypatch.setattr(outputs, "AUTO_MIN_SAVED_FLOPS", 1.0)
    size = 2 * cache_bytes(192, 3, 5, None, "fp32")  # two seeds' exact views: 27,648 bytes
    assert len(of_kind(suite(tmp_path, "a1", cache=f"{{max_gib: {size * 1.1 / 2**30:.3e}}}"), "teacher_outputs")) == 2
    assert not of_kind(suite(tmp_path, "a2", cache=f"{{max_gib: {size * 0.9 / 2**30:.3e}}}"), "teacher_outputs")


def test_the_cache_on_an_s3_store_gives_the_student_it_gives_on_disk(tmp_path, s3_server):
    """Written and read through pyarrow.fs (moto's S3 on loopback) instead of memory-mapped files."""
    import uuid

    from kdbench.teachers.cache import outputs_intact

    plan = suite(tmp_path, methods="[kd]")
    s3, disk = Store(f"s3://{s3_server.bucket}/stores/{uuid.uuid4().hex[:8]}"), Store(tmp_path / "disk")
    student = next(e.job for e in of_kind(plan, "student") if e.job.seed == 0)
    finals = []
    for store in (s3, disk):
        _run(plan, store, ("teacher",))
        for job_id in student.outputs:
            run_job(plan.jobs[job_id], store)
        finals.append(run_job(student, store))
    assert finals[0]["teacher_forward_samples"] == 0
    key = ("test_acc", "final_train_loss", "teacher_agreement")
    assert [finals[0][k] for k in key] == [finals[1][k] for k in key]

    assert outputs_intact(s3, student.outputs[0], 3) and not outputs_intact(s3, student.outputs[0], 4)


ENSEMBLE = """\
name: ens
dataset: {name: synthetic, n_train: 256, n_val: 128, n_test: 256, dim: 8, num_classes: 4}
recipe: {epochs: 2, batch_size: 64, optimizer: {name: sgd, lr: 0.1}}
teachers:
  - {name: big, arch: mlp, widths: [64]}
  - {name: mid, arch: mlp, widths: [16]}
students:
  - {name: small, arch: mlp, widths: [4]}
methods: [kd]
chains:
  - [big, mid, small]
ensembles:
  - {name: both, members: [big, mid], combine: geometric}
seeds: [0]
teacher_cache: {enabled: true, views: VIEWS}
"""


def test_an_ensemble_student_reads_one_cache_per_member_and_equals_its_live_twin(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, ENSEMBLE.replace("VIEWS", "all")))))
    ens = next(e for e in of_kind(plan, "student") if e.teacher == "both")
    by_teacher = {e.job.teachers[0].ref: e.job_id for e in of_kind(plan, "teacher_outputs")}
    assert ens.job.outputs == tuple(by_teacher[t.ref] for t in ens.job.teachers)
    cached, live = Store(tmp_path / "cached"), Store(tmp_path / "live")
    finals = {e.job_id: run_job(e.job, cached) for e in plan.entries}  # the whole plan, chain included
    _run(plan, live, ("teacher",))
    a, b = finals[ens.job_id], run_job(dataclasses.replace(ens.job, outputs=()), live)
    assert a["teacher_forward_samples"] == 0 and b["teacher_forward_samples"] == 2 * (2 * 256 + 256)
    key = ("test_acc", "final_train_loss", "teacher_test_acc", "teacher_agreement", "teacher_params")
    assert [a[k] for k in key] == [b[k] for k in key]


def test_a_chain_link_learns_from_its_assistant_under_the_id_replay_gave_it(tmp_path):
    plan = expand(load_suite(str(write_suite(tmp_path, ENSEMBLE.replace("VIEWS", "2")))))
    ids = {e.job_id for e in plan.entries}
    ta = next(e for e in plan.entries if e.chain == ("big", "mid"))
    last = next(e for e in plan.entries if e.chain == ("big", "mid", "small"))
    assert ta.job.replay == {"views": 1, "topk": None, "dtype": "fp32"}  # synthetic data: one view
    assert last.job.teachers[0].job_id == ta.job_id
    assert all(i in ids for e in plan.entries for i in e.job.depends_on)


def test_replayed_views_of_an_augmentation_that_rewrites_the_targets_keep_the_targets():
    """Masked LM's masking is an augmentation of (x, y): a replaying cache must hand it y and return both."""
    from types import SimpleNamespace

    import torch

    from kdbench.teachers.cache import CachedTeacher
    from kdbench.zoo.datasets.base import augment_batch

    seen = []

    def mask(x, idx, seed, epoch, y):
        seen.append((seed, epoch))
        return x + epoch, y * 10

    mask.with_targets = True
    fake = SimpleNamespace(metas=[{"views_mode": "replay", "seed": 0, "views": 3}])
    replay = CachedTeacher.replayed(fake, mask)
    x, y = augment_batch(replay, torch.zeros(2), torch.ones(2), torch.arange(2), seed=7, epoch=4)
    assert seen == [(0, 1)] and x.tolist() == [1.0, 1.0] and y.tolist() == [10.0, 10.0]  # view 4 mod 3, seed 0
