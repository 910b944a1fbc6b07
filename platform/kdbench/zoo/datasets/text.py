"""Text datasets from local files: `text_mlm` (the `masked_lm` task) and `text_classification`
(`sequence_classification`).

Both read records with `text_files.read_records`, tokenise them once per (corpus, tokenizer) into a shared cached
artefact (`tokenize.py`) and hold token ids as (N, max_length) int64 tensors, [PAD] = 0.

`text_mlm`: every document is cut into chunks of max_length - 2 tokens, [CLS] chunk [SEP]. Documents (not chunks)
are split into train/val/test by a permutation drawn from `split_seed`, so no document spans two splits. val and
test carry one fixed mask each; the training split stores a static mask, and with `augment` (the dataset's and the
recipe's, both true by default) every epoch re-masks it (`masking.MaskingAugment`), a pure function of (seed,
epoch, sample index). The model's output size is the vocabulary's.

`text_classification`: one record per example with `text_field` (and `text_pair_field` for sentence pairs) and
`label_field`; labels are the sorted distinct values of the label field unless `labels` lists them. Either one
`file` split by `val_fraction`/`test_fraction`, or GLUE's layout: `file` = train.tsv with `test_file` =
dev.tsv (GLUE's test.tsv has no labels), the validation split carved from the training file.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator

from .base import DatasetParams, DataSplits, Split, data_missing, register_dataset
from .masking import MaskingAugment, MaskingRule
from .text_files import Format, content_hash, read_records, resolve
from .tokenize import (
    TokenizerSpec,
    artefact_key,
    build_tokenizer,
    cached,
    chunk_documents,
    encode_pairs,
    peek,
    tokenizer_identity,
)
from .tokenize import special_ids as specials_of


class TextParams(DatasetParams):
    root: str  # a folder, or package:<name>/<sub/folder> (a location: not part of job ids)
    file: str
    format: Format = "text"
    encoding: str = "utf-8"
    text_field: str = "text"
    columns: list[str] | None = None  # tsv without a header line (GLUE's CoLA): its field names
    tokenizer: TokenizerSpec = TokenizerSpec()
    max_length: int = Field(default=128, ge=4, le=4096)
    val_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    split_seed: int = 0

    @model_validator(mode="after")
    def _fractions(self):
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must leave a training split (sum < 1)")
        # Checked when the suite loads: a missing file is a SpecError (or, where the data is checked later, a note).
        corpus = self.tokenizer.corpus
        files = [(self.root, self.file), (self.root, getattr(self, "test_file", None))]
        for root, name in files + ([(corpus.root, corpus.file)] if corpus else []):
            if name is not None:
                try:
                    resolve(root, name)
                except FileNotFoundError as e:
                    data_missing(str(e))
        return self


class TextMLMParams(TextParams):
    task: ClassVar[str] = "masked_lm"
    mlm_probability: float = Field(default=0.15, gt=0.0, le=1.0)
    mask_fraction: float = Field(default=0.8, ge=0.0, le=1.0)  # of the selected tokens: [MASK]
    random_fraction: float = Field(default=0.1, ge=0.0, le=1.0)  # a random token; the rest stay as they are
    smoothing: float = Field(default=0.0, ge=0.0)  # selection weight count^-smoothing (DistilBERT: 0.7)
    max_documents: int | None = Field(default=None, gt=0)  # the first N documents only (small twins)
    augment: bool = True  # dynamic masking: every epoch re-masks the training text; false: its static mask

    @model_validator(mode="after")
    def _actions(self):
        if self.mask_fraction + self.random_fraction > 1.0:
            raise ValueError("mask_fraction + random_fraction must be at most 1")
        return self


    def describe(self):
        """(input shape, vocabulary, training chunks) once the corpus has been tokenised (its artefact is in the
        cache); None before: describing never tokenises."""
        try:
            art = peek(mlm_key(self))
        except (OSError, ValueError):
            return None
        if art is None:
            return None
        return (self.max_length,), int(art["vocab_size"]), int((_split_documents(int(art["n_docs"]), self)
                                                                  [art["docs"]] == 0).sum())


def mlm_key(p: TextMLMParams) -> str:
    return artefact_key(kind="mlm", corpus=content_hash(resolve(p.root, p.file)), format=p.format,
                        encoding=p.encoding, field=p.text_field, tokenizer=tokenizer_identity(p.tokenizer),
                        **({"columns": p.columns} if p.columns else {}),
                        max_length=p.max_length, max_documents=p.max_documents)


def _split_documents(n_docs: int, p: TextParams) -> torch.Tensor:
    """(n_docs,) split of each document: 0 train, 1 val, 2 test."""
    order = torch.randperm(n_docs, generator=torch.Generator().manual_seed(p.split_seed))
    n_val, n_test = round(n_docs * p.val_fraction), round(n_docs * p.test_fraction)
    split = torch.zeros(n_docs, dtype=torch.int64)
    split[order[:n_val]] = 1
    split[order[n_val:n_val + n_test]] = 2
    return split


@register_dataset("text_mlm", TextMLMParams)
def text_mlm(p: TextMLMParams) -> DataSplits:
    path = resolve(p.root, p.file)
    key = mlm_key(p)

    def build():
        records = read_records(path, p.format, p.encoding, p.columns)[:p.max_documents]
        texts = [_field(r, p.text_field, path) for r in records]
        tok = build_tokenizer(p.tokenizer, texts)
        ids, docs = chunk_documents(tok, texts, p.max_length)
        return {"ids": ids, "docs": docs, "n_docs": len(texts), "tokenizer": tok.to_str(),
                "vocab_size": tok.get_vocab_size()}

    art = cached(key, build)
    which = _split_documents(int(art["n_docs"]), p)[art["docs"]]  # (N,) split of each chunk
    ids, vocab = art["ids"].long(), int(art["vocab_size"])
    from tokenizers import Tokenizer

    mask_id = Tokenizer.from_str(art["tokenizer"]).token_to_id("[MASK]")
    rule = MaskingRule.build(ids[which == 0], vocab, mask_id, specials_of(art["tokenizer"]),
                             probability=p.mlm_probability, mask_fraction=p.mask_fraction,
                             random_fraction=p.random_fraction, smoothing=p.smoothing)
    splits = []
    for s in range(3):  # one fixed mask per split: key (split_seed, -1 - s), apart from any (seed, epoch)
        chunk = ids[which == s]
        x, y = rule.apply(chunk, torch.arange(len(chunk)), _fixed_key(p.split_seed, s))
        splits.append(Split(x, y))
    if min(len(s) for s in splits) == 0:
        raise ValueError(f"{path}: a split has no chunks ({[len(s) for s in splits]}); use more documents")
    return DataSplits(*splits, num_classes=vocab, augment=MaskingAugment(rule) if p.augment else None)


def _fixed_key(split_seed: int, split: int) -> int:
    from .augment import stream_key

    return stream_key(split_seed, -1 - split)


def _field(record: dict[str, str], field: str, path) -> str:
    if field not in record:
        raise ValueError(f"{path}: records have no field {field!r} (fields: {', '.join(record)})")
    return record[field]


class TextClassificationParams(TextParams):
    task: ClassVar[str] = "sequence_classification"
    format: Format = "tsv"
    test_file: str | None = None  # GLUE: dev.tsv as the test split; then val_fraction of `file` validates
    text_pair_field: str | None = None
    label_field: str = "label"
    labels: list[str] | None = None  # the label values in class order (default: sorted distinct values)

    def describe(self):
        """(input shape, classes, training examples) once tokenised (its artefact is cached); None before."""
        try:
            art = peek(classification_key(self))
        except (OSError, ValueError):
            return None
        return None if art is None else ((self.max_length,), int(art["classes"]), len(_which(self, art)[0]))


def classification_key(p: TextClassificationParams) -> str:
    test_path = resolve(p.root, p.test_file) if p.test_file else None
    return artefact_key(kind="classification", corpus=content_hash(resolve(p.root, p.file)),
                        test=content_hash(test_path) if test_path else None, format=p.format, encoding=p.encoding,
                        fields=[p.text_field, p.text_pair_field, p.label_field], labels=p.labels,
                        **({"columns": p.columns} if p.columns else {}),
                        tokenizer=tokenizer_identity(p.tokenizer), max_length=p.max_length)


def _which(p: TextClassificationParams, art: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The training rows' positions, and every row's split (0 train, 1 val, 2 test)."""
    n, n_file = len(art["labels"]), int(art["n_train_file"])
    if p.test_file is None:
        which = _split_documents(n, p)
    else:  # the test file is the test split; validation from the training file
        q = p.model_copy(update={"test_fraction": 0.0})
        which = torch.cat([_split_documents(n_file, q), torch.full((n - n_file,), 2)])
    return torch.nonzero(which == 0).flatten(), which


@register_dataset("text_classification", TextClassificationParams)
def text_classification(p: TextClassificationParams) -> DataSplits:
    path = resolve(p.root, p.file)
    test_path = resolve(p.root, p.test_file) if p.test_file else None
    key = classification_key(p)

    def build():
        records = read_records(path, p.format, p.encoding, p.columns)
        n_train_file = len(records)
        if test_path is not None:
            records += read_records(test_path, p.format, p.encoding, p.columns)
        texts = [_field(r, p.text_field, path) for r in records]
        pairs = [_field(r, p.text_pair_field, path) for r in records] if p.text_pair_field else None
        raw = [_field(r, p.label_field, path) for r in records]
        labels = p.labels or sorted(set(raw))
        unknown = sorted(set(raw) - set(labels))
        if unknown:
            raise ValueError(f"{path}: labels {unknown[:5]} are not in `labels` {labels}")
        tok = build_tokenizer(p.tokenizer, texts + (pairs or []))
        return {"ids": encode_pairs(tok, texts, pairs, p.max_length),
                "labels": torch.tensor([labels.index(v) for v in raw]), "n_train_file": n_train_file,
                "classes": len(labels), "tokenizer": tok.to_str()}

    art = cached(key, build)
    ids, y = art["ids"].long(), art["labels"]
    which = _which(p, art)[1]
    splits = [Split(ids[which == s], y[which == s]) for s in range(3)]
    if min(len(s) for s in splits) == 0:
        raise ValueError(f"{path}: a split is empty ({[len(s) for s in splits]}); use more examples")
    return DataSplits(*splits, num_classes=int(art["classes"]))
