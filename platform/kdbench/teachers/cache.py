"""The teacher-output cache: a teacher's outputs over the views its students see, computed once.

A `teacher_outputs` job (kdbench/engine/teacher_outputs.py) writes, under `<store>/artifacts/<its id>/`,
one Arrow IPC file per view, `view_<v>.arrow` (columns `index` int32 and `logits`, or `topk_index` and
`topk_prob`), the test split's logits `test.arrow` (fp32, for the teacher's accuracy and agreement),
and `meta.json`. Student jobs read them through `CachedTeacher`, memory-mapped when the store is local.

Views (the suite's `teacher_cache.views`):

- `all` (exact): view v is epoch v of one student seed, batch by batch in the order and batch size the
  student trains with, through the same engine — so the cached logits are bit-identical to the ones a live
  teacher gives that student (a teacher's outputs depend on the batch they are computed in, by float
  rounding). One job per (teacher, seed, batch size, epochs); a student from it equals a live one and
  keeps its id.
- `K` (replay, Shen & Xing 2021's FKD): K views per sample, view k = the augmentation at (seed 0, epoch k),
  in index order; student epoch e trains on view e mod K of every sample, whatever its own seed. One job
  per teacher; its students are other jobs than live ones (the `teacher_outputs` entry of their id).

`topk: k` stores the k largest probabilities (softmax at T = 1) and their classes (`tail: uniform`, the
default). A student rebuilds the distribution with the remaining mass 1 − Σ top-k spread uniformly over the
other C − k classes, and uses the log of that as the teacher's logits (so a method's temperature T softens the
rebuilt distribution). That is fine for 100 classes, not for a vocabulary: on Zipf distributions over
V = 30,522 with k = 64 and T = 2 the rebuilt teacher is KL 0.196 (exponent 1) to 0.527 (exponent 1.5) nats
from the true one (tests/test_topk_kl.py).
`tail: lumped` (vocabulary-sized outputs) stores per output position — a sample (outputs (B, V)) or each
token of a sequence ((B, L, V)) — the top-k logits at the student method's temperature T (z / T), their
indices and the log-normaliser logsumexp(z / T) (columns `topk_index`, `topk_logit`, `lse`). The student
reads them as a `TopK` (kdbench/outputs.py): KL over the k classes plus ONE tail bucket holding the rest of
the mass, exact when k ≥ V − 1 and below the full KL by P_tail · KL(tails) otherwise. T is the consumer's
(its method's `kl_temperature` field), so it enters the cache job's id with k; only methods that declare
`kl_temperature` (they read the teacher through `TeacherOutput.kl` alone) and single teachers read it.
`dtype: fp16` stores logits or probabilities in half precision. All of these change the result: part of the id.

Size of one job's training views (test logits add N_test × (4C + 4) bytes):

    full logits:    N_train × V × (C × b + 4)               b = 4 (fp32) or 2 (fp16); 4: the int32 index
    top-k uniform:  N_train × V × (k × (b + i) + 4)         i = 2 (int16 classes, C ≤ 32767) or 4
    top-k lumped:   N_train × V × (P × (k × (b + i) + 4) + 4)   P positions per sample (1, or L tokens)

Per output position the lumped rule keeps k × (b + i) + 4 bytes: k logits, k indices and the fp32 lse —
k × (4 + 4) + 4 = 516 bytes at k = 64 in fp32 with int32 indices (a 50,257-token GPT-2 vocabulary), 388 with
BERT's 30,522 (int16 indices), against V × 4 = 122,088 bytes of full BERT logits.

with V = the epochs of a seed (views: all) or K.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import torch
from torch import nn

from kdbench.errors import JobFailed, MissingUpstream
from kdbench.outputs import TeacherOutput, TopK, ensemble_log_probs
from kdbench.store import Store
from kdbench.zoo.datasets.base import Augment

FORMAT = 1
META, TEST = "meta.json", "test.arrow"
TEST_BATCH = 1024  # the engine's evaluation batch size (engine/loop.py `predict`), so test logits match


def cache_bytes(n_train: int, views: int, classes: int, topk: int | None, dtype: str, tail: str = "uniform",
                positions: int = 1) -> int:
    """Bytes of one teacher-output job's training views (the layout of this module's files):
    N × V × (C·b + 4) for full logits, N × V × (k·(b + i) + 4) for top-k, N × V × (P·(k·(b + i) + 4) + 4)
    for lumped top-k over P positions per sample; b = 4 (fp32) or 2 (fp16), i = 2 (int16 class indices) or 4,
    4 bytes of sample index per row and 4 of fp32 log-normaliser per position."""
    b = 2 if dtype == "fp16" else 4
    if topk is None:
        return n_train * views * (classes * b + 4)
    i = _index_dtype(classes)().itemsize
    if tail == "lumped":
        return n_train * views * (positions * (min(topk, classes) * (b + i) + 4) + 4)
    return n_train * views * (min(topk, classes) * (b + i) + 4)


def _index_dtype(classes: int) -> type[np.integer]:
    return np.int16 if classes <= 32767 else np.int32


def view_file(view: int) -> str:
    return f"view_{view:05d}.arrow"


# --- writing ---------------------------------------------------------------------------------------------------

def _fixed(values: np.ndarray, width: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), width)


def outputs_table(index: torch.Tensor, logits: torch.Tensor | TopK, topk: int | None, dtype: str,
                  classes: int | None = None) -> pa.Table:
    """(R,) sample indices and (R, C) fp32 logits -> the Arrow table of one view; a `TopK` (R, *P, k) (the
    lumped rule, reduced batch by batch) -> its columns, flattened per row (`classes` sizes the indices)."""
    np_dtype = np.float16 if dtype == "fp16" else np.float32
    cols: dict[str, pa.Array] = {"index": pa.array(index.cpu().numpy().astype(np.int32))}
    if isinstance(logits, TopK):
        rows = len(index)
        cols["topk_index"] = _fixed(logits.index.cpu().numpy().astype(_index_dtype(classes)), logits.index[0].numel())
        cols["topk_logit"] = _fixed(logits.logits.float().cpu().numpy().astype(np_dtype), logits.logits[0].numel())
        cols["lse"] = _fixed(logits.lse.float().cpu().numpy().reshape(rows, -1), logits.lse[0].numel())
        return pa.table(cols)
    logits = logits.float().cpu()
    if topk is None:  # (R, C), or (R, *P, C) per output position (a masked LM's test split): flattened per row
        cols["logits"] = _fixed(logits.reshape(len(logits), -1).numpy().astype(np_dtype), logits[0].numel())
    else:
        k = min(topk, logits.shape[1])
        prob, cls = torch.softmax(logits, dim=1).topk(k, dim=1)  # (R, k) each, largest first
        cls_dtype = np.int16 if logits.shape[1] <= 32767 else np.int32
        cols["topk_index"] = _fixed(cls.numpy().astype(cls_dtype), k)
        cols["topk_prob"] = _fixed(prob.numpy().astype(np_dtype), k)
    return pa.table(cols)


def write_table(store: Store, rel: str, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    store.write_bytes(rel, sink.getvalue().to_pybytes())  # whole or absent, on any filesystem


def write_meta(store: Store, job_id: str, meta: dict[str, Any]) -> None:
    store.write_bytes(Store.artifact(job_id, META), json.dumps({"format": FORMAT, **meta}).encode())


# --- reading ---------------------------------------------------------------------------------------------------

def read_table(store: Store, rel: str) -> pa.Table:
    """An Arrow IPC file of the store: memory-mapped when local (no copy), else read through pyarrow.fs."""
    try:
        if store.local:
            return ipc.open_file(pa.memory_map(store.path(rel))).read_all()
        with store.fs.open_input_file(store.path(rel)) as f:
            return ipc.open_file(f).read_all()
    except FileNotFoundError:
        raise MissingUpstream(f"teacher outputs {store.path(rel)} not found; run the suite again: it "
                              "recomputes them first") from None


def read_meta(store: Store, job_id: str) -> dict[str, Any]:
    data = store.read_bytes(Store.artifact(job_id, META))
    if data is None:
        raise MissingUpstream(f"teacher outputs of job {job_id} not found in {store.uri}")
    return json.loads(data)


def _values(column: pa.ChunkedArray, dtype: torch.dtype) -> torch.Tensor:
    """A fixed-size-list column as an (R, width) tensor: a view of the (mapped) file where the type allows."""
    arr = column.combine_chunks()
    flat = arr.values.to_numpy(zero_copy_only=False)
    with warnings.catch_warnings():  # a read-only mapping: the tensor is only ever read
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(flat)
    return t.view(len(arr), arr.type.list_size).to(dtype)


def view_logits(table: pa.Table, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(R,) indices and (R, C) fp32 logits of a view (rebuilt from top-k when it holds top-k)."""
    index = torch.from_numpy(table.column("index").to_numpy().astype(np.int64))
    if "logits" in table.column_names:
        return index, _values(table.column("logits"), torch.float32)
    prob = _values(table.column("topk_prob"), torch.float32)  # (R, k)
    cls = _values(table.column("topk_index"), torch.int64)  # (R, k)
    return index, topk_logits(prob, cls, classes)


def view_topk(table: pa.Table, positions: tuple[int, ...], temperature: float) -> tuple[torch.Tensor, TopK]:
    """(R,) indices and the lumped top-k of a view: (R, *positions, k) logits z/T and indices, (R, *positions) lse."""
    index = torch.from_numpy(table.column("index").to_numpy().astype(np.int64))
    logit = _values(table.column("topk_logit"), torch.float32)
    rows = len(index)
    return index, TopK(logit.view(rows, *positions, -1), _values(table.column("topk_index"), torch.int64).view(
        rows, *positions, -1), _values(table.column("lse"), torch.float32).view(rows, *positions), temperature)


def topk_logits(prob: torch.Tensor, cls: torch.Tensor, classes: int) -> torch.Tensor:
    """Log of the rebuilt distribution: top-k probabilities as stored, the rest spread uniformly."""
    k = cls.shape[1]
    rest = (1.0 - prob.sum(1, keepdim=True)).clamp_min(1e-12) / max(classes - k, 1)  # (R, 1)
    out = rest.log().expand(-1, classes).clone()  # (R, C)
    return out.scatter_(1, cls, prob.clamp_min(1e-12).log())


def outputs_intact(store: Store, job_id: str, views: int) -> bool:
    """Whether a finished teacher-output job's files are all there (one listing, not a request per file)."""
    names = {rel.rsplit("/", 1)[-1] for rel in store.list_files(f"artifacts/{job_id}")}
    return {META, TEST, *(view_file(v) for v in range(views))} <= names


# --- a student's teacher -----------------------------------------------------------------------------------------

class CachedTeacher(nn.Module):
    """A student's teacher read from teacher-output jobs (one per member): same `forward` as a live
    TeacherEngine, with the batch's sample indices and epoch selecting the rows."""

    def __init__(self, store: Store, output_ids: tuple[str, ...], combine: str | None, classes: int,
                 device: torch.device) -> None:
        super().__init__()
        self.store, self.ids, self.classes, self.device = store, output_ids, classes, device
        self.combine = combine or "arithmetic"
        self.metas = [read_meta(store, i) for i in output_ids]
        self.tap_shapes: dict[str, tuple[int, ...]] = {}  # outputs only: no features
        self._view: int | None = None
        self._rows: list[tuple[torch.Tensor, torch.Tensor | TopK]] = []  # per member: (pos by sample, outputs)
        self.lumped = self.metas[0].get("tail") == "lumped"
        if self.lumped and len(output_ids) > 1:  # the planner never plans this: members' top-k sets differ
            raise JobFailed("a lumped top-k teacher cache serves a single teacher, not an ensemble")

    def parameter_count(self) -> int:
        return sum(m["teacher_params"] for m in self.metas)

    def counts(self) -> dict[str, int]:
        return {"teacher_forward_batches": 0, "teacher_forward_samples": 0}

    def check(self, n_train: int, seed: int, batch_size: int, epochs: int) -> None:
        """Fail clearly if the cache does not hold the views this student will train on."""
        for job_id, m in zip(self.ids, self.metas, strict=True):
            where = f"teacher outputs {job_id}"
            if (m["classes"], m["n_train"]) != (self.classes, n_train):
                raise JobFailed(f"{where}: {m['n_train']} samples × {m['classes']} classes, but the dataset has "
                                f"{n_train} × {self.classes}")
            if m["views_mode"] == "all" and (m["seed"], m["batch_size"]) != (seed, batch_size):
                raise JobFailed(f"{where} holds the views of seed {m['seed']}, batch size {m['batch_size']}; "
                                f"this student has seed {seed}, batch size {batch_size}")
            if m["views_mode"] == "all" and m["views"] < epochs:
                raise JobFailed(f"{where} holds {m['views']} epochs; this student trains {epochs}")

    def view_of(self, epoch: int) -> int:
        m = self.metas[0]
        return epoch if m["views_mode"] == "all" else epoch % m["views"]

    def _load(self, view: int) -> None:
        self._rows = []
        for job_id, m in zip(self.ids, self.metas, strict=True):
            table = read_table(self.store, Store.artifact(job_id, view_file(view)))
            if self.lumped:
                index, top = view_topk(table, tuple(m["positions"]), m["temperature"])
                outputs = TopK(*(t.to(self.device) for t in (top.logits, top.index, top.lse)), top.temperature)
            else:
                index, logits = view_logits(table, self.classes)
                outputs = logits.to(self.device)
            pos = torch.empty(int(index.max()) + 1, dtype=torch.long)
            pos[index] = torch.arange(len(index))  # row of each sample index in this view
            self._rows.append((pos.to(self.device), outputs))
        self._view = view

    @torch.no_grad()
    def forward(self, x: torch.Tensor, idx: torch.Tensor, epoch: int) -> TeacherOutput:
        view = self.view_of(epoch)
        if view != self._view:
            self._load(view)
        if self.lumped:  # one teacher: its top-k, read by `TeacherOutput.kl`
            pos, top = self._rows[0]
            rows = pos[idx]
            sparse = TopK(top.logits[rows], top.index[rows], top.lse[rows], top.temperature)
            return TeacherOutput(x.new_empty((1, x.shape[0], 0), dtype=torch.float32), self.combine, {}, sparse)
        member_logits = torch.stack([logits[pos[idx]] for pos, logits in self._rows])  # (M, B, C)
        dtype = self.metas[0].get("logits_dtype", "float32")  # what the live teacher gave (mixed precision)
        member_logits = member_logits if dtype == "float32" else member_logits.to(getattr(torch, dtype))
        return TeacherOutput(member_logits, self.combine, {})

    def test_outputs(self) -> torch.Tensor:
        """(N_test, C) the (combined) teacher's log-probabilities on the test split, as the classification
        task's `predict` computes them from a live teacher (caches serve logit-only classification students)."""
        positions = tuple(self.metas[0].get("positions") or ())  # per-token outputs: (N_test, *P, C)
        logits = torch.stack([view_logits(read_table(self.store, Store.artifact(i, TEST)), self.classes)[1]
                              .reshape(-1, *positions, self.classes) for i in self.ids])  # (M, N_test, *P, C)
        return ensemble_log_probs(logits, 1.0, self.combine).to(self.device)

    def replayed(self, augment: Augment | None) -> Augment | None:
        """The student's augmentation under this cache: its own views (all), or the replayed view e mod K."""
        m = self.metas[0]
        if augment is None or m["views_mode"] == "all":
            return augment
        seed, k = m["seed"], m["views"]
        if getattr(augment, "with_targets", False):  # masked LM: the view rewrites the targets too
            def replay(x, idx, _seed, epoch, y):
                return augment(x, idx, seed, epoch % k, y)

            replay.with_targets = True
            return replay
        return lambda x, idx, _seed, epoch: augment(x, idx, seed, epoch % k)
