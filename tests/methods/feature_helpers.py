"""Shared pieces of the FitNet, AT, SP, CC, VID, RKD and PKT tests: fake taps, NumPy references written from
the formulas, and the checks all seven run (each test_<method>.py runs them for its own method)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdbench.engine import run_job
from kdbench.jobs import Component, Job, Upstream
from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.store import Store
from kdbench.suite.schema import Recipe
from kdbench.zoo.models import ModelOutput

B, K = 6, 5  # batch, classes


def feats(seed: int, shapes: dict[str, tuple[int, ...]], grad: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(B, *s, generator=g, dtype=torch.float64).requires_grad_(grad) for k, s in shapes.items()}


def make(name: str, s_shapes, t_shapes, **params):
    ctx = MethodContext(K, 100, s_shapes, t_shapes)
    torch.manual_seed(0)
    return create_method(name, params, ctx).double()


def call(method, s_feats, t_feats, stage="main"):
    g = torch.Generator().manual_seed(99)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64)
    y = torch.arange(B) % K
    teacher = TeacherOutput(torch.randn(1, B, K, generator=g, dtype=torch.float64), features=t_feats)
    return method(Batch(logits, y, torch.arange(B)), ModelOutput(logits, s_feats), teacher, TrainState(0, 1, stage))


def n(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def val(t: torch.Tensor) -> float:
    return float(t.detach())


def np_pool_to(x, h, w):
    b, c, hh, ww = x.shape
    return x.reshape(b, c, h, hh // h, w, ww // w).mean(axis=(3, 5))


def np_unit_rows(x):
    return x / np.maximum(np.sqrt((x**2).sum(1, keepdims=True)), 1e-12)


DEFAULTS = {  # RepDistiller's scripts/run_cifar_distill.sh (-r 1 -a 0 -b …) and its loss modules' defaults
    "fitnet": {"weight": 100.0, "hint_epochs": 0},
    "at": {"weight": 1000.0, "p": 2.0},
    "sp": {"weight": 3000.0},
    "cc": {"weight": 0.02, "variant": "benchmark", "feat_dim": 128, "gamma": 0.4, "order": 2},
    "vid": {"weight": 1.0, "init_var": 5.0, "eps": 1e-5},
    "rkd": {"weight": 1.0, "distance_weight": 25.0, "angle_weight": 50.0},
    "pkt": {"weight": 30000.0},
}


S_SHAPES = {"stem": (2, 4, 4), "stage1": (3, 4, 4), "stage2": (4, 2, 2), "embedding": (4,)}
T_SHAPES = {"stem": (2, 4, 4), "stage1": (5, 4, 4), "stage2": (6, 2, 2), "embedding": (6,)}
USED = {"fitnet": ["stage2"], "at": ["stage1", "stage2"], "sp": ["stage2"], "cc": ["embedding"],
        "vid": ["stage1", "stage2"], "rkd": ["embedding"], "pkt": ["embedding"]}


DATA = Component("digits", {"train_fraction": 1.0})
TEACHER_MODEL = Component("cnn", {"channels": [8, 16], "dropout": 0.0})
STUDENT_MODEL = Component("cnn", {"channels": [4, 8], "dropout": 0.0})
RECIPE = Recipe(epochs=2, batch_size=64).model_dump(mode="json")


def check_pairs_stages_one_to_one(name):
    with pytest.raises(ValueError, match="one to one"):
        make(name, {"stage1": (2, 4, 4)}, {"stage1": (2, 4, 4), "stage2": (2, 2, 2)})


CASES_DEFAULTS_ARE_THE = sorted(DEFAULTS)


def check_defaults_are_the_benchmark_settings(name):
    p = METHODS.get(name).Params().model_dump()
    assert p == DEFAULTS[name] | {"ce_weight": 1.0, "kd_weight": 0.0, "kd_temperature": 4.0}


CASES_GRADIENTS_REACH_THE = [(k, {}) for k in sorted(USED)] + [("cc", {"variant": "paper"})]


def check_gradients_reach_the_student_and_the_method_but_not_the_teacher(name, params):
    m = make(name, S_SHAPES, T_SHAPES, kd_weight=0.5, **params)
    s, t = feats(1, S_SHAPES, grad=True), feats(2, T_SHAPES, grad=True)
    terms = call(m, s, t)
    assert set(terms) == {"ce", "kd", "cc" if name == "cc" else "hint" if name == "fitnet" else name}
    sum(terms.values()).backward()
    for tap in USED[name]:
        assert s[tap].grad is not None and s[tap].grad.abs().sum() > 0, tap
    assert all(f.grad is None for f in t.values())
    for pname, param in m.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


CASES_AN_ENSEMBLE_WITHOUT = sorted(USED)


def check_an_ensemble_without_features_is_refused_up_front(name):
    with pytest.raises(ValueError, match="teacher's feature taps"):
        make(name, S_SHAPES, {})


CASES_TRAINS_THROUGH_THE = ([(k, {}) for k in sorted(USED)]
                            + [("cc", {"variant": "paper"}), ("fitnet", {"hint_epochs": 1})])


def check_trains_through_the_engine(trained_teacher, name, overrides):
    store, teacher = trained_teacher
    params = METHODS.get(name).Params(**overrides).model_dump(mode="json")
    job = Job("student", DATA, STUDENT_MODEL, RECIPE, Component(name, params), 0, None,
              (Upstream(teacher.job_id, TEACHER_MODEL),))
    final = run_job(job, store)
    assert np.isfinite(final["test_acc"])
    history = json.loads(store.read_bytes(Store.artifact(job.job_id, "history.json")))
    assert len(history) == overrides.get("hint_epochs", 0) + 2
    assert all(np.isfinite(h["train_loss"]) for h in history)
