"""P8 — a masked-LM distillation step through kdbench's KD loss path, live and from a lumped top-k cache, against
a plain PyTorch loop of the reference distiller's loss (DistilBERT's).

Claim: kdbench's loss path costs no throughput: tokens/s of a step with a live teacher through kdbench
(TeacherEngine → TeacherOutput → `kd_term`) ≥ 0.97 × the plain loop's; from a lumped top-k cache
(`teacher_cache: {topk: 64, tail: lumped}`: CachedTeacher → TopK → `topk_kl`) a step needs no teacher forward
and is faster still; the cache saves every teacher forward of the students' epochs after the one that wrote it.
Reference loss (huggingface/transformers examples/research_projects/distillation/distiller.py, MLM, no
restrict_ce_to_mask): the logits of the attended tokens, KLDivLoss(reduction="batchmean")(log_softmax(s/T),
softmax(t/T)) · T², with the teacher run under no_grad.
Conditions: CPU, torch.set_num_threads(1); tiny BERTs from configs (no download): teacher BertForMaskedLM
4 layers × 256 (1024 FFN), student 2 layers × 128 (512 FFN), vocabulary V, batch B × L tokens (no padding,
every token distilled), T = 2, Adam lr 1e-4; each step = teacher (or cache read) + student forward, loss,
backward, optimizer step. Median of `repeats` interleaved epochs of `steps` steps after one warm-up epoch.
Run: .venv/bin/python benchmarks/perf/p8_topk_distill.py [--vocab 8192] [--batch 16] [--length 64] [--steps 8]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from kdbench.methods.kd import kd_term
from kdbench.outputs import TeacherOutput, TopK
from kdbench.store import Store
from kdbench.teachers.cache import CachedTeacher, outputs_table, view_file, write_meta, write_table
from kdbench.teachers.inference import TeacherEngine
from kdbench.zoo.models import ModelOutput

T, K = 2.0, 64


class HFTeacher(nn.Module):
    """A transformers masked LM as a kdbench teacher: token ids in, ModelOutput(logits) out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(self.model(input_ids=x).logits)


def _bert(vocab: int, layers: int, hidden: int, seed: int) -> nn.Module:
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    return BertForMaskedLM(BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                      num_attention_heads=4, intermediate_size=4 * hidden,
                                      max_position_embeddings=512))


def _reference_step(student, teacher, opt, x):
    """The plain loop: DistilBERT's distiller loss (its `ce` term) on every attended token."""
    with torch.no_grad():
        t_logits = teacher(input_ids=x).logits
    s_logits = student(input_ids=x).logits
    mask = torch.ones_like(x, dtype=torch.bool).unsqueeze(-1).expand_as(s_logits)  # attention_mask: no padding
    s_sel = torch.masked_select(s_logits, mask).view(-1, s_logits.size(-1))
    t_sel = torch.masked_select(t_logits, mask).view(-1, s_logits.size(-1))
    loss = nn.KLDivLoss(reduction="batchmean")(F.log_softmax(s_sel / T, dim=-1), F.softmax(t_sel / T, dim=-1)) * T**2
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def _kdbench_step(student, teacher, opt, x, idx):
    """kdbench's path: the teacher's output (live TeacherEngine or CachedTeacher) read by KD's `kd_term`."""
    out: TeacherOutput = teacher(x, idx, 0)
    s_logits = student(input_ids=x).logits
    rows = torch.ones_like(x, dtype=torch.bool)  # the distilled positions (every token here)
    if out.topk is not None:
        target = TeacherOutput(out.member_logits, topk=out.topk.select(rows))
    else:
        target = TeacherOutput(out.member_logits[:, rows])  # (1, N, V)
    loss = kd_term(s_logits[rows], target, T)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def _cache(engine: TeacherEngine, data: torch.Tensor, batch: int, vocab: int, store: Store) -> None:
    """One view of the lumped top-k cache, as a teacher_outputs job writes it (batch by batch, reduced to top-k)."""
    tops = [TopK.of(engine(data[i:i + batch]).member_logits[0], K, T) for i in range(0, len(data), batch)]
    top = TopK(*(torch.cat([getattr(t, f) for t in tops]) for f in ("logits", "index", "lse")), T)
    write_table(store, f"artifacts/p8/{view_file(0)}", outputs_table(torch.arange(len(data)), top, K, "fp32", vocab))
    write_meta(store, "p8", {"classes": vocab, "n_train": len(data), "views_mode": "all", "views": 1, "seed": 0,
                             "batch_size": batch, "teacher_params": 0, "tail": "lumped", "temperature": T,
                             "positions": [data.shape[1]]})


def loss_only(vocab: int, rows: int, repeats: int = 5) -> dict[str, float]:
    """Median ms of each loss alone, forward + backward, on fixed (rows, V) logits: where a step's difference lies."""
    g = torch.Generator().manual_seed(3)
    s0, t = torch.randn(rows, vocab, generator=g) * 3, torch.randn(rows, vocab, generator=g) * 3
    dense, top = TeacherOutput(t[None]), TeacherOutput(t.new_empty(1, rows, 0), topk=TopK.of(t, K, T))

    def reference(s):
        return nn.KLDivLoss(reduction="batchmean")(F.log_softmax(s / T, dim=-1), F.softmax(t / T, dim=-1)) * T**2

    fns = {"reference": reference, "kd_term live": lambda s: kd_term(s, dense, T),
           "kd_term top-k": lambda s: kd_term(s, top, T)}
    times: dict[str, list[float]] = {n: [] for n in fns}
    for rep in range(repeats + 1):
        for name, fn in fns.items():
            s = s0.clone().requires_grad_()
            t0 = time.perf_counter()
            fn(s).backward()
            if rep:
                times[name].append(1e3 * (time.perf_counter() - t0))
    return {n: statistics.median(v) for n, v in times.items()}


def run(vocab: int = 8192, batch: int = 16, length: int = 64, steps: int = 8, repeats: int = 5) -> list:
    from _common import Row

    torch.set_num_threads(1)
    teacher = _bert(vocab, 4, 256, 0).eval().requires_grad_(False)
    student0 = _bert(vocab, 2, 128, 1)
    data = torch.randint(0, vocab, (steps * batch, length), generator=torch.Generator().manual_seed(2))
    engine = TeacherEngine([HFTeacher(copy.deepcopy(teacher))])
    tmp = tempfile.mkdtemp(prefix="p8-")
    store = Store(tmp)
    t0 = time.perf_counter()
    _cache(TeacherEngine([HFTeacher(copy.deepcopy(teacher))]), data, batch, vocab, store)
    cache_seconds = time.perf_counter() - t0
    cached = CachedTeacher(store, ("p8",), None, vocab, torch.device("cpu"))

    paths = {
        "reference": lambda s, o, x, i: _reference_step(s, teacher, o, x),
        "kdbench live": lambda s, o, x, i: _kdbench_step(s, engine, o, x, i),
        "kdbench top-k cache": lambda s, o, x, i: _kdbench_step(s, cached, o, x, i),
    }
    models = {name: copy.deepcopy(student0) for name in paths}
    opts = {name: torch.optim.Adam(m.parameters(), lr=1e-4) for name, m in models.items()}
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for rep in range(repeats + 1):  # interleaved, so machine noise hits every path alike; rep 0 warms up
        for name, step in paths.items():
            t0 = time.perf_counter()
            for b in range(steps):
                idx = torch.arange(b * batch, (b + 1) * batch)
                step(models[name], opts[name], data[idx], idx)
            if rep:
                seconds[name].append(time.perf_counter() - t0)
    tokens = steps * batch * length
    tps = {name: tokens / statistics.median(s) for name, s in seconds.items()}
    forwards = engine.counts()["teacher_forward_samples"]
    print(f"P8 tokens/s (V={vocab}, B={batch}, L={length}, {steps} steps × {repeats}): "
          + ", ".join(f"{n} {v:,.0f}" for n, v in tps.items())
          + f"; cache written in {cache_seconds:.2f} s; live teacher forward samples {forwards:,}, cached 0")
    ms = loss_only(vocab, batch * length)
    print("P8 loss alone, forward + backward on (B·L, V) logits (ms): "
          + ", ".join(f"{n} {v:.1f}" for n, v in ms.items()))
    live, top, ref = tps["kdbench live"], tps["kdbench top-k cache"], tps["reference"]
    return [
        Row("P8 MLM distill step, kdbench live KD vs reference loop (tokens/s)", f"{live:,.0f}", f"{ref:,.0f}",
            live / ref, "≥ 0.97", live / ref >= 0.97),
        Row(f"P8 same, kdbench from a lumped top-{K} cache (tokens/s)", f"{top:,.0f}", f"{ref:,.0f}", top / ref,
            "≥ 0.97", top / ref >= 0.97),
        Row("P8 KD loss alone, fwd + bwd, kdbench live vs reference (speed = ms ratio)", f"{ms['kd_term live']:.0f} ms",
            f"{ms['reference']:.0f} ms", ms["reference"] / ms["kd_term live"], "≥ 0.97",
            ms["reference"] / ms["kd_term live"] >= 0.97),
        Row(f"P8 same, top-{K} + tail KL vs reference", f"{ms['kd_term top-k']:.0f} ms", f"{ms['reference']:.0f} ms",
            ms["reference"] / ms["kd_term top-k"], "≥ 0.97", ms["reference"] / ms["kd_term top-k"] >= 0.97),
        Row("P8 teacher forward samples per student epoch, cache vs live", "0", f"{len(data):,}", 0.0,
            "0 (one pass writes the cache)", cached.counts()["teacher_forward_samples"] == 0),
    ]


def main() -> None:
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    rows = run(a.vocab, a.batch, a.length, a.steps, a.repeats)
    print(table([r.cells() for r in rows], ["benchmark", "kdbench", "baseline", "ratio", "goal", "met?"]))


if __name__ == "__main__":
    main()
