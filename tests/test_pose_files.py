"""Penn Action and Sub-JHMDB read from tiny folders written in their released formats (.mat by scipy, frames
by PIL), and their paper-scale suites validate from such folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.tasks.video_pose import unpack
from kdbench.zoo.datasets import load_dataset

SUITES = Path(__file__).resolve().parents[1] / "benchmarks" / "suites"


def _frames(folder: Path, n: int, digits: int, ext: str) -> None:
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        Image.fromarray(np.full((60, 80, 3), 20 * i, np.uint8)).save(folder / f"{i:0{digits}d}.{ext}")


def write_penn(root: Path, videos: dict[str, int]) -> None:
    """videos: name -> train flag (1 or -1); 3 frames each, joints on a line, the last joint invisible."""
    (root / "labels").mkdir(parents=True)
    for name, flag in videos.items():
        _frames(root / "frames" / name, 3, 6, "jpg")
        x = np.tile(np.linspace(20, 60, 13), (3, 1))
        y = np.tile(np.linspace(10, 50, 13), (3, 1))
        vis = np.ones((3, 13))
        vis[:, 12] = 0
        savemat(root / "labels" / f"{name}.mat", {"x": x, "y": y, "visibility": vis, "train": np.array([[flag]]),
                                                  "bbox": np.tile([15.0, 5.0, 65.0, 55.0], (3, 1)),
                                                  "nframes": np.array([[3]]), "dimensions": np.array([[60, 80, 3]])})


def write_jhmdb(root: Path, split: dict[str, int]) -> None:
    """split: 'class/video' -> 1 (train) or 2 (test); 4 frames each."""
    lines: dict[str, list[str]] = {}
    for name, flag in split.items():
        action, video = name.split("/")
        _frames(root / "Rename_Images" / action / video, 4, 5, "png")
        pos = np.stack([np.tile(np.linspace(10, 70, 15)[:, None], (1, 4)),
                        np.tile(np.linspace(5, 55, 15)[:, None], (1, 4))])  # (2, 15, 4)
        (root / "joint_positions" / action / video).mkdir(parents=True)
        savemat(root / "joint_positions" / action / video / "joint_positions.mat", {"pos_img": pos, "scale": 1.0})
        lines.setdefault(action, []).append(f"{video}.avi {flag}")
    (root / "sub_splits").mkdir()
    for action, rows in lines.items():
        for k in (1, 2, 3):
            (root / "sub_splits" / f"{action}_test_split{k}.txt").write_text("\n".join(rows) + "\n")


def test_penn_action_reads_its_official_split_and_labels(tmp_path):
    write_penn(tmp_path, {"0001": 1, "0002": 1, "0003": 1, "0004": -1})
    data = load_dataset("penn_action", {"root": str(tmp_path), "frames": 2, "size": 16, "clips_per_video": 2,
                                        "val_videos": 1})
    # 3 training videos: 1 validates (every 3rd in name order: 0001), 2 train; 1 test video; 2 clips each
    assert (len(data.train), len(data.val), len(data.test)) == (4, 2, 2)
    assert data.input_shape == (2, 3, 16, 16) and data.num_classes == 13
    joints, visible, box = unpack(data.test.y)
    assert visible[..., :12].eq(1).all() and visible[..., 12].eq(0).all()
    # the crop: the box 50 × 50 centred on (40, 30), enlarged 1.25 -> side 62.5 from (8.75, -1.25)
    torch.testing.assert_close(joints[0, 0, 0], torch.tensor([(20 - 8.75) / 62.5, (10 + 1.25) / 62.5]))
    torch.testing.assert_close(box[0, 0], torch.tensor([0.1, 0.1, 0.9, 0.9]))


def test_sub_jhmdb_reads_a_split_and_its_joint_positions(tmp_path):
    write_jhmdb(tmp_path, {"run/a": 1, "run/b": 1, "run/c": 2, "walk/d": 1, "walk/e": 2})
    data = load_dataset("sub_jhmdb", {"root": str(tmp_path), "split": 2, "frames": 3, "size": 16,
                                      "clips_per_video": 1, "val_videos": 1})
    assert (len(data.train), len(data.val), len(data.test)) == (2, 1, 2) and data.num_classes == 15
    joints, visible, box = unpack(data.train.y)
    assert visible.eq(1).all() and joints.shape == (2, 3, 15, 2)
    torch.testing.assert_close(box[..., :2], joints.amin(-2))  # the box: the joints' extent


def test_missing_or_broken_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="Penn Action needs"):
        load_dataset("penn_action", {"root": str(tmp_path)})
    write_jhmdb(tmp_path / "j", {"run/a": 1})
    (tmp_path / "j" / "sub_splits" / "run_test_split1.txt").write_text("a.avi 7\n")
    with pytest.raises(ValueError, match="expected '<video>.avi 1|2'"):
        load_dataset("sub_jhmdb", {"root": str(tmp_path / "j")})


@pytest.mark.parametrize(("suite", "write"), [("dkd_pose_penn_action.yaml", "penn"),
                                              ("dkd_pose_sub_jhmdb.yaml", "jhmdb")])
def test_the_paper_scale_suites_validate_from_folders_in_the_real_formats(tmp_path, monkeypatch, suite, write):
    monkeypatch.delenv("KDBENCH_DATA_ROOT", raising=False)
    missing = CliRunner().invoke(app, ["validate", str(SUITES / suite), "--data-root", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "dataset.root" in missing.output
    if write == "penn":
        write_penn(tmp_path / "d", {f"{i:04d}": 1 if i <= 60 else -1 for i in range(1, 63)})
    else:
        write_jhmdb(tmp_path / "d", {f"run/v{i}": 1 if i < 25 else 2 for i in range(27)})
    result = CliRunner().invoke(app, ["validate", str(SUITES / suite), "--data-root", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "left out 6 job(s)" in result.output  # dkd_pose (2 settings × 3 seeds) needs the DKD student
