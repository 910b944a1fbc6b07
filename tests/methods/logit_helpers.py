"""Shared pieces of the DKD, DIST and CRD tests: logits, NumPy references, and the checks they share (each
test_<method>.py runs them for its own method)."""

from __future__ import annotations

import json

import numpy as np
import torch

from kdbench.engine import run_job
from kdbench.jobs import Component, Job, Upstream
from kdbench.methods import METHODS, Batch, MethodContext, TeacherOutput, TrainState, create_method
from kdbench.store import Store
from kdbench.zoo.models import ModelOutput

RNG = np.random.default_rng(0)
S = RNG.normal(size=(6, 5)) * 3  # student logits (B=6, K=5)
T1 = RNG.normal(size=(6, 5)) * 3  # teacher logits
T2 = RNG.normal(size=(6, 5)) * 3  # a second teacher
Y = np.array([0, 1, 2, 3, 4, 1])


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ce(z, y):
    return float(-np.log(softmax(z)[np.arange(len(y)), y]).mean())


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def logit_terms(name, params, s=S, teacher=None, epoch=0):
    method = create_method(name, params, MethodContext(5, 10))
    teacher = teacher if teacher is not None else TeacherOutput(t(T1)[None])
    return method(Batch(t(s), torch.tensor(Y), torch.arange(len(Y))), ModelOutput(t(s)), teacher,
                  TrainState(epoch, 100))


CASES_LOGIT_METHODS_SEND = ["dkd", "dist"]


def check_logit_methods_send_gradients_to_the_student_only(name):
    s = t(S).requires_grad_()
    teacher_logits = t(T1).requires_grad_()
    method = create_method(name, {}, MethodContext(5, 10))
    terms = method(Batch(s, torch.tensor(Y), torch.arange(6)), ModelOutput(s), TeacherOutput(teacher_logits[None]),
                   TrainState(5, 10))
    sum(terms.values()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and torch.isfinite(s.grad).all()
    assert teacher_logits.grad is None


CASES_METHOD_TRAINS_THROUGH = [("dkd", {}), ("dist", {}),
                               ("crd", {"nce_k": 256, "feat_dim": 32})]  # small K: CPU time


def check_method_trains_through_the_engine(name, overrides, trained_teacher):
    store, teacher = trained_teacher
    ds, recipe = teacher.dataset, teacher.recipe
    params = METHODS.get(name).Params(**overrides).model_dump(mode="json")
    student = Component("cnn", {"channels": [4, 8], "dropout": 0.0})
    upstream = (Upstream(teacher.job_id, teacher.model),)
    job = Job("student", ds, student, recipe, Component(name, params), 0, None, upstream)
    final = run_job(job, store)
    assert np.isfinite(final["test_acc"])
    history = json.loads(store.read_bytes(Store.artifact(job.job_id, "history.json")))
    assert len(history) == 2 and all(np.isfinite(h["train_loss"]) for h in history)
