"""P2 — kdbench's training step vs a hand-written PyTorch loop doing the same work.

Claim: kdbench.engine.loop.train_epoch (real Method objects, models from the zoo, a frozen Teacher)
trains at >= 0.97x the samples/s of a raw loop over the same models, optimizer and batch order, for
the baseline (method `none`) and for Hinton KD (method `kd`) from a frozen teacher.
Conditions: CPU, torch.set_num_threads(2), synthetic (N, 3, 32, 32) float32 tensors in memory, 10
classes, batch 128, SGD(lr 0.05, momentum 0.9); student cnn{channels:[32,64]}, teacher
cnn{channels:[64,128]}. One warm-up epoch per loop, then `--epochs` timed epochs each, the two loops
interleaved epoch by epoch, alternating which goes first (so drift from other processes hits both);
the figure is the median of the per-epoch ratios kdbench/raw.
Run: .venv/bin/python benchmarks/perf/p2_trainer_throughput.py
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from kdbench.engine.loop import train_epoch
from kdbench.methods import MethodContext, TrainState, create_method
from kdbench.teachers.load import Teacher
from kdbench.zoo.datasets import Split
from kdbench.zoo.models import create_model
from kdbench.zoo.models.features import feature_shapes

SHAPE, CLASSES, SEED = (3, 32, 32), 10, 0
STUDENT, TEACHER = {"channels": [32, 64]}, {"channels": [64, 128]}
KD = {"temperature": 4.0, "alpha": 0.9}


def _sgd(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def _order(n: int, epoch: int) -> torch.Tensor:
    """The permutation kdbench's shuffled_batches draws for (SEED, epoch): both loops see the same batches."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(SEED * 1_000_003 + epoch))


def raw_epoch(model, teacher, x, y, opt, batch: int, epoch: int) -> dict:
    """The hand-written loop: same forward/backward/step, metrics summed on the device, one sync."""
    model.train()
    order = _order(len(y), epoch)
    loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
    for start in range(0, len(y), batch):
        idx = order[start:start + batch]
        xb, yb = x[idx], y[idx]  # (B, 3, 32, 32), (B,)
        logits = model(xb).logits  # (B, K)
        loss = F.cross_entropy(logits, yb)
        if teacher is not None:
            with torch.no_grad():
                t_logits = teacher(xb).logits
            t = KD["temperature"]
            kl = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(t_logits / t, 1), reduction="batchmean",
                          log_target=True)
            loss = (1 - KD["alpha"]) * loss + KD["alpha"] * kl * t * t
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * yb.shape[0]
        correct += (logits.argmax(1) == yb).sum()
    return {"train_loss": float(loss_sum / len(y)), "train_acc": float(correct / len(y))}


def _setup(method_name: str, n: int):
    torch.manual_seed(SEED)
    split = Split(torch.randn(n, *SHAPE), torch.randint(0, CLASSES, (n,)))
    student = create_model("cnn", STUDENT, SHAPE, CLASSES)
    teacher = None
    if method_name == "kd":
        teacher = create_model("cnn", TEACHER, SHAPE, CLASSES)
        teacher.eval().requires_grad_(False)
    ctx = MethodContext(num_classes=CLASSES, num_train=n, student_features=feature_shapes(student, SHAPE),
                        train_labels=split.y, epochs=100)
    method = create_method(method_name, KD if method_name == "kd" else {}, ctx)
    return split, student, teacher, method


def compare(method_name: str, n: int, batch: int, epochs: int) -> dict:
    """Interleaved epochs of both loops; returns samples/s medians and the median per-epoch ratio."""
    split, student, teacher, method = _setup(method_name, n)
    raw_student = copy.deepcopy(student)
    raw_teacher = copy.deepcopy(teacher) if teacher is not None else None
    kd_teacher = Teacher([teacher], None) if teacher is not None else None
    kd_opt = _sgd([*student.parameters(), *method.parameters()])
    raw_opt = _sgd(raw_student.parameters())
    kd_s, raw_s = [], []
    def kdbench() -> float:
        t0 = time.perf_counter()
        train_epoch(student, method, kd_teacher, split, kd_opt, batch, SEED, TrainState(epoch, 100), None, epoch)
        return time.perf_counter() - t0

    def raw() -> float:
        t0 = time.perf_counter()
        raw_epoch(raw_student, raw_teacher, split.x, split.y, raw_opt, batch, epoch)
        return time.perf_counter() - t0

    for epoch in range(epochs + 1):  # epoch 0: warm-up, untimed; the loop that goes first alternates
        t_kd, t_raw = (kdbench(), raw()) if epoch % 2 else reversed((raw(), kdbench()))
        if epoch:
            kd_s.append(t_kd)
            raw_s.append(t_raw)
    ratios = [r / k for k, r in zip(kd_s, raw_s, strict=True)]  # throughput ratio = raw time / kdbench time
    return {"method": method_name, "kdbench_sps": n / statistics.median(kd_s),
            "raw_sps": n / statistics.median(raw_s), "ratio": statistics.median(ratios),
            "kdbench_s": kd_s, "raw_s": raw_s}


def run(n: int = 4096, batch: int = 128, epochs: int = 3) -> list:
    from _common import Row

    torch.set_num_threads(2)
    rows = []
    for name in ("none", "kd"):
        r = compare(name, n, batch, epochs)
        print(f"p2 {name}: kdbench {r['kdbench_sps']:.0f} samples/s, raw {r['raw_sps']:.0f} samples/s, "
              f"median ratio {r['ratio']:.3f}; epoch s kdbench {[round(s, 2) for s in r['kdbench_s']]} "
              f"raw {[round(s, 2) for s in r['raw_s']]}", flush=True)
        rows.append(Row(f"P2 train step, method {name} (samples/s)", f"{r['kdbench_sps']:.0f}",
                        f"{r['raw_sps']:.0f}", r["ratio"], ">= 0.97", r["ratio"] >= 0.97))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per loop (after one warm-up)")
    a = ap.parse_args()
    from _common import table

    rows = run(a.n, a.batch, a.epochs)
    print(table([r.cells() for r in rows], ["benchmark", "kdbench", "raw", "ratio", "goal", "met?"]))


if __name__ == "__main__":
    main()
