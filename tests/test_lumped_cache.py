"""`teacher_cache: {topk: k, tail: lumped}`: the plan stores each KL-reading student's teacher as top-k logits at
that student's temperature (T and k in the ids, existing ids unchanged), the files hold exactly the teacher's
top-k, lse and indices per output position (a sample, or each token of a sequence), and a student trains from
them — as its live twin when k = C — without a teacher forward pass."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kdbench.engine import run_job
from kdbench.engine.data import shuffled_batches
from kdbench.engine.fused import fusable
from kdbench.jobs.identity import identity
from kdbench.outputs import TopK
from kdbench.store import Store
from kdbench.suite import SpecError, load_suite
from kdbench.teachers.cache import (
    CachedTeacher,
    cache_bytes,
    outputs_table,
    read_table,
    view_file,
    view_topk,
    write_meta,
    write_table,
)
from kdbench.teachers.load import load_teacher
from kdbench.zoo.datasets import DATASETS

from .conftest import write_suite
from .test_teacher_cache import ImagesParams, _run, of_kind, suite

LUMPED = "{enabled: true, topk: 3, tail: lumped}"


def _run_for(plan, store, seed):
    """The teacher and the outputs jobs of one seed (the other seed's are not needed)."""
    return {e.job_id: run_job(e.job, store) for e in plan.entries
            if e.job.kind == "teacher" or (e.job.kind == "teacher_outputs" and e.job.seed == seed)}


def test_the_plan_stores_one_cache_per_seed_and_temperature_with_t_and_k_in_the_ids(tmp_path):
    plan = suite(tmp_path, methods="[none, kd, {kd: {temperature: 2}}]", cache=LUMPED)
    outputs = of_kind(plan, "teacher_outputs")
    assert sorted((o.job.seed, o.job.method.params["temperature"]) for o in outputs) == [
        (0, 2.0), (0, 4.0), (1, 2.0), (1, 4.0)]
    for o in outputs:
        params = identity(o.job)["method"]["params"]
        assert (params["tail"], params["topk"]) == ("lumped", 3) and params["temperature"] in (2.0, 4.0)
    by_id = {o.job_id: o.job for o in outputs}
    for s in of_kind(plan, "student"):
        (out,) = s.job.outputs
        assert s.job.replay == {"views": "all", "topk": 3, "dtype": "fp32", "tail": "lumped",
                                "temperature": s.job.method.params["temperature"]}
        assert by_id[out].method.params["temperature"] == s.job.method.params["temperature"]
    # k in the id, and the uniform rule's ids are as before the option (no tail/temperature in them).
    k5 = {e.job_id for e in of_kind(suite(tmp_path, "k5", methods="[none, kd]", cache=LUMPED.replace("3", "5")),
                                    "teacher_outputs")}
    assert k5 and not k5 & set(by_id)
    uniform = of_kind(suite(tmp_path, "u", methods="[none, kd]", cache="{enabled: true, topk: 3}"), "teacher_outputs")
    assert all({"tail", "temperature"}.isdisjoint(identity(o.job)["method"]["params"]) for o in uniform)
    assert not {e.job_id for e in uniform} & set(by_id)


def test_a_teacher_with_a_student_that_cannot_read_a_lumped_cache_stays_live(tmp_path):
    # dkd reads the teacher's full distribution (its target-class split), not only a KL: no lumped cache.
    assert not of_kind(suite(tmp_path, methods="[none, kd, dkd]", cache=LUMPED), "teacher_outputs")


@pytest.mark.parametrize(("cache", "field", "fragment"), [
    ("{enabled: true, tail: lumped}", "teacher_cache.tail", "give topk"),
    ("{enabled: true, topk: 3, tail: spread}", "teacher_cache.tail", "lumped"),
    ("{enabled: true, topk: 0, tail: lumped}", "teacher_cache.topk", "must be >= 1"),
])
def test_bad_lumped_settings_are_spec_errors_naming_file_line_and_field(tmp_path, cache, field, fragment):
    from .test_teacher_cache import IMAGES, SUITE

    text = SUITE.format(name="bad", dataset=IMAGES, methods="[kd]", cache=cache, teacher="cnn", student="cnn")
    path = write_suite(tmp_path, text, "bad.yaml")
    with pytest.raises(SpecError) as info:
        load_suite(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:11: ") and f": {field}: " in message and fragment in message, message


def test_the_views_hold_the_live_teachers_top_k_at_t_and_their_size_is_the_formula(tmp_path):
    plan = suite(tmp_path, methods="[none, kd]", cache=LUMPED)
    store = Store(tmp_path / "store")
    out = of_kind(plan, "teacher_outputs")[0].job
    finals = _run_for(plan, store, out.seed)
    student = next(e.job for e in of_kind(plan, "student") if e.job.seed == out.seed)
    data = DATASETS.get("cache_test_images").load(ImagesParams())
    live = load_teacher(student, store, data.input_shape, data.num_classes, "cpu")
    payload = 0
    for epoch in range(3):
        table = read_table(store, f"artifacts/{out.job_id}/{view_file(epoch)}")
        payload += table.nbytes
        index, top = view_topk(table, (), 4.0)
        logits = torch.cat([live(data.augment(x, idx, out.seed, epoch)).member_logits[0]
                            for x, _, idx in shuffled_batches(data.train, 48, out.seed, epoch)])
        z = logits / 4.0
        expected = z.topk(3, dim=1)
        assert torch.equal(top.index, expected.indices) and torch.equal(top.logits, expected.values)
        assert torch.equal(top.lse, torch.logsumexp(z, 1)) and top.logits.shape == (192, 3)
    assert payload == cache_bytes(192, 3, 5, 3, "fp32", "lumped") == 192 * 3 * (3 * (4 + 2) + 4 + 4)
    assert finals[out.job_id]["cache_bytes"] == payload


def test_a_student_trains_from_a_lumped_cache_as_its_live_twin_when_k_is_the_class_count(tmp_path):
    plan = suite(tmp_path, methods="[none, kd]", cache=LUMPED.replace("3", "5"), student="mlp")
    cached, live = Store(tmp_path / "cached"), Store(tmp_path / "live")
    e = next(e for e in of_kind(plan, "student") if e.student == "s2")  # the one without dropout
    _run_for(plan, cached, e.job.seed)
    _run(plan, live, ("teacher",))
    assert fusable([e.job]) == "jobs reading a lumped top-k teacher cache are not fused"
    a = run_job(e.job, cached)
    b = run_job(dataclasses.replace(e.job, outputs=(), replay=None), live)
    assert a["teacher_forward_samples"] == 0 and b["teacher_forward_samples"] > 0
    # k = C: the lumped KL is the full KL up to float rounding, so training follows the live run closely.
    assert a["final_train_loss"] == pytest.approx(b["final_train_loss"], rel=1e-4)
    assert a["teacher_test_acc"] == b["teacher_test_acc"]


def test_sequence_outputs_are_cached_per_token_and_read_back_by_sample_index(tmp_path):
    """(B, L, V) teacher outputs (a masked LM's): per token k logits, k indices and an lse."""
    store, job_id, n, length, vocab, k = Store(tmp_path / "s"), "seqcache", 10, 7, 40000, 4
    logits = torch.randn(n, length, vocab, generator=torch.Generator().manual_seed(0))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(1))  # a view's rows in batch order
    top = TopK.of(logits[order], k, 2.0)
    table = outputs_table(order, top, k, "fp32", vocab)
    assert table.nbytes == cache_bytes(n, 1, vocab, k, "fp32", "lumped", length) == n * (length * (k * 8 + 4) + 4)
    write_table(store, f"artifacts/{job_id}/{view_file(0)}", table)
    write_meta(store, job_id, {"classes": vocab, "n_train": n, "views_mode": "all", "views": 1, "seed": 0,
                               "batch_size": 5, "teacher_params": 1, "tail": "lumped", "temperature": 2.0,
                               "positions": [length]})
    teacher = CachedTeacher(store, (job_id,), None, vocab, torch.device("cpu"))
    idx = torch.tensor([3, 0, 9])
    got = teacher(torch.zeros(3, length, dtype=torch.long), idx, 0).topk
    want = TopK.of(logits[idx], k, 2.0)
    assert got.logits.shape == (3, length, k)
    assert all(torch.equal(getattr(got, f), getattr(want, f)) for f in ("logits", "index", "lse"))
    s = torch.randn(3, length, vocab)
    mask = torch.rand(3, length, generator=torch.Generator().manual_seed(2)) < 0.5  # e.g. the masked tokens
    assert teacher(s, idx, 0).kl(s, 2.0).shape == (3, length)
    assert got.select(mask).logits.shape == (int(mask.sum()), k)
