"""The teacher-output cache for a masked LM (per-token vocabulary outputs).

What holds today: a masked-LM teacher's outputs job (the lumped top-k rule, `{topk: k, tail: lumped}`) writes its
test split's full per-token logits, and the cached teacher gives back exactly the live teacher's test
log-probabilities (bit-identical: the same batches, the same engine); without the lumped rule the plan keeps a
masked-LM teacher live (the full-logit cache holds one distribution per sample, not per token).

What cannot be tested yet: "a student from the cache equals one distilled from the live teacher" for masked LM.
No masked-LM method reads its teacher through the KL alone: `distilbert` also reads the teacher's last hidden
states (the cosine term) and copies its weights (the initialisation), and `kd` is declared for classification
tasks only, so the planner never gives a masked-LM student a cache (suite/outputs.py `_logit_only`). With a
logit-only method the k = V lumped cache equals the full KL up to float rounding (tests/test_lumped_cache.py shows
a classification student from it following the live one within rel 1e-4 of its final loss)."""

from __future__ import annotations

import torch

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
  - {{name: s, arch: hf/masked_lm, hidden_size: 16, num_layers: 1, heads: 2, intermediate_size: 32, max_positions: 16}}
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
