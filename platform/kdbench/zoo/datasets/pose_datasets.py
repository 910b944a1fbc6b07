"""Penn Action and Sub-JHMDB from their released files (the `video_pose` task); nothing is downloaded.

Layouts read (under `root`):
  Penn Action  frames/<video>/NNNNNN.jpg (1-based, 6 digits) and labels/<video>.mat with fields x, y,
               visibility (frames × 13), bbox (frames × 4: x0, y0, x1, y1; frames past its last row get the
               joints' extent) and train (1: training video, -1: test video) — the official split.
  Sub-JHMDB    joint_positions/<class>/<video>/joint_positions.mat (pos_img: 2 × 15 × frames, pixels),
               Rename_Images/<class>/<video>/NNNNN.png (1-based, 5 digits) and
               sub_splits/<class>_test_split<k>.txt, lines "<video>.avi 1|2" (1: train, 2: test), k = 1..3.
               Sub-JHMDB keeps the clips whose joints are all in the frame: every joint is visible; the
               person's box is the joints' extent.
Validation: `val_videos` of the official training videos (every ⌊n / val_videos⌋-th in name order); the
rest train; the official test videos test. Clips: kdbench.zoo.datasets.pose_clips.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field, field_validator

from .base import DatasetParams, DataSplits, Split, register_dataset
from .files import DatasetCorrupt, DatasetMissing
from .pose_clips import Video, clips_of

PENN_URL = "http://dreamdragon.github.io/PennAction/"
JHMDB_URL = "http://jhmdb.is.tue.mpg.de/"


def _default_root() -> str:
    return os.environ.get("KDBENCH_DATA_ROOT", "./data")


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(str(path))
    except (ValueError, OSError, TypeError) as e:
        raise DatasetCorrupt(f"{path} is not a readable .mat file: {e}") from None


class PoseVideoParams(DatasetParams):
    task: ClassVar[str] = "video_pose"
    root: str = Field(default_factory=_default_root, validate_default=True)
    frames: int = Field(default=8, ge=2, le=64)  # frames per clip
    size: int = Field(default=128, ge=16, le=512)  # frame side after the crop
    clips_per_video: int = Field(default=2, ge=1)
    val_videos: int = Field(default=50, ge=1)
    joints: ClassVar[int]
    title: ClassVar[str]
    url: ClassVar[str]

    @field_validator("root")
    @classmethod
    def _root_has_files(cls, root: str) -> str:
        if not Path(root).is_dir():
            raise ValueError(f"dataset folder {root} does not exist (set KDBENCH_DATA_ROOT or `root:`; "
                             f"get {cls.title} from {cls.url})")
        try:
            cls.videos(Path(root))
        except (DatasetMissing, DatasetCorrupt) as e:
            raise ValueError(str(e)) from None
        return root

    @classmethod
    def videos(cls, root: Path, split: int = 1) -> tuple[list[str], list[str]]:
        """Training and test video names (reading the split, no frame)."""
        raise NotImplementedError

    def train_names(self) -> tuple[list[str], list[str], list[str]]:
        train, test = self.videos(Path(self.root), getattr(self, "split", 1))
        if self.val_videos >= len(train):
            raise ValueError(f"val_videos ({self.val_videos}) must be fewer than the {len(train)} training videos")
        step = len(train) // self.val_videos
        val = set(train[::step][:self.val_videos])
        return [v for v in train if v not in val], sorted(val), test

    def describe(self):
        n_train = len(self.train_names()[0]) * self.clips_per_video
        return (self.frames, 3, self.size, self.size), self.joints, n_train


class PennActionParams(PoseVideoParams):
    joints, title, url = 13, "Penn Action", PENN_URL

    @classmethod
    def videos(cls, root, split=1):
        if not (root / "frames").is_dir() or not any((root / "labels").glob("*.mat")):
            raise DatasetMissing(f"Penn Action needs {root / 'frames'} and .mat files in {root / 'labels'}")
        flags = _penn_flags(str(root.resolve()), tuple(p.stat().st_mtime_ns for p in (root / "labels").glob("*.mat")))
        return [v for v, f in flags if f == 1], [v for v, f in flags if f != 1]


@lru_cache(maxsize=8)
def _penn_flags(root: str, stamps: tuple[int, ...]) -> tuple[tuple[str, int], ...]:
    """(video, train flag) of every label file, read once per folder state (validation asks twice)."""
    return tuple((p.stem, int(np.asarray(_loadmat(p)["train"]).ravel()[0]))
                 for p in sorted(Path(root, "labels").glob("*.mat")))


def penn_video(root: Path, name: str) -> Video:
    m = _loadmat(root / "labels" / f"{name}.mat")
    x, y = np.asarray(m["x"], np.float64), np.asarray(m["y"], np.float64)
    joints = np.stack([x, y], -1)  # (F, 13, 2)
    n = joints.shape[0]
    frames = [root / "frames" / name / f"{i:06d}.jpg" for i in range(1, n + 1)]
    missing = [f for f in frames if not f.is_file()]
    if joints.shape[1] != 13 or missing:
        raise DatasetCorrupt(f"Penn Action video {name}: {joints.shape[1]} joints, "
                             f"{len(missing)} of {n} frames missing")
    boxes = np.concatenate([joints.min(1), joints.max(1)], -1)
    given = np.asarray(m["bbox"], np.float64).reshape(-1, 4)[:n]
    boxes[:len(given)] = given
    return Video(frames, joints, np.asarray(m["visibility"]).reshape(n, 13), boxes)


@register_dataset("penn_action", PennActionParams)
def penn_action(p: PennActionParams) -> DataSplits:
    """Penn Action (Zhang, Zhu & Derpanis 2013): 2,326 videos, 13 joints, official train/test flags."""
    root = Path(p.root)
    splits = [Split(*clips_of([penn_video(root, v) for v in names], p.frames, p.clips_per_video, p.size))
              for names in p.train_names()]
    return DataSplits(*splits, 13)


class SubJhmdbParams(PoseVideoParams):
    split: int = Field(default=1, ge=1, le=3)
    joints, title, url = 15, "Sub-JHMDB", JHMDB_URL

    @classmethod
    def videos(cls, root, split=1):
        files = sorted((root / "sub_splits").glob(f"*_test_split{split}.txt"))
        if not files or not (root / "joint_positions").is_dir() or not (root / "Rename_Images").is_dir():
            raise DatasetMissing(f"Sub-JHMDB needs {root / 'joint_positions'}, {root / 'Rename_Images'} and "
                                 f"{root / 'sub_splits'}/<class>_test_split{split}.txt")
        train, test = [], []
        for f in files:
            action = f.name[: -len(f"_test_split{split}.txt")]
            for line in f.read_text().split("\n"):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("1", "2"):
                    if parts:
                        raise DatasetCorrupt(f"{f}: expected '<video>.avi 1|2', got {line!r}")
                    continue
                (train if parts[1] == "1" else test).append(f"{action}/{Path(parts[0]).stem}")
        return sorted(train), sorted(test)


def jhmdb_video(root: Path, name: str) -> Video:
    pos = np.asarray(_loadmat(root / "joint_positions" / name / "joint_positions.mat")["pos_img"], np.float64)
    if pos.ndim != 3 or pos.shape[:2] != (2, 15):
        raise DatasetCorrupt(f"Sub-JHMDB video {name}: pos_img has shape {pos.shape}, not 2 × 15 × frames")
    joints = pos.transpose(2, 1, 0)  # (F, 15, 2)
    n = joints.shape[0]
    frames = [root / "Rename_Images" / name / f"{i:05d}.png" for i in range(1, n + 1)]
    missing = [f for f in frames if not f.is_file()]
    if missing:
        raise DatasetCorrupt(f"Sub-JHMDB video {name}: {len(missing)} of {n} frames missing, e.g. {missing[0]}")
    boxes = np.concatenate([joints.min(1), joints.max(1)], -1)
    return Video(frames, joints, np.ones((n, 15)), boxes)


@register_dataset("sub_jhmdb", SubJhmdbParams)
def sub_jhmdb(p: SubJhmdbParams) -> DataSplits:
    """Sub-JHMDB (Jhuang et al. 2013): the 316 clips with every joint in the frame, 15 joints, splits 1-3."""
    root = Path(p.root)
    splits = [Split(*clips_of([jhmdb_video(root, v) for v in names], p.frames, p.clips_per_video, p.size))
              for names in p.train_names()]
    return DataSplits(*splits, 15)
