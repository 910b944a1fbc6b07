"""The dkd_pose twin suite runs through Ray Tune and shows its view: PCK against FLOPs per frame with
intervals over seeds, the DKD student well above the all-zero and mean-pose predictors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.results.views import VIEWS
from kdbench.store import Store
from kdbench.suite import load_suite
from kdbench.tasks import task_of
from kdbench.tasks.video_pose import gaussian_heatmaps, unpack
from kdbench.zoo.datasets import load_dataset

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "suites" / "dkd_pose_twin.yaml"


def trivial_pcks() -> dict[str, float]:
    """Test PCK of an all-zero heatmap and of the training set's mean pose, on the twin's data."""
    data = load_dataset("stick_figures", load_suite(str(SUITE)).dataset.params)
    task = task_of("stick_figures")
    joints, visible, _ = unpack(data.train.y)
    mean = (joints * visible[..., None]).sum((0, 1)) / visible.sum((0, 1))[:, None]
    test_joints, test_visible, _ = unpack(data.test.y)
    heat = gaussian_heatmaps(mean.expand_as(test_joints), torch.ones_like(test_visible), 16, 16, 2.0)
    return {"zero": task.score(torch.zeros_like(heat), data.test.y)["pck"],
            "mean_pose": task.score(heat, data.test.y)["pck"]}


@pytest.mark.slow
def test_the_twin_runs_through_ray_tune_and_shows_pck_against_flops_per_frame(tmp_path, ray_local, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(SUITE), "--store", str(tmp_path / "s"), "--no-track"])
    assert result.exit_code == 0, result.output
    assert "jobs: 7 total, 0 cached, 7 run, 0 failed" in result.output  # 1 teacher, 2×2 alone, 2 dkd_pose
    table = VIEWS["pose"](Store(tmp_path / "s"), "dkd_pose_twin").to_pylist()
    rows = {(r["role"], r["model"], r["method"]): r for r in table}
    teacher = rows[("teacher", "teacher-pose-cnn", None)]
    alone = rows[("alone", "student-alone", None)]
    dkd = rows[("distilled", "dkd-student", "dkd_pose")]
    for r in (alone, dkd, rows[("alone", "dkd-student", None)]):
        assert r["n"] == 2 and r["ci_low"] <= r["mean"] <= r["ci_high"]  # intervals over the two seeds
    assert teacher["frames"] == 4 and teacher["mflops_per_frame"] == pytest.approx(teacher["mflops"] / 4)
    assert dkd["mflops_per_frame"] < teacher["mflops_per_frame"] and alone["mflops_per_frame"] < dkd["mflops_per_frame"]
    trivial = trivial_pcks()
    print(f"\ntest PCK: teacher {teacher['mean']:.3f}, student alone {alone['mean']:.3f}, "
          f"dkd_pose {dkd['mean']:.3f} [{dkd['ci_low']:.3f}, {dkd['ci_high']:.3f}], zero {trivial['zero']:.3f}, "
          f"mean pose {trivial['mean_pose']:.3f}; "
          f"MFLOPs/frame: teacher {teacher['mflops_per_frame']:.2f}, alone {alone['mflops_per_frame']:.2f}, "
          f"dkd {dkd['mflops_per_frame']:.2f}")
    assert trivial["zero"] < 0.01 and trivial["mean_pose"] < 0.2
    assert dkd["mean"] > 2 * trivial["mean_pose"] and teacher["mean"] > 0.8
    # measured (6 epochs, seeds 0 and 1): teacher 92%, alone 62%, dkd_pose 87%, mean pose 14%, zero 0.1%
    assert dkd["mean"] > alone["mean"]  # the previous frame's kernels beat the same light net alone
    shown = CliRunner().invoke(app, ["leaderboard", "dkd_pose_twin", "--store", str(tmp_path / "s"), "--view", "pose",
                                     "--html", str(tmp_path / "pose.html")])
    assert shown.exit_code == 0, shown.output
    assert "PCK against FLOPs per frame" in shown.output
    assert "data:image/png;base64" in (tmp_path / "pose.html").read_text()
