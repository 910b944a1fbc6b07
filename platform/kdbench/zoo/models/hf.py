"""Hugging Face transformers as kdbench models: `hf/masked_lm` and `hf/sequence_classification`.

Built from a config (BERT, from scratch: `hidden_size`, `num_layers`, `heads`, `intermediate_size`, …; the
vocabulary size is the dataset's: the output size of `hf/masked_lm`, the `vocab_size` parameter of
`hf/sequence_classification`) or from a local folder `path:` (config.json and safetensors/bin weights, read with
`from_pretrained(..., local_files_only=True)`: nothing is ever downloaded; the folder's class is
AutoModelForMaskedLM / AutoModelForSequenceClassification, so any architecture transformers knows works).

Inputs are token ids (B, L), [PAD] = 0; the attention mask is `x != 0`. Outputs: `ModelOutput(logits, taps)`
with logits (B, L, V) (masked LM) or (B, K), and the taps `hidden0` (the embeddings' output) … `hidden<n>` (the
last layer's), each (B, L, D), and `embedding`: the last hidden state (B, L, D) for masked LM, the [CLS]
position's (B, D) for classification (what the classifier head reads, up to its pooler).
"""

from __future__ import annotations

import os

import torch
from pydantic import Field, model_validator
from torch import nn

from .base import ArchParams, ModelOutput, register_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # kdbench never downloads weights
PAD_ID = 0


class HFParams(ArchParams):
    path: str | None = None  # a local folder (config.json + weights); the size fields below are then ignored
    hidden_size: int = Field(default=768, gt=0)
    num_layers: int = Field(default=12, gt=0)
    heads: int = Field(default=12, gt=0)
    intermediate_size: int = Field(default=3072, gt=0)
    max_positions: int = Field(default=512, gt=0)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    attention_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _shape(self):
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of heads {self.heads}")
        if self.path is not None and not os.path.isfile(os.path.join(local(self.path), "config.json")):
            from kdbench.zoo.datasets.base import data_missing  # `kdbench validate` notes it, as missing data

            data_missing(f"model path {local(self.path)} has no config.json")
        return self


def local(path: str) -> str:
    """A user's folder: `~` and environment variables ($KDBENCH_DATA_ROOT/bert-base-uncased) expanded."""
    return os.path.expandvars(os.path.expanduser(path))


class HFClassifierParams(HFParams):
    vocab_size: int = Field(default=30522, gt=0)  # from scratch: the tokenizer's vocabulary size


def bert_config(p: HFParams, vocab_size: int, **extra):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=p.hidden_size, num_hidden_layers=p.num_layers,
                      num_attention_heads=p.heads, intermediate_size=p.intermediate_size,
                      max_position_embeddings=p.max_positions, hidden_dropout_prob=p.dropout,
                      attention_probs_dropout_prob=p.attention_dropout, pad_token_id=PAD_ID, **extra)


class HFModel(nn.Module):
    """A transformers model behind kdbench's contract: token ids in, ModelOutput with taps out."""

    def __init__(self, hf: nn.Module, pooled: bool) -> None:
        super().__init__()
        self.hf = hf
        self.pooled = pooled  # the `embedding` tap: [CLS]'s last hidden state (classification) or all positions

    def forward(self, x: torch.Tensor) -> ModelOutput:
        ids = x.long()
        out = self.hf(input_ids=ids, attention_mask=(ids != PAD_ID).long(), output_hidden_states=True)
        taps = {f"hidden{i}": h for i, h in enumerate(out.hidden_states)}
        last = out.hidden_states[-1]
        taps["embedding"] = last[:, 0] if self.pooled else last
        return ModelOutput(out.logits, taps)


def _check_input(input_shape: tuple[int, ...], arch: str) -> None:
    if len(input_shape) != 1:
        raise ValueError(f"{arch} needs token ids (L,), got input shape {tuple(input_shape)}")


@register_model("hf/masked_lm", HFParams)
def masked_lm(p: HFParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    from transformers import AutoModelForMaskedLM, BertForMaskedLM

    _check_input(input_shape, "hf/masked_lm")
    if p.path is not None:
        hf = AutoModelForMaskedLM.from_pretrained(local(p.path), local_files_only=True)
        if hf.config.vocab_size != num_classes:
            raise ValueError(f"model {p.path} has a vocabulary of {hf.config.vocab_size}; the dataset's has "
                             f"{num_classes} (tokenise it with the model's tokenizer)")
    else:
        hf = BertForMaskedLM(bert_config(p, num_classes))
    return HFModel(hf, pooled=False)


@register_model("hf/sequence_classification", HFClassifierParams)
def sequence_classification(p: HFClassifierParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

    _check_input(input_shape, "hf/sequence_classification")
    if p.path is not None:  # a pre-trained encoder; a classification head of num_classes (new if absent)
        hf = AutoModelForSequenceClassification.from_pretrained(
            local(p.path), local_files_only=True, num_labels=num_classes)
    else:
        hf = BertForSequenceClassification(bert_config(p, p.vocab_size, num_labels=num_classes))
    return HFModel(hf, pooled=True)


def vocabulary_of(state: dict[str, torch.Tensor]) -> int:
    """The vocabulary size of a transformer's weights (its word-embedding rows)."""
    key = next((k for k in state if k.endswith("word_embeddings.weight")), None)
    if key is None:
        raise ValueError("the weights hold no word embeddings (…word_embeddings.weight): not a transformer encoder")
    return int(state[key].shape[0])


def classifier_from(backbone: HFModel, num_classes: int) -> tuple[HFModel, dict[str, list[str]]]:
    """A sequence classifier of `num_classes` on `backbone`'s encoder (a masked-LM model): the same config, every
    matching weight copied; the pooler and classification head are new (freshly initialised from the current
    torch seed). Also returns what happened to each tensor: `loaded`, `new` (the head) and `dropped` (the MLM head)."""
    from transformers import AutoModelForSequenceClassification

    config = backbone.hf.config.__class__.from_dict(backbone.hf.config.to_dict())
    config.num_labels = num_classes
    config.architectures = None
    hf = AutoModelForSequenceClassification.from_config(config)
    source = backbone.hf.state_dict()
    target = hf.state_dict()
    loaded = sorted(k for k in target if k in source and source[k].shape == target[k].shape)
    hf.load_state_dict({**target, **{k: source[k] for k in loaded}})
    report = {"loaded": loaded, "new": sorted(set(target) - set(loaded)), "dropped": sorted(set(source) - set(target))}
    return HFModel(hf, pooled=True), report


def masked_lm_classifier(p: HFParams, state: dict[str, torch.Tensor], input_shape: tuple[int, ...],
                         num_classes: int) -> tuple[HFModel, dict[str, list[str]]]:
    """A trained `hf/masked_lm` (its kdbench state dict) as a classifier of `num_classes` (`classifier_from`)."""
    backbone = masked_lm(p, input_shape, vocabulary_of(state))
    backbone.load_state_dict(state)
    return classifier_from(backbone, num_classes)


# Architectures a fine-tune job can start from: arch -> (params, trained state, input shape, classes) -> model.
FINETUNE_FROM = {"hf/masked_lm": (HFParams, masked_lm_classifier)}
