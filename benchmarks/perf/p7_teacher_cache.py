"""P7 — the teacher-output cache: one teacher × S students distilled with KD, cache on vs off, in one run.

Claim: with the cache the teacher's forward passes are ≤ 1/S of those without it (one pass over the views
for all S students instead of one per student), and the grid's wall time is clearly lower.
Conditions: CPU, torch.set_num_threads(2), synthetic data (dim 256, 10 classes, N train, 1000 test), one
seed, recipe epochs E, batch 128; teacher mlp{widths:[1024,1024,1024]} (2.4M parameters), students
mlp{widths:[16..72]} (4k–19k parameters, ≥ 100× smaller), method kd. The teacher is trained once and copied
into both stores (its training is the same work either way and is not timed). Cache on: the plan's
teacher_outputs job, then the S students reading it; cache off: the S students running the teacher live.
Both grids go through kdbench.engine.run_job job by job (no Ray: the orchestration is the same for both).
Teacher forward passes are counted by the TeacherEngine (samples × members, from each job's final.json).
Scenario `images` (--scenario images): random 3×32×32 images labelled by a fixed random map, with the CIFAR
crop+flip augmentation (exact cache: the students' own augmented views), teacher cnn{channels:[64,128]}
(114k parameters), students cnn{channels:[8..15, 16..30]} (2.2k–6.9k parameters, 17–52× smaller).
Run: .venv/bin/python benchmarks/perf/p7_teacher_cache.py [--students 8] [--epochs 3] [--n 4096] [--scenario mlp|images]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from kdbench.engine import run_job
from kdbench.store import Store
from kdbench.suite import expand, load_suite
from kdbench.zoo.datasets import DATASETS
from kdbench.zoo.models import count_parameters, create_model

SUITE = """\
name: p7-{cache}
dataset: {{name: synthetic, n_train: {n}, n_val: 500, n_test: 1000, dim: 256, num_classes: 10, hidden: 64}}
recipe: {{epochs: {epochs}, batch_size: 128, optimizer: {{name: sgd, lr: 0.05}}}}
teachers:
  - {{name: big, arch: mlp, widths: [1024, 1024, 1024]}}
students:
{students}
methods: [kd]
seeds: [0]
teacher_cache: {{enabled: {enabled}}}
"""
IMAGES = {"dataset": "{{name: p7_images, n_train: {n}}}", "teacher": "cnn, channels: [64, 128]",
          "student": lambda i: f"cnn, channels: [{8 + i}, {16 + 2 * i}]"}
MLP = {"dataset": "{{name: synthetic, n_train: {n}, n_val: 500, n_test: 1000, dim: 256, num_classes: 10, hidden: 64}}",
       "teacher": "mlp, widths: [1024, 1024, 1024]", "student": lambda i: f"mlp, widths: [{16 + 8 * i}]"}


def _register_images() -> None:
    """Random images with the CIFAR augmentation: the exact cache then holds each epoch's own views."""
    from pydantic import Field

    from kdbench.zoo.datasets import DATASETS, DataSplits, Split
    from kdbench.zoo.datasets.augment import crop_flip
    from kdbench.zoo.datasets.base import DatasetParams, register_dataset

    if "p7_images" in DATASETS:
        return

    class Params(DatasetParams):
        n_train: int = Field(default=2048, gt=0)
        augment: bool = True

        def describe(self):
            return (3, 32, 32), 10, self.n_train

    @register_dataset("p7_images", Params)
    def _load(p: Params) -> DataSplits:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(p.n_train + 1500, 3, 32, 32, generator=g)
        y = (x.mean(1).flatten(1) @ torch.randn(32 * 32, 10, generator=g)).argmax(1)
        n = p.n_train
        return DataSplits(Split(x[:n], y[:n]), Split(x[n:n + 500], y[n:n + 500]), Split(x[n + 500:], y[n + 500:]),
                          10, crop_flip(4))


def _plan(tmp: Path, cache: bool, students: int, epochs: int, n: int, scenario: dict):
    lines = "\n".join(f"  - {{name: s{i}, arch: {scenario['student'](i)}}}" for i in range(students))
    text = SUITE.format(cache="on" if cache else "off", enabled=str(cache).lower(), students=lines, epochs=epochs,
                        n=n).replace("arch: mlp, widths: [1024, 1024, 1024]", f"arch: {scenario['teacher']}")
    text = "\n".join(f"dataset: {scenario['dataset'].format(n=n)}" if line.startswith("dataset:") else line
                      for line in text.splitlines())
    path = tmp / f"p7-{cache}.yaml"
    path.write_text(text + "\n")
    return expand(load_suite(str(path)))


def _shape(plan) -> tuple[tuple[int, ...], int]:
    shape, classes, _ = DATASETS.get(plan.suite.dataset.name).params(**plan.suite.dataset.params).describe()
    return shape, classes


def _grid(plan, store: Store) -> tuple[float, int, int, list[float]]:
    """Run the plan's teacher-output and student jobs; wall seconds, teacher forward samples and batches."""
    t0 = time.perf_counter()
    samples = batches = 0
    per_job = []
    for e in plan.entries:
        if e.job.kind not in ("teacher_outputs", "student"):
            continue
        t = time.perf_counter()
        final = run_job(e.job, store)
        per_job.append(time.perf_counter() - t)
        samples += final["teacher_forward_samples"]
        batches += final["teacher_forward_batches"]
    return time.perf_counter() - t0, samples, batches, per_job


def run(students: int = 8, epochs: int = 3, n: int = 4096, scenario: str = "mlp") -> list:
    from _common import Row

    torch.set_num_threads(2)
    if scenario == "images":
        _register_images()
    spec = IMAGES if scenario == "images" else MLP
    tmp = Path(tempfile.mkdtemp(prefix="p7-"))
    try:
        on, off = _plan(tmp, True, students, epochs, n, spec), _plan(tmp, False, students, epochs, n, spec)
        sizes = [count_parameters(create_model(e.job.model.name, e.job.model.params, *_shape(on))) for e in on.entries
                 if e.job.kind in ("teacher", "student")]
        print(f"p7 {scenario}: teacher {sizes[0]:,} parameters, students {min(sizes[1:]):,}–{max(sizes[1:]):,} "
              f"({sizes[0] / max(sizes[1:]):.0f}–{sizes[0] / min(sizes[1:]):.0f}× smaller)", flush=True)
        teacher = on.entries[0]
        assert teacher.job.kind == "teacher" and teacher.job_id == off.entries[0].job_id
        assert sum(e.job.kind == "teacher_outputs" for e in on.entries) == 1
        stores = {k: Store(tmp / k) for k in ("on", "off")}
        t = time.perf_counter()
        run_job(teacher.job, stores["on"])
        print(f"p7: teacher trained in {time.perf_counter() - t:.1f} s (not timed below)", flush=True)
        shutil.copytree(tmp / "on" / "artifacts" / teacher.job_id, tmp / "off" / "artifacts" / teacher.job_id)
        t_off, f_off, b_off, jobs_off = _grid(off, stores["off"])
        t_on, f_on, b_on, jobs_on = _grid(on, stores["on"])
        cache_job = jobs_on[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"p7 cache off: {students} students, {t_off:.1f} s, teacher forward samples {f_off:,} "
          f"({b_off:,} batches); per student {[round(s, 2) for s in jobs_off]} s", flush=True)
    print(f"p7 cache on: 1 teacher-output job {cache_job:.2f} s + {students} students, {t_on:.1f} s, teacher forward "
          f"samples {f_on:,} ({b_on:,} batches); per student {[round(s, 2) for s in jobs_on[1:]]} s", flush=True)
    print(f"p7 ratios (on/off): forward passes {f_on / f_off:.4f} (goal <= 1/S = {1 / students:.4f}), "
          f"wall {t_on / t_off:.3f} (speed-up {t_off / t_on:.2f}x)", flush=True)
    return [
        Row(f"P7 {scenario}: teacher forward samples, 1 teacher × {students} students", f"{f_on:,}",
            f"{f_off:,}", f_on / f_off, f"<= 1/S ({1 / students:.3f})", f_on / f_off <= 1 / students + 1e-12),
        Row(f"P7 {scenario}: grid wall time, {students} KD students (s)", f"{t_on:.1f}", f"{t_off:.1f}",
            t_on / t_off, "clearly < 1 (<= 0.7)", t_on / t_off <= 0.7),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n", type=int, default=4096, help="training samples")
    ap.add_argument("--scenario", choices=["mlp", "images"], default="mlp")
    a = ap.parse_args()
    from _common import machine, table, versions

    print(f"{machine()}; {versions()}", flush=True)
    rows = run(a.students, a.epochs, a.n, a.scenario)
    print(table([r.cells() for r in rows], ["benchmark", "cache on", "cache off", "ratio", "goal", "met?"]))


if __name__ == "__main__":
    main()
