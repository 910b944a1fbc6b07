"""P6 — the GPU data path: one KD epoch of resnet32x4 → resnet8x4 on CIFAR-100-shaped data, kdbench vs raw.

Claim (goal on a GPU): kdbench's training epoch (`engine.loop.train_epoch`: real KD method, zoo models,
the frozen teacher engine, crop+flip augmentation on the device, deterministic per (seed, epoch,
index)) runs within 1.1x of a hand-written loop doing the same work, with the data resident on the
device, augmentation on the device, bf16 autocast and channels-last on both sides.
Conditions: random (N, 3, 32, 32) images and 100 classes created on the device; batch 64 (the CIFAR
benchmark's); SGD(lr 0.05, momentum 0.9, wd 5e-4); one warm-up epoch per side, then `--epochs` timed
epochs interleaved, alternating which side goes first; median ratio of epoch times. The raw loop's
augmentation is the same pad-4 random crop + horizontal flip written with plain tensor ops
(one gather per batch), its KD loss the same formula.
Run on a GPU: python benchmarks/perf/p6_gpu_data_path.py --device cuda [--n 50000]
On CPU (a smoke run of the same code): python benchmarks/perf/p6_gpu_data_path.py --device cpu --n 512 --epochs 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kdbench.engine.loop import autocast, train_epoch  # noqa: E402
from kdbench.methods import MethodContext, TrainState, create_method  # noqa: E402
from kdbench.teachers.load import Teacher  # noqa: E402
from kdbench.zoo.datasets import Split  # noqa: E402
from kdbench.zoo.datasets.augment import crop_flip  # noqa: E402
from kdbench.zoo.models import create_model  # noqa: E402
from kdbench.zoo.models.features import feature_shapes  # noqa: E402

SHAPE, CLASSES, SEED, BATCH = (3, 32, 32), 100, 0, 64
KD = {"temperature": 4.0, "alpha": 0.9}


def raw_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Pad-4 random crop and horizontal flip of a batch on its device, plain tensor ops."""
    b, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (b,), generator=gen, device="cpu").to(x.device)
    dx = torch.randint(0, 9, (b,), generator=gen, device="cpu").to(x.device)
    flip = torch.rand(b, generator=gen, device="cpu").to(x.device) < 0.5
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = padded[torch.arange(b, device=x.device)[:, None, None, None], torch.arange(x.shape[1], device=x.device)[
        None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    return out.contiguous(memory_format=torch.channels_last)


def raw_epoch(student, teacher, x, y, opt, epoch: int, device: torch.device) -> None:
    student.train()
    gen = torch.Generator().manual_seed(SEED * 1_000_003 + epoch)
    order = torch.randperm(len(y), generator=gen).to(device)
    loss_sum = torch.zeros((), device=device)
    t = KD["temperature"]
    for start in range(0, len(y), BATCH):
        idx = order[start:start + BATCH]
        xb, yb = raw_augment(x[idx], gen), y[idx]
        with autocast(device, "bf16"):
            logits = student(xb).logits
            with torch.no_grad():
                t_logits = teacher(xb).logits
            log_p = F.log_softmax(t_logits.float() / t, 1)
            kl = (log_p.exp() * (log_p - F.log_softmax(logits.float() / t, 1))).sum(1).mean()
            loss = (1 - KD["alpha"]) * F.cross_entropy(logits.float(), yb) + KD["alpha"] * kl * t * t
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * yb.shape[0]
    float(loss_sum)  # one sync per epoch, as kdbench


def _sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


def run(n: int = 50_000, epochs: int = 3, device: str = "cuda") -> list:
    from _common import Row

    dev = torch.device(device)
    torch.manual_seed(SEED)
    split = Split(torch.randn(n, *SHAPE, device=dev), torch.randint(0, CLASSES, (n,), device=dev))
    sides = {}
    for side in ("kdbench", "raw"):
        torch.manual_seed(SEED)
        student = create_model("resnet8x4", {}, SHAPE, CLASSES).to(dev).to(memory_format=torch.channels_last)
        teacher = create_model("resnet32x4", {}, SHAPE, CLASSES).to(dev).to(memory_format=torch.channels_last)
        teacher.eval().requires_grad_(False)
        ctx = MethodContext(num_classes=CLASSES, num_train=n, student_features=feature_shapes(student, SHAPE),
                            train_labels=split.y.cpu(), epochs=240)
        method = create_method("kd", KD, ctx).to(dev)
        sides[side] = (student, teacher, method, _sgd([*student.parameters(), *method.parameters()]))
    augment = crop_flip(pad=4)
    engine = Teacher([sides["kdbench"][1]], None, device=dev)  # the engine moves its members to `device`

    def kdbench(epoch: int) -> float:
        student, _, method, opt = sides["kdbench"]
        t0 = time.perf_counter()
        train_epoch(student, method, engine, split, opt, BATCH, SEED, TrainState(epoch, 240), augment, epoch,
                    precision="bf16", channels_last=True)
        return time.perf_counter() - t0

    def raw(epoch: int) -> float:
        student, teacher, _, opt = sides["raw"]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        raw_epoch(student, teacher, split.x, split.y, opt, epoch, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    kd_s, raw_s = [], []
    for epoch in range(epochs + 1):  # epoch 0 warms up both (cudnn autotuning, allocator)
        pair = (kdbench(epoch), raw(epoch)) if epoch % 2 else tuple(reversed((raw(epoch), kdbench(epoch))))
        if epoch:
            kd_s.append(pair[0])
            raw_s.append(pair[1])
    ratio = statistics.median(k / r for k, r in zip(kd_s, raw_s, strict=True))  # time ratio: >1 = kdbench slower
    print(f"p6 on {device}: n={n}, kdbench epoch s {[round(s, 3) for s in kd_s]}, raw {[round(s, 3) for s in raw_s]}, "
          f"kdbench/raw time ratio {ratio:.3f}; {n / statistics.median(kd_s):.0f} vs "
          f"{n / statistics.median(raw_s):.0f} samples/s", flush=True)
    on_gpu = dev.type == "cuda"
    return [Row(f"P6 KD epoch resnet32x4->resnet8x4, bf16+channels-last, {device} (time ratio)",
                f"{statistics.median(kd_s):.3f} s", f"{statistics.median(raw_s):.3f} s (raw)", ratio,
                "<= 1.1 (GPU)" if on_gpu else "(CPU smoke)", ratio <= 1.1 if on_gpu else True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    from _common import table

    rows = run(a.n, a.epochs, a.device)
    print(table([r.cells() for r in rows], ["benchmark", "kdbench", "baseline", "ratio", "goal", "met?"]))


if __name__ == "__main__":
    main()
