"""`video_pose`: human pose estimation in video clips, scored by PCK@0.2 of the bounding box.

Inputs: clips (N, T, C, H, W) of square frames. Targets: one packed float tensor (N, T, 3J + 4) per clip —
for every frame the joints' x (J), y (J) and visibility (J, 1 or 0), then the person's bounding box
(x0, y0, x1, y1); coordinates are normalised to the frame, [0, 1] from its left/top edge to its right/bottom
edge (`pack` / `unpack`). A model outputs heatmaps (N, T, J, h, w) at any resolution: pixel (i, j) of an h×w
heatmap sits at ((j + 0.5) / w, (i + 0.5) / h).

Loss: the mean squared error between the predicted heatmaps and Gaussian target heatmaps (σ = `SIGMA`
heatmap pixels, peak 1 at the joint, as SimpleBaseline's targets), with invisible joints masked out (they
add 0 but count in the mean, as SimpleBaseline's `JointsMSELoss` with target weights). Beware: an all-zero
heatmap already has a low MSE; the metric is PCK.

PCK@0.2: a visible joint is correct when the argmax of its heatmap lies within 0.2 · max(bbox width,
bbox height) of the truth (distance ≤ threshold); PCK = correct / visible over every frame of every clip.
`pck` (primary) is over all joints; `pck_<group>` over a joint group (head, shoulder, elbow, wrist, hip,
knee, ankle) for the joint orders of Penn Action (13 joints) and JHMDB (15 joints); other joint counts have
the mean only. Values are fractions, shown in %.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from kdbench.outputs import TeacherOutput
from kdbench.zoo.datasets.pose_targets import JHMDB_JOINTS, PENN_JOINTS, pack, unpack

from .base import Metric, Task, register_task

__all__ = ["JHMDB_JOINTS", "PENN_JOINTS", "VideoPose", "decode", "gaussian_heatmaps", "pack", "pck_hits", "unpack"]

PCK_ALPHA = 0.2
GROUPS = ("head", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")


def joint_groups(names: tuple[str, ...]) -> dict[str, list[int]]:
    """{group: joint indices}; JHMDB's head is its face joint (neck and belly count in the mean only)."""
    out = {}
    for g in GROUPS:
        key = "face" if g == "head" and "face" in names else g
        out[g] = [i for i, n in enumerate(names) if n == key or n.endswith("_" + key)]
    return out


GROUPS_BY_JOINTS = {13: joint_groups(PENN_JOINTS), 15: joint_groups(JHMDB_JOINTS)}


def gaussian_heatmaps(joints: torch.Tensor, visible: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """(..., J, 2) normalised joints -> (..., J, h, w) Gaussians of peak 1 (σ in heatmap pixels), 0 if invisible."""
    cols = torch.arange(w, device=joints.device, dtype=joints.dtype)
    rows = torch.arange(h, device=joints.device, dtype=joints.dtype)
    u = joints[..., 0] * w - 0.5  # the joint in pixel-index units
    v = joints[..., 1] * h - 0.5
    gx = torch.exp(-(cols - u[..., None]) ** 2 / (2 * sigma ** 2))  # (..., J, w)
    gy = torch.exp(-(rows - v[..., None]) ** 2 / (2 * sigma ** 2))  # (..., J, h)
    return gy[..., :, None] * gx[..., None, :] * visible[..., None, None]


def decode(heatmaps: torch.Tensor) -> torch.Tensor:
    """(..., J, h, w) -> (..., J, 2) normalised coordinates of each heatmap's argmax (first maximum)."""
    h, w = heatmaps.shape[-2:]
    flat = heatmaps.flatten(-2).argmax(-1)
    col, row = flat % w, torch.div(flat, w, rounding_mode="floor")
    return torch.stack([(col.to(heatmaps.dtype) + 0.5) / w, (row.to(heatmaps.dtype) + 0.5) / h], -1)


def pck_hits(pred: torch.Tensor, joints: torch.Tensor, visible: torch.Tensor, bbox: torch.Tensor,
             alpha: float = PCK_ALPHA) -> torch.Tensor:
    """(..., J) 1 where a visible joint is within alpha · max(box side) of the truth, else 0."""
    size = torch.maximum(bbox[..., 2] - bbox[..., 0], bbox[..., 3] - bbox[..., 1])  # (...,)
    dist = (pred - joints).pow(2).sum(-1).sqrt()
    return (dist <= alpha * size[..., None]).to(visible.dtype) * visible


@register_task
class VideoPose(Task):
    name = "video_pose"
    metrics = (Metric("pck", "PCK@0.2 (all joints)", True, "%", 100.0, 0.0, 1.0),
               *(Metric(f"pck_{g}", f"PCK@0.2 ({g})", True, "%", 100.0, 0.0, 1.0) for g in GROUPS))
    primary = "pck"
    loss_term = "mse"
    SIGMA: ClassVar[float] = 2.0  # heatmap pixels (SimpleBaseline's σ = 2 on 64×48 heatmaps)

    def prediction(self, out):
        return out.member_logits.mean(0) if isinstance(out, TeacherOutput) else out.logits

    def targets(self, y: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(N, T, J, h, w) Gaussian target heatmaps of packed targets."""
        joints, visible, _ = unpack(y)
        return gaussian_heatmaps(joints, visible, h, w, self.SIGMA)

    def loss(self, prediction, y):
        _, visible, _ = unpack(y)
        err = (prediction - self.targets(y, *prediction.shape[-2:])).pow(2) * visible[..., None, None]
        return err.mean()

    def batch_sums(self, prediction, y):
        joints, visible, bbox = unpack(y)
        hits = pck_hits(decode(prediction), joints, visible, bbox)
        return {"hits": hits.sum(), "visible": visible.sum()}

    def train_metrics(self, sums, n):
        return {"train_pck": sums["hits"] / sums["visible"].clamp_min(1)}

    def score(self, predictions, y):
        joints, visible, bbox = unpack(y)
        hits = pck_hits(decode(predictions.float()), joints, visible, bbox)
        out = {"pck": float(hits.sum() / visible.sum().clamp_min(1))}
        for g, idx in GROUPS_BY_JOINTS.get(joints.shape[-2], {}).items():
            seen = visible[..., idx].sum()
            if seen > 0:
                out[f"pck_{g}"] = float(hits[..., idx].sum() / seen)
        return out

    @torch.no_grad()
    def predict(self, model, x, batch_size: int = 16):
        """Clips are large: 16 per forward by default."""
        return super().predict(model, x, batch_size)
