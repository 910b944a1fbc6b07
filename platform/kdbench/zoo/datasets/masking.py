"""The masked-LM masking rule: a pure function of (original ids, sample index, seed, epoch).

BERT (Devlin et al. 2019, §3.1): select 15% of the (non-special) tokens as prediction targets; replace a
selected token by [MASK] 80% of the time, by a random token 10%, keep it 10%. The targets `y` hold the original
id at selected positions and -100 elsewhere (padding included), the ignore index of PyTorch's cross-entropy.

DistilBERT's training code (huggingface/transformers, examples/research_projects/distillation, `mlm_mask_prop`
0.15, `word_mask/keep/rand` 0.8/0.1/0.1, `mlm_smoothing` 0.7) weights the choice of targets by token frequency,
count^-0.7 (rare tokens are masked more often), and draws exactly ceil(0.15 · tokens) targets per *batch*. A
per-batch draw depends on which samples share the batch, which a deterministic, replayable view cannot; here each
token is selected independently with probability min(1, p · w(token)), w = max(count, 1)^-smoothing over the
training split, normalised so that the expected selected fraction of the training tokens is p. `smoothing: 0`
(the default) is BERT's uniform choice; 0.7 is DistilBERT's weighting.

Randomness comes from the counter-based generator of `augment.py`, keyed by (seed, epoch) and counted by
sample index × length + position: a token's fate is the same in any batch, on any device, after a resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .augment import _shr, random_bits, stream_key

IGNORE = -100  # the target of a position that is not predicted
_UNIT = float(1 << 24)


@dataclass(frozen=True)
class MaskingRule:
    vocab_size: int
    mask_id: int
    weights: torch.Tensor  # (V,) selection weight per token id; 0 for special tokens (never selected)
    probability: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1

    @classmethod
    def build(cls, train_ids: torch.Tensor, vocab_size: int, mask_id: int, specials: list[int], *,
              probability: float = 0.15, mask_fraction: float = 0.8, random_fraction: float = 0.1,
              smoothing: float = 0.0) -> MaskingRule:
        counts = torch.bincount(train_ids.flatten().long(), minlength=vocab_size).double()
        weights = counts.clamp(min=1) ** -smoothing
        weights[specials] = 0.0
        n = counts.clone()
        n[specials] = 0.0
        weights = weights / ((weights * n).sum() / n.sum())  # mean weight over the training tokens: 1
        return cls(vocab_size, mask_id, weights.float(), probability, mask_fraction, random_fraction)

    def apply(self, ids: torch.Tensor, index: torch.Tensor, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) original ids, (B,) sample indices -> (inputs, targets), both (B, L) int64."""
        ids = ids.long()
        b, length = ids.shape
        counter = index.long().to(ids.device)[:, None] * length + torch.arange(length, device=ids.device)  # (B, L)
        bits = random_bits(key, counter)
        u_select = (bits & 0xFFFFFF).double() / _UNIT
        u_action = (_shr(bits, 24) & 0xFFFFFF).double() / _UNIT
        rand_ids = (random_bits(stream_key(key, 1), counter) & 0xFFFFFF) % self.vocab_size
        p = (self.probability * self.weights.to(ids.device)[ids].double()).clamp(max=1.0)
        selected = u_select < p
        masked = selected & (u_action < self.mask_fraction)
        randomised = selected & ~masked & (u_action < self.mask_fraction + self.random_fraction)
        x = torch.where(masked, torch.full_like(ids, self.mask_id), ids)
        x = torch.where(randomised, rand_ids, x)
        y = torch.where(selected, ids, torch.full_like(ids, IGNORE))
        return x, y


class MaskingAugment:
    """The training views of a masked-LM dataset: every epoch re-masks the original text (dynamic masking,
    RoBERTa/DistilBERT), from the stored (x, y) of the static mask. An augmentation that rewrites the targets
    (`with_targets`): called with y, returns (x, y) (zoo/datasets/base.py: `augment_batch`)."""

    with_targets: ClassVar[bool] = True

    def __init__(self, rule: MaskingRule) -> None:
        self.rule = rule

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, seed: int, epoch: int,
                 y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        original = torch.where(y >= 0, y, x.long())  # the stored view's inputs with its targets put back
        return self.rule.apply(original, idx, stream_key(seed, epoch))
