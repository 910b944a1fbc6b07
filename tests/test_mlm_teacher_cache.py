"""The teacher-output cache for a masked LM (per-token vocabulary outputs), and `kd` per token.

- A student from the lumped top-k cache with k ≥ the vocabulary (`teacher_cache: {topk: k, tail: lumped}`: every
  token's full distribution kept at T with its log-normaliser, the tail bucket empty) equals the student distilled
  from the live teacher within float tolerance — the KL over the top-k plus the tail is the full KL up to
  rounding: final training loss and test perplexity within rel 1e-5, test masked-token accuracy equal, every
  weight within 1e-5 (measured: loss rel 1e-7, perplexity equal, largest weight gap 2.4e-6 after 2 epochs of
  AdamW). Not bit-identical: the cached KL is computed from (z/T − lse), not log_softmax(z/T). The student has no
  dropout: a student reading a replayed/reduced cache does not build its teacher, so it does not draw the random
  numbers a live run draws there, and with dropout the two runs would draw different masks (the exact cache
  keeps them aligned; engine/run.py `_teacher`).
- The cached teacher's test outputs are the live teacher's log-probabilities per token, bit-identical.
- Without the lumped rule the plan keeps a masked-LM teacher live (the per-sample caches hold one distribution
  per sample, not per token).
With k < V the lumped cache is approximate by design (tests/test_lumped_cache.py bounds its KL)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kdbench import checkpoint
from kdbench.engine import run_job
from kdbench.engine.data import ordered_batches
from kdbench.store import Store
from kdbench.suite import expand, load_suite
from kdbench.teachers.cache import TEST_BATCH, CachedTeacher
from kdbench.teachers.load import load_teacher
from kdbench.zoo.datasets.base import load_dataset

from .conftest import write_suite

VOCAB = 60
SUITE = f"""\
name: mlmcache
dataset: {{name: text_mlm, root: package:gensim/test/test_data, file: lee_background.cor, max_documents: 24,
          max_length: 16, tokenizer: {{vocab_size: {VOCAB}}}}}
recipe: {{epochs: 2, batch_size: 16, optimizer: {{name: adamw, lr: 0.003}}}}
teachers:
  - {{name: t, arch: hf/masked_lm, hidden_size: 16, num_layers: 2, heads: 2, intermediate_size: 32, max_positions: 16,
     dropout: 0.0, attention_dropout: 0.0}}
students:
  - {{name: s, arch: hf/masked_lm, hidden_size: 16, num_layers: 1, heads: 2, intermediate_size: 32, max_positions: 16,
     dropout: 0.0, attention_dropout: 0.0}}
methods: [{{kd: {{temperature: 2.0}}}}]
seeds: [0]
teacher_cache: CACHE
"""


def _plan(tmp_path, cache: str):
    return expand(load_suite(str(write_suite(tmp_path, SUITE.replace("CACHE", cache)))))


def test_without_the_lumped_rule_a_masked_lm_teacher_stays_live(tmp_path):
    for cache in ("{enabled: true}", "{enabled: true, topk: 5}"):
        plan = _plan(tmp_path, cache)
        assert "teacher_outputs" not in plan.counts() and all(not e.job.outputs for e in plan.entries), cache


def test_a_lumped_cache_gives_back_the_live_teachers_test_outputs_per_token(tmp_path):
    torch.set_num_threads(1)
    plan = _plan(tmp_path, f"{{enabled: true, topk: {VOCAB}, tail: lumped}}")
    store = Store(tmp_path / "s")
    for e in plan.entries:
        if e.job.kind in ("teacher", "teacher_outputs"):
            run_job(e.job, store)
    out = next(e.job for e in plan.entries if e.job.kind == "teacher_outputs")
    student = next(e.job for e in plan.entries if e.job.kind == "student")
    data = load_dataset(plan.suite.dataset.name, plan.suite.dataset.params)
    cached = CachedTeacher(store, (out.job_id,), None, data.num_classes, torch.device("cpu")).test_outputs()
    live = load_teacher(student, store, data.input_shape, data.num_classes, "cpu")
    with torch.no_grad():
        logits = torch.cat([live(x).member_logits[0] for x, _ in ordered_batches(data.test, TEST_BATCH)])
    assert cached.shape == (len(data.test), 16, data.num_classes)
    assert torch.equal(cached, torch.log_softmax(logits, dim=-1))


def test_a_student_from_a_lumped_cache_with_k_the_vocabulary_equals_the_live_one(tmp_path):
    torch.set_num_threads(1)
    plan = _plan(tmp_path, "{enabled: true, topk: 4096, tail: lumped}")  # k above V: every token's distribution
    cached, live = Store(tmp_path / "cached"), Store(tmp_path / "live")
    for e in plan.entries:
        if e.job.kind in ("teacher", "teacher_outputs"):
            run_job(e.job, cached)
        if e.job.kind == "teacher":
            run_job(e.job, live)
    e = next(e for e in plan.entries if e.job.kind == "student")
    assert e.job.outputs and e.job.replay["tail"] == "lumped"
    a = run_job(e.job, cached)
    twin = dataclasses.replace(e.job, outputs=(), replay=None)  # its teacher run live (another id: no replay)
    b = run_job(twin, live)
    assert a["teacher_forward_samples"] == 0 and b["teacher_forward_samples"] > 0
    assert a.task == "masked_lm" and a["final_train_loss"] == pytest.approx(b["final_train_loss"], rel=1e-5)
    assert a["test_mlm_acc"] == b["test_mlm_acc"] and a["test_ppl"] == pytest.approx(b["test_ppl"], rel=1e-5)
    wa, wb = (checkpoint.load(s, f"artifacts/{j.job_id}/model.pt")["model"] for s, j in ((cached, e.job), (live, twin)))
    gap = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert gap < 1e-5
    assert a["teacher_test_mlm_acc"] == b["teacher_test_mlm_acc"]  # the cached test outputs are the live ones
