"""`distilbert`: DistilBERT — Sanh, Debut, Chaumond & Wolf, "DistilBERT, a distilled version of BERT: smaller,
faster, cheaper and lighter", NeurIPS 2019 EMC² workshop (arXiv:1910.01108), as its training code does it
(huggingface/transformers, examples/research_projects/distillation: distiller.py, train.py,
scripts/extract_distilbert.py, read for this implementation).

Student: the teacher's architecture with fewer layers, initialised from the teacher (§3, "taking one layer out
of two"): the embeddings, the MLM head and, for student layer j, teacher layer `layers[j]`. extract_distilbert.py
takes BERT-base's layers [0, 2, 4, 7, 9, 11] for 6 student layers; `layers: spread` (the default) picks
floor(j · (n_t − 1) / (n_s − 1) + 0.5) for j = 0..n_s−1, which gives exactly that list for 12 → 6 (and the first
and last layer for any pair); `alternate` picks 0, 2, 4, … (every other layer from the first); a list names them;
`none` keeps the student's random initialisation (the paper's ablation). The copy is this method's `initialise`
step, run once before training.

Loss on masked-LM batches (distiller.py, weights and T from train.py's defaults / the paper's run):

    L = α_kd · T² · KL(p_T ‖ p_S)            (softmax at T, `batchmean` over the positions in scope)
      + α_mlm · CE(student, masked targets)  (mean over the masked positions)
      + α_cos · mean over non-padding tokens of (1 − cos(h_S, h_T))   (last hidden states; CosineEmbeddingLoss)

KL(p_T ‖ p_S) is what `KLDivLoss(log_softmax(s / T), softmax(t / T))` computes. Its positions: every non-padding
token (`kd_scope: tokens`, the code's default `restrict_ce_to_mask = False`) or the masked ones only
(`kd_scope: masked`). The masking itself (15%, 80/10/10, frequency smoothing) is the dataset's
(kdbench/zoo/datasets/masking.py), shared by teacher and students. DistilBERT also removes the token-type
embeddings and the pooler; here the student keeps BERT's architecture (the teacher's, fewer layers).

Defaults: α_kd = 5, α_mlm = 2, α_cos = 1, T = 2, kd_scope = tokens, layers = spread (the paper's run).

Params defaults: alpha_kd=5.0, alpha_mlm=2.0, alpha_cos=1.0, temperature=2.0, kd_scope='tokens', layers='spread'
"""

from __future__ import annotations

import math
import re
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from kdbench.zoo.datasets.tokenize import PAD_ID

from .base import Incompatible, Method, MethodParams, Needs, register_method

_LAYER = re.compile(r"(\.layers?\.)(\d+)(\.)")  # transformers' encoder layer lists: ...layer.<i>. / ...layers.<i>.


def distilbert_loss(s_logits: torch.Tensor, t_logits: torch.Tensor, s_hidden: torch.Tensor, t_hidden: torch.Tensor,
                    tokens: torch.Tensor, y: torch.Tensor, *, temperature: float, kd_scope: str
                    ) -> dict[str, torch.Tensor]:
    """The three unweighted terms. logits (B, L, V); hidden (B, L, D); tokens (B, L) bool: non-padding; y (B, L)
    targets, -100 where not predicted."""
    scope = tokens if kd_scope == "tokens" else y != -100
    log_q = F.log_softmax(s_logits[scope] / temperature, dim=-1)  # (P, V): the positions in scope
    log_p = F.log_softmax(t_logits[scope] / temperature, dim=-1)
    kd = (log_p.exp() * (log_p - log_q)).sum(-1).sum() / max(int(scope.sum()), 1) * temperature**2
    targets = y != -100
    mlm = F.cross_entropy(s_logits[targets], y[targets], reduction="sum") / max(int(targets.sum()), 1)
    cos = (1.0 - F.cosine_similarity(s_hidden[tokens], t_hidden[tokens], dim=-1)).mean()
    return {"kd": kd, "mlm": mlm, "cos": cos}


def teacher_layers(rule: str | list[int], n_teacher: int, n_student: int) -> list[int]:
    """The teacher layer copied into each student layer."""
    if isinstance(rule, list):
        return list(rule)
    if rule == "alternate":
        return [2 * j for j in range(n_student)]
    if n_student == 1:
        return [0]
    return [math.floor(j * (n_teacher - 1) / (n_student - 1) + 0.5) for j in range(n_student)]


def _layers(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(1 for name in shapes if re.fullmatch(r"hidden\d+", name)) - 1


class DistilBERTParams(MethodParams):
    alpha_kd: float = Field(default=5.0, ge=0.0)  # distiller.py's alpha_ce
    alpha_mlm: float = Field(default=2.0, ge=0.0)
    alpha_cos: float = Field(default=1.0, ge=0.0)
    temperature: float = Field(default=2.0, gt=0.0)
    kd_scope: Literal["tokens", "masked"] = "tokens"
    layers: Literal["spread", "alternate", "none"] | list[int] = "spread"


@register_method
class DistilBERT(Method):
    name = "distilbert"
    Params = DistilBERTParams
    needs = Needs(teacher=True, features=("embedding",))
    tasks = ("masked_lm",)
    fusable = False

    def __init__(self, params: DistilBERTParams, ctx) -> None:
        super().__init__(params, ctx)
        s, t = ctx.student_features, ctx.teacher_features
        if "hidden0" not in s or "hidden0" not in t:
            raise Incompatible("distilbert needs transformer taps hidden0..hiddenN on student and teacher")
        if s["embedding"][-1] != t["embedding"][-1]:
            raise Incompatible(f"distilbert: student width {s['embedding'][-1]} differs from the teacher's "
                               f"{t['embedding'][-1]} (the cosine loss and the layer copy need equal widths)")
        n_s, n_t = _layers(s), _layers(t)
        self.copy = None
        if params.layers != "none":
            chosen = teacher_layers(params.layers, n_t, n_s)
            if len(chosen) != n_s or not all(0 <= i < n_t for i in chosen):
                raise Incompatible(f"distilbert layers {chosen}: need {n_s} teacher layers among 0..{n_t - 1}")
            self.copy = chosen

    def initialise(self, student: nn.Module, teachers: list[nn.Module]) -> None:
        if self.copy is None:
            return
        if len(teachers) != 1:
            raise Incompatible("distilbert initialises the student from one live teacher's weights")
        source = teachers[0].state_dict()
        target = student.state_dict()
        copied = {}
        for key, value in target.items():
            match = _LAYER.search(key)
            src = key if match is None else _LAYER.sub(
                lambda m: f"{m.group(1)}{self.copy[int(m.group(2))]}{m.group(3)}", key, count=1)
            if src not in source or source[src].shape != value.shape:
                raise Incompatible(f"distilbert: the teacher has no parameter {src} shaped {tuple(value.shape)} "
                                   f"for the student's {key}: the student must be the teacher's architecture")
            copied[key] = source[src].to(value.dtype)
        student.load_state_dict(copied)

    def forward(self, batch, student, teacher, state):
        p: DistilBERTParams = self.params
        s_logits, t_logits = student.logits, teacher.member_logits[0].detach()
        terms = distilbert_loss(s_logits, t_logits, student.features["embedding"],
                                teacher.features["embedding"].detach(), batch.x != PAD_ID, batch.y,
                                temperature=p.temperature, kd_scope=p.kd_scope)
        return {"kd": p.alpha_kd * terms["kd"], "mlm": p.alpha_mlm * terms["mlm"], "cos": p.alpha_cos * terms["cos"]}
