"""CUDA-path checks for a GPU session (see README.md beside this file); prints one line per check.

1. fp32, bf16 and fp16 (loss scaling) training with channels-last through `run_job` on the GPU;
2. the DeepSpeed teacher engine (fp16, kernel injection where supported) against plain PyTorch;
3. fused training on the GPU against separate runs of the same jobs;
4. four jobs packed on one GPU as concurrent processes (what `gpus: 0.25` trials do) vs one after another.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import textwrap
import time
import traceback

import torch

from kdbench import checkpoint
from kdbench.engine import run_job
from kdbench.engine.fused import train_fused
from kdbench.store import Store
from kdbench.suite import expand, load_suite

WORK = tempfile.mkdtemp(prefix="kdbench-gpu-")
SUITE = """\
name: gpu
dataset: {{name: digits}}
recipe: {{epochs: {epochs}, batch_size: 64, optimizer: {{name: sgd, lr: 0.05}}{extra}}}
students: [{{name: s, arch: {arch}}}]
methods: [none]
seeds: [{seeds}]
"""


def jobs(arch: str = "resnet8", epochs: int = 3, extra: str = "", seeds: int = 1, tag: str = "x"):
    path = os.path.join(WORK, f"{tag}.yaml")
    with open(path, "w") as f:
        f.write(textwrap.dedent(SUITE.format(arch=arch, epochs=epochs, extra=extra,
                                             seeds=", ".join(map(str, range(seeds))))))
    return [e.job for e in expand(load_suite(path)).entries]


def check(name: str, fn) -> None:
    t0 = time.perf_counter()
    try:
        print(f"[ok] {name}: {fn()} ({time.perf_counter() - t0:.1f} s)", flush=True)
    except Exception:
        print(f"[FAILED] {name} ({time.perf_counter() - t0:.1f} s)\n{traceback.format_exc()[-1500:]}", flush=True)


def precision() -> str:
    out = []
    for label, extra in (("fp32", ""), ("bf16+cl", ", precision: bf16, channels_last: true"),
                         ("fp16+cl", ", precision: fp16, channels_last: true")):
        [job] = jobs(extra=extra, tag=label.replace("+", "_"))
        final = run_job(job, Store(os.path.join(WORK, label)), device="cuda")
        out.append(f"{label} test_acc {final['test_acc']:.3f} train {final['train_seconds']:.1f}s")
    return "; ".join(out)


def deepspeed_teacher() -> str:
    from kdbench.teachers.inference import InferenceSpec, TeacherEngine
    from kdbench.zoo.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet32x4", {}, (3, 32, 32), 100).cuda().eval()
    x = torch.randn(256, 3, 32, 32, device="cuda")
    plain = TeacherEngine([model], None, InferenceSpec(), "cuda", (3, 32, 32))(x).member_logits
    out = []
    for dtype in ("fp16", "bf16"):
        ds = TeacherEngine([model], None, InferenceSpec(engine="deepspeed", dtype=dtype), "cuda", (3, 32, 32))
        got = ds(x).member_logits
        agree = (got.argmax(-1) == plain.argmax(-1)).float().mean().item()
        out.append(f"deepspeed {dtype}: max |diff| {(got - plain).abs().max().item():.3g}, top-1 agreement {agree:.4f}")
    return "; ".join(out)


def fused_vs_separate() -> str:
    group = jobs(epochs=1, seeds=4, tag="fused")
    fused, separate = Store(os.path.join(WORK, "f")), Store(os.path.join(WORK, "s"))
    t0 = time.perf_counter()
    finals = train_fused(group, fused, device="cuda")
    t_fused = time.perf_counter() - t0
    t0 = time.perf_counter()
    diffs = []
    for job, f in zip(group, finals, strict=True):
        s = run_job(job, separate, device="cuda")
        a = checkpoint.load(fused, f"artifacts/{job.job_id}/model.pt")["model"]
        b = checkpoint.load(separate, f"artifacts/{job.job_id}/model.pt")["model"]
        diffs.append(max((a[k].float() - b[k].float()).abs().max().item() for k in b))
        diffs.append(abs(f["test_acc"] - s["test_acc"]))
    return (f"4 resnet8 jobs fused {t_fused:.1f}s vs separate {time.perf_counter() - t0:.1f}s; "
            f"max weight/acc diff {max(diffs):.3g}")


def _one(args) -> float:
    job_dict, root = args
    from kdbench.jobs import Job

    t0 = time.perf_counter()
    run_job(Job.from_dict(job_dict), Store(root), device="cuda")
    return time.perf_counter() - t0


def packed_processes() -> str:
    group = jobs(epochs=3, seeds=4, tag="packed")
    t0 = time.perf_counter()
    for i, job in enumerate(group):
        _one((job.to_dict(), os.path.join(WORK, f"seq{i}")))
    t_seq = time.perf_counter() - t0
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(4) as pool:
        pool.map(_one, [(job.to_dict(), os.path.join(WORK, f"par{i}")) for i, job in enumerate(group)])
    t_par = time.perf_counter() - t0  # includes 4 process start-ups and CUDA contexts
    return f"4 resnet8 jobs: one after another {t_seq:.1f}s, 4 processes on one GPU {t_par:.1f}s, {t_seq / t_par:.2f}x"


if __name__ == "__main__":
    assert torch.cuda.is_available(), "no CUDA device"
    for name, fn in (("precision", precision), ("deepspeed teacher", deepspeed_teacher),
                     ("fused on GPU", fused_vs_separate), ("packed processes", packed_processes)):
        check(name, fn)
