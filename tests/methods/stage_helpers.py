"""Shared pieces of the AB, FT, FSP and NST tests: NumPy re-implementations of the pieces (connector,
paraphraser and translator weights read from the instances), fake taps, and the checks all four run through the
real engine (each test_<method>.py runs them for its own method)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import kdbench.engine.run as engine_run
from kdbench import checkpoint
from kdbench.engine import run_job
from kdbench.jobs import Component, Job, Upstream
from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.store import Store
from kdbench.suite.schema import Recipe
from kdbench.zoo.models import ModelOutput

B, K = 3, 4  # batch, classes
INIT, MAIN = TrainState(0, 1, "init"), TrainState(0, 2, "main")


def np_pool(x, size):
    """Adaptive average pooling for whole-number ratios: the mean of each block, (B, C, h, w)."""
    b, c, h, w = x.shape
    return x.reshape(b, c, size[0], h // size[0], size[1], w // size[1]).mean(axis=(3, 5))


def np_same_size(s, t):
    size = (min(s.shape[2], t.shape[2]), min(s.shape[3], t.shape[3]))
    return np_pool(s, size), np_pool(t, size)


def np_bn_train(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)  # biased var
    return (x - mean) / np.sqrt(var + eps) * gamma[None, :, None, None] + beta[None, :, None, None]


def np_ce(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def n(t):
    return t.detach().numpy()


def taps(seed, shapes, grad=False):
    """Taps by name (stem, stage{i}, preact{i}, embedding) with random float64 values, batch B."""
    g = torch.Generator().manual_seed(seed)
    out = {name: torch.randn(B, *shape, generator=g, dtype=torch.float64) for name, shape in shapes.items()}
    return {k: v.requires_grad_(grad) for k, v in out.items()}


def shapes_of(stem, stage_shapes):
    s = {"stem": stem}
    s |= {f"stage{i}": sh for i, sh in enumerate(stage_shapes, 1)}
    s |= {f"preact{i}": sh for i, sh in enumerate(stage_shapes, 1)}
    return s | {"embedding": (stage_shapes[-1][0],)}


def build(name, s_shapes, t_shapes, **params):
    ctx = MethodContext(num_classes=K, num_train=10, student_features=s_shapes, teacher_features=t_shapes)
    torch.manual_seed(0)  # the modules' initial weights, whatever ran before
    method = create_method(name, params, ctx).double()
    with torch.no_grad():  # BN affine parameters away from (1, 0), so the test sees them used
        for m in method.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return method


def call(method, s_feats, t_feats, state, seed=0):
    g = torch.Generator().manual_seed(seed + 100)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1])
    teacher = TeacherOutput(torch.randn(1, B, K, generator=g, dtype=torch.float64), "arithmetic", t_feats)
    terms = method(Batch(torch.zeros(B, 1), y, torch.arange(B)), ModelOutput(logits, s_feats), teacher, state)
    return terms, n(logits), n(y)


FSP_S = shapes_of((2, 4, 4), [(2, 4, 4), (3, 2, 2)])
DS = Component("digits", {"train_fraction": 1.0})
RECIPE = Recipe(epochs=2, batch_size=64).model_dump(mode="json")
T_MODEL = Component("cnn", {"channels": [8, 16], "dropout": 0.0})
TEACHER = Job("teacher", DS, T_MODEL, RECIPE, Component("none", {}), 0)


def student_job(name, channels=(4, 8), **overrides):
    params = METHODS.get(name).Params(**overrides).model_dump(mode="json")
    model = Component("cnn", {"channels": list(channels), "dropout": 0.0})
    return Job("student", DS, model, RECIPE, Component(name, params), 0, None, (Upstream(TEACHER.job_id, T_MODEL),))


ENGINE_CASES = {"ab": ({}, 1), "ft": ({}, 1), "fsp": ({"channels": (8, 16)}, 1), "nst": ({}, 0)}


class Interrupt(Exception):
    pass


CASES_NO_TEACHER_FEATURES = ["ab", "ft", "fsp", "nst"]


def check_no_teacher_features_is_a_clear_error(name):
    with pytest.raises(ValueError, match="teacher"):
        build(name, FSP_S, {})


CASES_TRAINS_THROUGH_THE = list(ENGINE_CASES)


def check_trains_through_the_engine(name, store):
    kw, init = ENGINE_CASES[name]
    job = student_job(name, **kw, **({"init_epochs": 1} if init else {}))
    s = store()
    final = run_job(job, s)
    history = json.loads(s.read_bytes(Store.artifact(job.job_id, "history.json")))
    assert math.isfinite(final["test_acc"]) and len(history) == init + 2
    assert final["epochs_trained"] == 2


CASES_THE_INIT_STAGE = ["ab", "ft", "fsp"]


def check_the_init_stage_trains_no_classifier(name, store, monkeypatch):
    seen = {}

    def capture(fn, key):
        def wrapped(*a, **k):
            seen[key] = fn(*a, **k)
            seen[key + "0"] = {k: v.clone() for k, v in seen[key].state_dict().items()}
            return seen[key]
        return wrapped

    monkeypatch.setattr(engine_run, "create_model", capture(engine_run.create_model, "model"))
    monkeypatch.setattr(engine_run, "create_method", capture(engine_run.create_method, "method"))
    after_init = {}

    def report(metrics):
        if metrics["epoch"] == 1:  # the init stage has just ended
            after_init.update(metrics=metrics, model={k: v.clone() for k, v in seen["model"].state_dict().items()},
                              method={k: v.clone() for k, v in seen["method"].state_dict().items()})

    kw = ENGINE_CASES[name][0]
    run_job(student_job(name, **kw, init_epochs=1), store(), report=report)
    before, mid, end = seen["model0"], after_init["model"], seen["model"].state_dict()
    assert not any(k.startswith("train_ce") for k in after_init["metrics"])
    for k in ("head.weight", "head.bias"):  # no CE in the init stage: the classifier is untouched ...
        assert torch.equal(before[k], mid[k])
        assert not torch.equal(mid[k], end[k])  # ... and trained in the main stage
    convs = [k for k in before if k.endswith("0.weight") and before[k].dim() == 4]  # the student's conv kernels
    changed = any(not torch.equal(before[k], mid[k]) for k in convs)
    assert changed == (name != "ft")  # AB, FSP train the student's features; FT only its paraphraser
    if name == "ft":
        m0, m1 = seen["method0"], after_init["method"]
        assert any(not torch.equal(m0[k], m1[k]) for k in m0 if k.startswith("paraphraser"))
        assert all(torch.equal(m0[k], m1[k]) for k in m0 if k.startswith("translator"))


CASES_A_JOB_INTERRUPTED = ["ab", "ft", "fsp"]


def check_a_job_interrupted_in_the_init_stage_resumes_exactly(name, store):
    job = student_job(name, **ENGINE_CASES[name][0], init_epochs=2)
    whole, cut = store("whole"), store("cut")
    expected = run_job(job, whole)

    def die_after_first(metrics):
        if metrics["epoch"] == 1:  # one of two init epochs done
            raise Interrupt

    with pytest.raises(Interrupt):
        run_job(job, cut, report=die_after_first)
    seen = []
    resumed = run_job(job, cut, report=seen.append)
    assert [m["epoch"] for m in seen] == [2, 3, 4] and resumed["restarts"] == [1]
    a = checkpoint.load(whole, Store.artifact(job.job_id, "model.pt"))["model"]
    b = checkpoint.load(cut, Store.artifact(job.job_id, "model.pt"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_acc"] == expected["test_acc"]
