"""Hugging Face teachers through the teacher inference engine with DeepSpeed on the CPU: tiny BERT masked-LM and
sequence-classification models built from a config (no download), run by `deepspeed.init_inference`, give
exactly PyTorch's logits in fp32 and close ones in bf16 (kdbench/teachers/inference.py).

DeepSpeed 0.19.8 on this machine's CPU accelerator, transformers 5.24.0, no kernel injection (that is CUDA only;
fp16 kernel injection on a GPU was not run here)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from kdbench.teachers.inference import InferenceSpec, TeacherEngine
from kdbench.zoo.models import ModelOutput

transformers = pytest.importorskip("transformers")
pytest.importorskip("deepspeed")

VOCAB, PAD = 96, 0


class HFTeacher(nn.Module):
    """A kdbench teacher from a transformers model: token ids (B, L) in, ModelOutput(logits) out, padding
    (token PAD) masked from attention."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(self.model(input_ids=x, attention_mask=(x != PAD).long()).logits)


def _bert(kind: str) -> nn.Module:
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32, num_labels=3,
                                     pad_token_id=PAD)
    torch.manual_seed(0)
    cls = transformers.BertForMaskedLM if kind == "masked_lm" else transformers.BertForSequenceClassification
    return cls(config)


def _tokens() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, VOCAB, (4, 12), generator=g)
    x[1, 8:] = PAD  # a padded sequence
    x[3, 5:] = PAD
    return x


@pytest.mark.parametrize(("kind", "shape"), [("masked_lm", (4, 12, VOCAB)), ("sequence_classification", (4, 3))])
def test_deepspeed_runs_a_hugging_face_teacher_as_pytorch_does(kind, shape):
    torch.set_num_threads(1)
    model, x = _bert(kind), _tokens()
    plain = TeacherEngine([HFTeacher(copy.deepcopy(model))])(x).member_logits[0]
    assert plain.shape == shape
    with torch.no_grad():
        direct = model.eval()(input_ids=x, attention_mask=(x != PAD).long()).logits
    assert torch.equal(plain, direct)

    fp32 = TeacherEngine([HFTeacher(copy.deepcopy(model))], spec=InferenceSpec(engine="deepspeed"))
    assert type(fp32._runners[0]).__name__ == "InferenceEngine"  # really wrapped by deepspeed.init_inference
    got = fp32(x).member_logits[0]
    print(f"{kind}: DeepSpeed fp32 vs PyTorch max |Δ| = {(got - plain).abs().max().item():.3g}")
    assert torch.equal(got, plain)

    bf16 = TeacherEngine([HFTeacher(copy.deepcopy(model))], spec=InferenceSpec(engine="deepspeed", dtype="bf16"))
    low = bf16(x).member_logits[0]
    # PyTorch bf16 (token ids stay integers: only floating inputs take the teacher's dtype)
    torch_bf16 = TeacherEngine([HFTeacher(copy.deepcopy(model))], spec=InferenceSpec(dtype="bf16"))(x).member_logits[0]
    diff = (low - plain).abs().max().item()
    print(f"{kind}: DeepSpeed bf16 vs PyTorch fp32 max |Δ| = {diff:.3g} (logits up to {plain.abs().max():.2f})")
    assert low.dtype == torch.float32 and next(bf16._runners[0].parameters()).dtype == torch.bfloat16
    # bf16 keeps 8 significant bits (relative 2^-8 ≈ 0.4%) through two layers: within 2% of the logits' range
    # (measured 0.8% masked LM, 0.6% classification).
    assert diff <= 0.02 * plain.abs().max().item() and not torch.equal(low, plain)
    assert torch.equal(low, torch_bf16)  # without kernel injection DeepSpeed runs the bf16 module as PyTorch
