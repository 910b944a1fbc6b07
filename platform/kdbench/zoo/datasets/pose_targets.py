"""The packed targets of the `video_pose` task (kdbench.tasks.video_pose), here so that datasets can write them:
per frame the joints' x (J), y (J), visibility (J) and the person box (x0, y0, x1, y1), normalised to the frame.
Joint orders: Penn Action's 13 and JHMDB's 15."""

from __future__ import annotations

import torch

PENN_JOINTS = ("head", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip",
               "l_knee", "r_knee", "l_ankle", "r_ankle")
JHMDB_JOINTS = ("neck", "belly", "face", "r_shoulder", "l_shoulder", "r_hip", "l_hip", "r_elbow", "l_elbow",
                "r_knee", "l_knee", "r_wrist", "l_wrist", "r_ankle", "l_ankle")

def pack(joints: torch.Tensor, visible: torch.Tensor, bbox: torch.Tensor) -> torch.Tensor:
    """(..., J, 2) normalised joints, (..., J) visibility, (..., 4) box -> (..., 3J + 4) targets."""
    return torch.cat([joints[..., 0], joints[..., 1], visible.to(joints.dtype), bbox.to(joints.dtype)], -1)


def unpack(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., 3J + 4) -> joints (..., J, 2), visibility (..., J), bbox (..., 4)."""
    j = (y.shape[-1] - 4) // 3
    if 3 * j + 4 != y.shape[-1] or j < 1:
        raise ValueError(f"video_pose targets have 3J + 4 values per frame, got {y.shape[-1]}")
    return torch.stack([y[..., :j], y[..., j:2 * j]], -1), y[..., 2 * j:3 * j], y[..., 3 * j:]
