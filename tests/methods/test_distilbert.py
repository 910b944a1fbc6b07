"""DistilBERT (Sanh et al. 2019): the triple loss on fixed inputs equals the formula, written out by hand; the
student is initialised from the teacher's layers as extract_distilbert.py picks them."""

from __future__ import annotations

import math

import pytest
import torch

from kdbench.methods import Batch, Incompatible, MethodContext, TrainState, create_method
from kdbench.methods.distilbert import teacher_layers
from kdbench.outputs import TeacherOutput
from kdbench.tasks import TASKS
from kdbench.zoo.models import ModelOutput, create_model

X = torch.tensor([[7, 8, 0]])  # the third position is padding
Y = torch.tensor([[-100, 1, -100]])  # position 1 is masked, its original token is 1
S_LOGITS = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])
T_LOGITS = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [5.0, -5.0]]])
S_HIDDEN = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [3.0, 3.0]]])
T_HIDDEN = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]]])


def _kl(t: list[float], s: list[float], temp: float) -> float:
    """KL(softmax(t / T) ‖ softmax(s / T)) with plain floats."""
    zt, zs = sum(math.exp(v / temp) for v in t), sum(math.exp(v / temp) for v in s)
    p = [math.exp(v / temp) / zt for v in t]
    q = [math.exp(v / temp) / zs for v in s]
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))


def _method(params: dict, teacher_layers_count: int = 2):
    taps = lambda n: {**{f"hidden{i}": (3, 2) for i in range(n + 1)}, "embedding": (3, 2)}  # noqa: E731
    ctx = MethodContext(num_classes=2, num_train=1, student_features=taps(1),
                        teacher_features=taps(teacher_layers_count), task=TASKS.get("masked_lm")())
    return create_method("distilbert", params, ctx)


def _terms(params: dict) -> dict[str, float]:
    method = _method(params)
    out = method(Batch(X, Y, torch.tensor([0])), ModelOutput(S_LOGITS, {"embedding": S_HIDDEN}),
                 TeacherOutput(T_LOGITS[None], features={"embedding": T_HIDDEN}), TrainState(0, 1))
    return {k: float(v) for k, v in out.items()}


def test_triple_loss_with_the_papers_weights_equals_the_formula():
    kd_pos0 = _kl([0.0, 1.0], [1.0, 0.0], 2.0)
    kd_pos1 = _kl([1.0, 1.0], [0.0, 2.0], 2.0)
    kd = (kd_pos0 + kd_pos1) / 2 * 2.0**2  # batchmean over the 2 non-padding tokens, × T²
    mlm = math.log(1 + math.exp(-2.0))  # -log softmax([0, 2])[1] at the one masked position
    cos = ((1 - 0.0) + (1 - 1.0)) / 2  # cos([1,0],[0,1]) = 0; cos([1,1],[1,1]) = 1; padding left out
    terms = _terms({})
    assert terms["kd"] == pytest.approx(5.0 * kd, rel=1e-5)
    assert terms["mlm"] == pytest.approx(2.0 * mlm, rel=1e-5)
    assert terms["cos"] == pytest.approx(1.0 * cos, rel=1e-5)


def test_kd_scope_masked_reads_only_the_masked_positions():
    terms = _terms({"kd_scope": "masked", "alpha_kd": 1.0, "temperature": 3.0})
    assert terms["kd"] == pytest.approx(_kl([1.0, 1.0], [0.0, 2.0], 3.0) * 9.0, rel=1e-5)


def test_spread_layers_are_extract_distilberts_for_bert_base():
    assert teacher_layers("spread", 12, 6) == [0, 2, 4, 7, 9, 11]  # scripts/extract_distilbert.py
    assert teacher_layers("spread", 4, 2) == [0, 3]
    assert teacher_layers("alternate", 4, 2) == [0, 2]
    assert teacher_layers([1, 2], 4, 2) == [1, 2]


def test_a_layer_outside_the_teacher_or_a_width_mismatch_is_incompatible():
    with pytest.raises(Incompatible, match="layers"):
        _method({"layers": [0, 5]})
    ctx = MethodContext(num_classes=2, num_train=1, student_features={"hidden0": (3, 4), "embedding": (3, 4)},
                        teacher_features={"hidden0": (3, 2), "embedding": (3, 2)})
    with pytest.raises(Incompatible, match="width"):
        create_method("distilbert", {}, ctx)


def test_the_student_starts_as_the_teachers_embeddings_head_and_chosen_layers():
    torch.manual_seed(0)
    size = {"hidden_size": 16, "heads": 2, "intermediate_size": 32, "max_positions": 8}
    teacher = create_model("hf/masked_lm", {**size, "num_layers": 4}, (8,), 50)
    student = create_model("hf/masked_lm", {**size, "num_layers": 2}, (8,), 50)
    taps = {f"hidden{i}": (8, 16) for i in range(5)} | {"embedding": (8, 16)}
    ctx = MethodContext(num_classes=50, num_train=1, student_features={k: v for k, v in taps.items()
                                                                       if k not in ("hidden3", "hidden4")},
                        teacher_features=taps, task=TASKS.get("masked_lm")())
    create_method("distilbert", {}, ctx).initialise(student, [teacher])
    t, s = teacher.state_dict(), student.state_dict()
    for j, i in enumerate([0, 3]):  # spread: the first and the last of 4 layers
        for name in ("attention.self.query.weight", "output.dense.bias", "intermediate.dense.weight"):
            assert torch.equal(s[f"hf.bert.encoder.layer.{j}.{name}"], t[f"hf.bert.encoder.layer.{i}.{name}"])
    for name in ("hf.bert.embeddings.word_embeddings.weight", "hf.bert.embeddings.position_embeddings.weight",
                 "hf.cls.predictions.transform.dense.weight", "hf.cls.predictions.bias"):
        assert torch.equal(s[name], t[name])
    x = torch.randint(5, 50, (2, 8))
    teacher.eval(), student.eval()
    with torch.no_grad():  # the same embeddings: equal first taps
        assert torch.allclose(student(x).features["hidden1"], teacher(x).features["hidden1"])
    random = create_model("hf/masked_lm", {**size, "num_layers": 2}, (8,), 50)
    before = {k: v.clone() for k, v in random.state_dict().items()}
    create_method("distilbert", {"layers": "none"}, ctx).initialise(random, [teacher])
    assert all(torch.equal(before[k], v) for k, v in random.state_dict().items())  # `none`: left as built
