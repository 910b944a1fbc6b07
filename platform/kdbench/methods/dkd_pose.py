"""`dkd_pose`: Dynamic Kernel Distillation for video pose — Nie, Li, Luo, Zhang & Feng, ICCV 2019.

Not Decoupled KD (`dkd`). The student is `dkd_pose_net` (kdbench/zoo/models/pose_nets.py): a pose
initialiser on frame 1, then pose kernels distilled from the previous frame's features and heatmaps and
convolved with the current frame's features. The terms, with P the student's heatmaps (B, T, J, h, w), G
the Gaussian targets (visible joints) and P^T the teacher's heatmaps:

    heatmap = w_h · task MSE(P, G)                             (the `mse` term, all frames)
    init    = w_i · mean (P_1 − P^T_1)²                        (frame 1: the initialiser fits the teacher)
    adv     = w_a · L(P)                                       (BEGAN generator loss, methods/_began.py)
    disc    = L(G) − k_t · L(P)                                (the discriminator's own loss; only D learns it)

with L the BEGAN discriminator's reconstruction energy over the clip's heatmap sequence (T·J channels),
k_t updated each training step (γ, λ_k). w_a = 0 switches the adversarial terms off (no `adv`, no `disc`).

What was verified against the paper here: the architecture's principle (initialiser on frame 1; kernels from
the previous frame's features and heatmaps; one grouped convolution per frame; a temporal adversarial
discriminator; BEGAN-style by default as the brief asks). Not verified (the paper could not be read here):
its kernel shape and layers, its loss weights and the discriminator's inputs (here the heatmap sequence
only), so these are parameters: the model's `kernel_size` / `kernel_mode`, and `adv_weight` (default 0.01),
`gamma` and `lambda_k` (BEGAN's defaults, 0.5 and 0.001). The `init` term is this benchmark's: the paper's
initialiser is a separately trained large network; here it is inside the student (so a trained student runs
alone and its FLOPs per frame count it on frame 1 only) and learns from the labels and the teacher's frame-1
heatmaps (`init_weight`; 0: labels only).

The discriminator trains with the student's optimiser and learning rate (one backward pass, separated
directions), not with BEGAN's own Adam.

Params defaults: heatmap_weight=1.0, init_weight=1.0, adv_weight=0.01, disc_hidden=32, gamma=0.5,
lambda_k=0.001
"""

from __future__ import annotations

import torch
from pydantic import Field

from ._began import BeganDiscriminator, adversarial_terms, update_k
from .base import Incompatible, Method, MethodParams, Needs, register_method


@register_method
class DKDPose(Method):
    name = "dkd_pose"
    needs = Needs(teacher=True)
    tasks = ("video_pose",)
    fusable = False  # owns a discriminator and the state k_t

    class Params(MethodParams):
        heatmap_weight: float = Field(default=1.0, ge=0)
        init_weight: float = Field(default=1.0, ge=0)
        adv_weight: float = Field(default=0.01, ge=0)  # 0: no adversarial term
        disc_hidden: int = Field(default=32, ge=1)
        gamma: float = Field(default=0.5, gt=0, le=1)
        lambda_k: float = Field(default=0.001, ge=0)

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        kernels = ctx.student_features.get("kernels")
        if kernels is None:
            raise Incompatible("dkd_pose trains a student with dynamic pose kernels (its 'kernels' tap), such as "
                               "dkd_pose_net; this student has none")
        frames = kernels[0] + 1
        self.disc = BeganDiscriminator(frames * ctx.num_classes, params.disc_hidden) if params.adv_weight else None
        self.register_buffer("k", torch.zeros(()))  # BEGAN's k_t, starts at 0

    def forward(self, batch, student, teacher, state):
        p, task = self.params, self.ctx.task
        heat = task.prediction(student)
        terms = {task.loss_term: p.heatmap_weight * task.loss(heat, batch.y)}
        if p.init_weight:
            first = task.prediction(teacher)[:, 0].detach()
            terms["init"] = p.init_weight * (heat[:, 0] - first).pow(2).mean()
        if self.disc is not None:
            real = task.targets(batch.y, *heat.shape[-2:]).flatten(1, 2)
            gen, disc, l_real, l_fake = adversarial_terms(self.disc, real, heat.flatten(1, 2).float(), self.k)
            terms["adv"] = p.adv_weight * gen
            terms["disc"] = disc
            if self.training:
                with torch.no_grad():
                    update_k(self.k, l_real, l_fake, p.gamma, p.lambda_k)
        return terms
