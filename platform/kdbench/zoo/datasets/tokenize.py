"""Tokenisation, once per (corpus, tokenizer): a WordPiece vocabulary trained offline or a tokenizer folder, and
the tokenised corpus kept as a shared file keyed by a hash of everything it depends on.

The tokenised artefact is a torch file under `$KDBENCH_TEXT_CACHE` (default `~/.cache/kdbench/text`), named by
sha256 of (corpus content, record fields, tokenizer spec and files, max_length, layout, TOKENS_VERSION). The
first process that needs it builds it under a file lock (concurrent jobs on the machine wait, then load it) and
writes it atomically; every later job and worker process loads it. A trained vocabulary is part of the artefact
(its JSON). The `tokenizers` WordPiece trainer is not reproducible across processes: its token ids follow a hash
map's order (renumbered canonically here) and merges of equal count are broken arbitrarily (one token of 250
differed in 2 of 6 runs on the twin's corpus). One cache therefore serves one vocabulary to every job: on a
cluster, put `$KDBENCH_TEXT_CACHE` on shared storage, or give a saved tokenizer (`tokenizer: {path: …}`).

Token ids follow BERT's conventions, which kdbench's text models and methods rely on: [PAD] is id 0 (padding
is where `x == 0`), and [CLS], [SEP], [MASK], [UNK] exist. A trained vocabulary puts [PAD] [UNK] [CLS] [SEP]
[MASK] at ids 0-4; a tokenizer folder whose [PAD] is not 0 is refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

TOKENS_VERSION = 3  # bump when the layout of a tokenised artefact changes
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID = 0


class VocabCorpus(BaseModel):
    """The texts a vocabulary is trained on, when not the dataset's own: one vocabulary (kept as its own cached
    artefact) shared by every dataset that names the same corpus and spec, e.g. a masked-LM corpus and the
    labelled texts a model pre-trained on it is fine-tuned on (their token ids must agree)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    root: str  # as a text dataset's root (a location: not part of the vocabulary's key)
    file: str
    format: str = "text"
    encoding: str = "utf-8"
    text_field: str = "text"
    max_documents: int | None = Field(default=None, gt=0)  # the first N records only


class TokenizerSpec(BaseModel):
    """`path`: a folder with `tokenizer.json` (or a WordPiece `vocab.txt`); else a WordPiece vocabulary of
    `vocab_size` trained offline with the `tokenizers` library, on the dataset's texts or on `corpus`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str | None = None
    vocab_size: int = Field(default=1000, ge=len(SPECIALS) + 1)
    lowercase: bool = True
    corpus: VocabCorpus | None = None

    @model_validator(mode="after")
    def _folder_exists(self):
        from .base import data_missing

        if self.path is not None and not folder(self.path).is_dir():
            data_missing(f"tokenizer path {folder(self.path)} is not a folder")
        if self.path is not None and self.corpus is not None:
            raise ValueError("give a tokenizer `path` or a `corpus` to train a vocabulary on, not both")
        return self


def folder(path: str) -> Path:
    """A user's path: `~` and environment variables ($KDBENCH_DATA_ROOT/glue) expanded."""
    return Path(os.path.expandvars(os.path.expanduser(path)))


def cache_dir() -> Path:
    return Path(os.environ.get("KDBENCH_TEXT_CACHE") or Path.home() / ".cache" / "kdbench" / "text")


def artefact_key(**parts: Any) -> str:
    text = json.dumps({**parts, "version": TOKENS_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def peek(key: str) -> dict[str, Any] | None:
    """The artefact `key` if it is in the cache, else None (never builds it)."""
    path = cache_dir() / f"{key}.pt"
    return torch.load(path, weights_only=True) if path.exists() else None


def cached(key: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The artefact `key` from the cache, built (and written atomically) by the first caller."""
    path = cache_dir() / f"{key}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent jobs on this machine: one builds, the others wait and load
        if path.exists():
            return torch.load(path, weights_only=True)
        value = build()
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        torch.save(value, tmp)
        os.replace(tmp, path)  # atomic: a reader without the lock sees the whole file or none
    return torch.load(path, weights_only=True)  # what every other process reads, exactly


def tokenizer_identity(spec: TokenizerSpec) -> dict[str, Any]:
    """What the tokenizer contributes to the artefact key: the spec, and the folder's content when it has one."""
    from .text_files import content_hash

    ident = spec.model_dump()
    if spec.path is not None:
        where = folder(spec.path)
        ident["path"] = None  # where it is does not matter, what it holds does
        ident["files"] = {n: content_hash(where / n) for n in ("tokenizer.json", "vocab.txt")
                          if (where / n).exists()}
    if spec.corpus is None:
        del ident["corpus"]  # the keys of artefacts made before `corpus` existed stay as they were
    else:
        ident["corpus"] = _corpus_identity(spec.corpus)
    return ident


def _corpus_identity(corpus: VocabCorpus) -> dict[str, Any]:
    from .text_files import content_hash, resolve

    return {**corpus.model_dump(), "root": None, "content": content_hash(resolve(corpus.root, corpus.file))}


def _corpus_vocabulary(spec: TokenizerSpec) -> str:
    """The vocabulary trained on `spec.corpus`, as tokenizer JSON: built once and kept (the trainer is not
    reproducible across processes, so every dataset naming this corpus must read the same one)."""
    from .text_files import read_records, resolve

    c = spec.corpus
    key = artefact_key(kind="vocabulary", spec={k: v for k, v in spec.model_dump().items() if k != "corpus"},
                       corpus=_corpus_identity(c))

    def build():
        path = resolve(c.root, c.file)
        records = read_records(path, c.format, c.encoding)[:c.max_documents]
        missing = next((i for i, r in enumerate(records, 1) if c.text_field not in r), None)
        if missing is not None:
            raise ValueError(f"{path}: record {missing} has no field {c.text_field!r}")
        tok = build_tokenizer(spec.model_copy(update={"corpus": None}), [r[c.text_field] for r in records])
        return {"tokenizer": tok.to_str()}

    return cached(key, build)["tokenizer"]


def build_tokenizer(spec: TokenizerSpec, texts: list[str]):
    """A `tokenizers.Tokenizer` with BERT's post-processing ([CLS] a [SEP] b [SEP])."""
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer
    from tokenizers.models import WordPiece
    from tokenizers.processors import BertProcessing

    if spec.corpus is not None:
        tok = Tokenizer.from_str(_corpus_vocabulary(spec))
    elif spec.path is None:
        wp = BertWordPieceTokenizer(lowercase=spec.lowercase)
        wp.train_from_iterator(texts, vocab_size=spec.vocab_size, special_tokens=list(SPECIALS), show_progress=False)
        tok = Tokenizer.from_str(wp.to_str())
        # The trainer's vocabulary is reproducible, its ids are not (they follow a hash map's per-process order):
        # renumber it canonically, specials first then sorted, so every process and machine gets the same ids.
        ordered = list(SPECIALS) + sorted(t for t in wp.get_vocab() if t not in SPECIALS)
        tok.model = WordPiece({t: i for i, t in enumerate(ordered)}, unk_token="[UNK]", continuing_subword_prefix="##")
    else:
        where = folder(spec.path)
        if (where / "tokenizer.json").exists():
            tok = Tokenizer.from_file(str(where / "tokenizer.json"))
        elif (where / "vocab.txt").exists():
            wp = BertWordPieceTokenizer(str(where / "vocab.txt"), lowercase=spec.lowercase)
            tok = Tokenizer.from_str(wp.to_str())
        else:
            raise FileNotFoundError(f"tokenizer folder {where} has neither tokenizer.json nor vocab.txt")
    ids = check_specials(tok, spec.path or "the trained vocabulary")
    # BERT's post-processing, also for a trained vocabulary (it had no [CLS]/[SEP] when its processor was made)
    tok.post_processor = BertProcessing(("[SEP]", ids["[SEP]"]), ("[CLS]", ids["[CLS]"]))
    tok.no_truncation()
    tok.no_padding()
    return tok


def check_specials(tok, where: str) -> dict[str, int]:
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    missing = [s for s, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"tokenizer {where} lacks the special tokens {missing} (kdbench's text tasks use BERT's)")
    if ids["[PAD]"] != PAD_ID:
        raise ValueError(f"tokenizer {where}: [PAD] is id {ids['[PAD]']}; kdbench's text models need it at id 0")
    return ids


def special_ids(tokenizer_json: str) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    return sorted(check_specials(tok, "artefact").values())


def chunk_documents(tok, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each document's tokens in chunks of max_length - 2, as [CLS] chunk [SEP] padded with [PAD]:
    ids (N, max_length) int32 and the document of each chunk (N,) int64."""
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    span = max_length - 2
    rows, docs = [], []
    for d, enc in enumerate(tok.encode_batch(texts, add_special_tokens=False)):
        ids = enc.ids
        for start in range(0, len(ids), span):
            piece = [cls_id, *ids[start:start + span], sep_id]
            rows.append(piece + [PAD_ID] * (max_length - len(piece)))
            docs.append(d)
    return torch.tensor(rows, dtype=torch.int32), torch.tensor(docs, dtype=torch.int64)


def encode_pairs(tok, texts: list[str], pairs: list[str] | None, max_length: int) -> torch.Tensor:
    """[CLS] a [SEP] (b [SEP]) truncated to max_length (longest first) and padded: (N, max_length) int32."""
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=PAD_ID, pad_token="[PAD]", length=max_length)
    try:
        inputs = texts if pairs is None else list(zip(texts, pairs, strict=True))
        return torch.tensor([e.ids for e in tok.encode_batch(inputs)], dtype=torch.int32)
    finally:
        tok.no_truncation()
        tok.no_padding()
