"""The CI twin of the ImageNet suite: torchvision and timm models by name, a teacher from a .safetensors file,
KD/AT/CRD/DKD, on a generated 10-class 64-pixel ImageFolder converted to shards and streamed, end to end
through Ray Tune."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from .conftest import ROOT
from .imagenet_like import write_imagenet_like

pytest.importorskip("timm")
pytest.importorskip("torchvision")

SUITES = ROOT / "benchmarks" / "suites"
TWIN = SUITES / "imagenet_kd_twin.yaml"


def test_the_imagenet_suite_validates_here_without_its_data():
    """validate plans imagenet_kd.yaml (12 jobs) and says in a note that the data is not on this machine."""
    out = subprocess.run([sys.executable, "-m", "kdbench.cli", "validate", str(SUITES / "imagenet_kd.yaml")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "imagenet_kd v1: 12 jobs (2 baseline, 8 student, 2 teacher)" in out.stdout
    assert "note: not on this machine: no /data/imagenet-shards/manifest.json" in out.stdout + out.stderr


def twin_with_data(tmp_path):
    """The twin suite, its root pointed at a generated folder, its teachers from weights files as torchvision
    names them: ResNet-34 a torchvision-style `.pth` state dict, ResNet-50 a `.safetensors` file."""
    from safetensors.torch import save_file

    from kdbench.zoo.models import create_model

    root = write_imagenet_like(tmp_path / "imagenet_twin", train=8, val=3)
    shards = tmp_path / "imagenet_twin_shards"  # converted once by the real command, as users do
    done = subprocess.run([sys.executable, "-m", "kdbench.cli", "shards", "imagefolder", str(root), str(shards),
                           "--shard-mb", "0.05"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(list(shards.rglob("*.parquet"))) > 2  # several shards: the stream crosses shard boundaries
    text = TWIN.read_text().replace("root: data/imagenet_twin_shards", f"root: {shards}")
    for seed, (arch, file) in enumerate((("resnet34", "resnet34.pth"), ("resnet50", "resnet50.safetensors"))):
        torch.manual_seed(seed)
        state = {k.removeprefix("net."): v.contiguous()  # torchvision's own key names: no `net.` prefix
                 for k, v in create_model(f"torchvision/{arch}", {}, (3, 64, 64), 10).state_dict().items()}
        torch.save(state, tmp_path / file) if file.endswith(".pth") else save_file(state, str(tmp_path / file))
        entry = f"{{name: {arch}, arch: torchvision/{arch}}}"
        assert entry in text
        text = text.replace(entry, f"{{name: {arch}, arch: torchvision/{arch}, weights: {file}}}")
    path = tmp_path / "imagenet_kd_twin.yaml"
    path.write_text(text)
    return path


@pytest.mark.ray
@pytest.mark.slow
def test_the_twin_runs_through_ray_with_every_method_on_both_pairs(tmp_path, ray_local):
    from kdbench.orchestrate import RunOptions, run_suite
    from kdbench.results import open_results

    torch.set_num_threads(1)
    path = twin_with_data(tmp_path)
    counts = run_suite(str(path), RunOptions(store=str(tmp_path / "s"), track=False))
    # 2 teachers from their files; 2 baselines; 2 pairs × kd, at, crd, dkd
    assert counts.failed == 0 and counts.run == counts.total == 12
    rows = open_results(tmp_path / "s").to_arrow().to_pylist()
    got = {(r["kind"], r["teacher"] or "", r["student"], r["method"]) for r in rows}
    for teacher, student in (("resnet34", "resnet18"), ("resnet50", "mobilenetv1")):
        assert {("student", teacher, student, m) for m in ("kd", "at", "crd", "dkd")} <= got
        assert ("baseline", "", student, "none") in got
    assert {("pretrained", "", t, "pretrained") for t in ("resnet34", "resnet50")} <= got
    for r in rows:
        acc = dict(r["metrics"])["test_acc"]
        assert math.isfinite(acc) and 0.0 <= acc <= 1.0, r
