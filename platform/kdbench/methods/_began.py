"""The BEGAN discriminator of `dkd_pose`'s temporal adversarial term (Berthelot, Schumm & Metz 2017).

D is an auto-encoder over a clip's heatmap sequence stacked as channels (B, T·J, h, w); its energy is the
reconstruction error L(v) = mean |v − D(v)|. With real sequences r (target heatmaps) and fake ones f (the
student's), and the equilibrium variable k_t:

    L_D = L(r) − k_t · L(f)          (D's loss: reconstruct real sequences, not fake ones)
    L_G = L(f)                       (the student's adversarial loss)
    k_{t+1} = clip(k_t + λ_k (γ L(r) − L(f)), 0, 1)

One backward pass trains both in their own directions (`adversarial_terms`): L_G is computed through a copy
of D's parameters cut from the graph (its gradient reaches the student only), L_D on the student's output
cut from the graph (its gradient reaches D only).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


class BeganDiscriminator(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.ELU(),
                                 nn.Conv2d(hidden, hidden, 3, stride=2, padding=1), nn.ELU(),
                                 nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.ELU(),
                                 nn.Conv2d(hidden, channels, 3, padding=1))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        out = self.net(v)
        return out[..., :v.shape[-2], :v.shape[-1]]  # odd sizes: the transposed conv gives one more


def energy(disc: nn.Module, v: torch.Tensor, params: dict | None = None) -> torch.Tensor:
    """L(v) = mean |v − D(v)| (with `params`: D run with those parameters instead of its own)."""
    rec = disc(v) if params is None else functional_call(disc, params, (v,))
    return (v - rec).abs().mean()


def adversarial_terms(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                      k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_G, L_D, L(r), L(f)) for real and fake sequences, the directions separated as the docstring says."""
    frozen = {n: p.detach() for n, p in disc.named_parameters()}
    gen = energy(disc, fake, frozen)
    l_real = energy(disc, real)
    l_fake = energy(disc, fake.detach())
    return gen, l_real - k.detach().clone() * l_fake, l_real.detach(), l_fake.detach()  # k: updated in place later


def update_k(k: torch.Tensor, l_real: torch.Tensor, l_fake: torch.Tensor, gamma: float, lambda_k: float) -> None:
    """k ← clip(k + λ_k (γ L(r) − L(f)), 0, 1), in place."""
    k.add_(lambda_k * (gamma * l_real - l_fake)).clamp_(0.0, 1.0)
