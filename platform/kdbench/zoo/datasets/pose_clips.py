"""Clips of a pose video for the `video_pose` task: frames cropped around the person and resized square.

A clip is `frames` consecutive frames; a video gives `clips_per_video` clips with evenly spaced starts (a
video shorter than a clip repeats its last frame). Every frame of a clip is cropped to the same square: the
union of the clip's person boxes, squared about its centre and enlarged by `CONTEXT`; the part outside the
image is black. Joints and boxes are mapped into the crop and normalised to [0, 1]; a joint outside the crop
is invisible. Frames are read by PIL, resized bilinearly, scaled to [0, 1] and normalised with ImageNet's
channel means and standard deviations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .pose_targets import pack

CONTEXT = 1.25
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@dataclass(frozen=True)
class Video:
    """One annotated video, in pixels of its frames: joints (F, J, 2), visibility (F, J), boxes (F, 4)."""

    frames: Sequence[Path]
    joints: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray


def clip_starts(n_frames: int, frames: int, clips: int) -> list[int]:
    last = max(n_frames - frames, 0)
    return sorted({round(i * last / max(clips - 1, 1)) for i in range(clips)})


def _crop(boxes: np.ndarray) -> tuple[float, float, float]:
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    side = max(x1 - x0, y1 - y0, 1.0) * CONTEXT
    return (x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2, side


def _frame(path: Path, left: float, top: float, side: float, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        box = tuple(int(round(v)) for v in (left, top, left + side, top + side))
        arr = np.asarray(im.convert("RGB").crop(box).resize((size, size), Image.BILINEAR), np.float32) / 255
    return ((arr - MEAN) / STD).transpose(2, 0, 1)


def video_clips(video: Video, frames: int, clips: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, T, 3, size, size) clips and (K, T, 3J + 4) packed targets of one video."""
    xs, ys = [], []
    n = len(video.frames)
    for start in clip_starts(n, frames, clips):
        idx = [min(start + i, n - 1) for i in range(frames)]
        left, top, side = _crop(video.boxes[idx])
        xs.append(np.stack([_frame(video.frames[i], left, top, side, size) for i in idx]))
        joints = (video.joints[idx] - [left, top]) / side
        boxes = (video.boxes[idx] - [left, top, left, top]) / side
        inside = ((joints >= 0) & (joints <= 1)).all(-1)
        visible = (video.visible[idx] > 0) & inside
        ys.append(pack(torch.from_numpy(joints).float(), torch.from_numpy(visible).float(),
                       torch.from_numpy(boxes).float()))
    return torch.from_numpy(np.stack(xs)).float(), torch.stack(ys)


def clips_of(videos: Sequence[Video], frames: int, clips: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [video_clips(v, frames, clips, size) for v in videos]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
