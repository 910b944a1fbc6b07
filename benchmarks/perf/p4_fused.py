"""P4 — several small students at once: fused training (one vmapped model) vs N sequential runs.

Claim (goal on a GPU): N small students fused into one process train >= 4x faster than one after
another. On a GPU the gain comes from filling the device with N models' work per kernel; this script
runs on whatever device it is given (`--device cuda` on a GPU session) and reports the ratio there.
On CPU the same measurement mostly shows the cost of Python and per-op dispatch that fusion saves.
Conditions: N baselines (method none) and N KD students of one teacher: `mlp` students on synthetic
data (N_train samples) or `--arch resnet8` students of resnet32x4 on digits; batch 128, E epochs;
each side trains the same N jobs from scratch in its own fresh store; interleaved rounds, median.
Run: .venv/bin/python benchmarks/perf/p4_fused.py [--n 8] [--epochs 2] [--device cpu] [--arch mlp|resnet8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kdbench.engine import run_job  # noqa: E402
from kdbench.engine.fused import train_fused  # noqa: E402
from kdbench.store import Store  # noqa: E402
from kdbench.suite import expand, load_suite  # noqa: E402

SUITE = """\
name: p4
dataset: {dataset}
recipe: {{epochs: {epochs}, batch_size: 128, optimizer: {{name: sgd, lr: 0.05}}}}
teachers: [{teacher}]
students: [{student}]
methods: [none, kd]
seeds: [{seeds}]
"""


ARCHS = {  # students and their teacher (>= 10x the student's parameters), and the data they need
    "mlp": ("{{name: synthetic, n_train: {n_train}, n_val: 512, n_test: 512, dim: 64, num_classes: 10}}",
            "{{name: t, arch: mlp, widths: [512, 512]}}", "{{name: s, arch: mlp, widths: [{width}, {width}]}}"),
    "resnet8": ("{{name: digits}}", "{{name: t, arch: resnet32x4}}", "{{name: s, arch: resnet8}}"),
}


def jobs_of(n: int, epochs: int, n_train: int, width: int, workdir: str, arch: str = "mlp"):
    path = os.path.join(workdir, "p4.yaml")
    dataset, teacher, student = (part.format(n_train=n_train, width=width).replace("{{", "{").replace("}}", "}")
                                 for part in ARCHS[arch])
    with open(path, "w") as f:
        f.write(textwrap.dedent(SUITE.format(dataset=dataset, teacher=teacher, student=student, epochs=epochs,
                                             seeds=", ".join(map(str, range(n))))))
    plan = expand(load_suite(path))
    teacher = next(e.job for e in plan.entries if e.job.kind == "teacher")
    groups = {m: [e.job for e in plan.entries if e.job.kind != "teacher" and e.job.method.name == m]
              for m in ("none", "kd")}
    return teacher, groups


def run(n: int = 8, epochs: int = 2, n_train: int = 4096, width: int = 64, rounds: int = 3,
        device: str = "cpu", arch: str = "mlp") -> list:
    from _common import Row

    work = tempfile.mkdtemp(prefix="kdbench-p4-")
    teacher, groups = jobs_of(n, epochs, n_train, width, work, arch)
    base = Store(os.path.join(work, "teacher"))
    run_job(teacher, base, device=device)

    def fresh(name: str) -> Store:
        root = os.path.join(work, name)
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(base.root, root)
        return Store(root)

    rows = []
    for method, jobs in groups.items():
        seq, fused = [], []
        for r in range(rounds + 1):  # round 0 warms up both paths (dataset cache, kernels)
            for side in (("seq", "fused") if r % 2 else ("fused", "seq")):
                store = fresh(side)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                if side == "seq":
                    for job in jobs:
                        run_job(job, store, device=device)
                else:
                    train_fused(jobs, store, device=device)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                (seq if side == "seq" else fused).append(time.perf_counter() - t0)
        s, f = statistics.median(seq[1:]), statistics.median(fused[1:])
        print(f"p4 {arch} {method}: {n} jobs x {epochs} epochs on {device}: sequential {s:.2f} s {seq[1:]}, "
              f"fused {f:.2f} s {fused[1:]}, speed-up {s / f:.2f}x", flush=True)
        goal = device.startswith("cuda")
        rows.append(Row(f"P4 {n} {arch} students fused vs sequential, {method}, {device} (s)", f"{f:.2f}",
                        f"{s:.2f}", s / f, ">= 4x (GPU)" if goal else "(info on CPU)", (s / f >= 4) if goal else True))
    shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-train", type=int, default=4096)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", default="mlp", choices=sorted(ARCHS), help="resnet8: on digits, teacher resnet32x4")
    a = ap.parse_args()
    from _common import table

    rows = run(a.n, a.epochs, a.n_train, a.width, a.rounds, a.device, a.arch)
    print(table([r.cells() for r in rows], ["benchmark", "kdbench", "baseline", "ratio", "goal", "met?"]))


if __name__ == "__main__":
    main()
