"""Sparse variational dropout layers (Molchanov, Ashukha & Vetrov, "Variational Dropout Sparsifies Deep Neural
Networks", ICML 2017) and the model protocol that reports their KL and sparsity.

Each weight w_ij has the posterior q(w_ij) = N(θ_ij, α_ij θ_ij²) under the log-uniform prior p(|w|) ∝ 1/|w|, with
the additive reparameterisation (§4.3): the free parameters are θ (`weight`) and log σ² (`log_sigma2`), and
log α = log σ² − log θ², clipped to [−8, 8] (as the authors' code). Training samples the pre-activations by the
local reparameterisation trick (§4.2): for x the layer's input, b = x·θᵀ + ε·sqrt(x²·(α θ²)ᵀ), ε ~ N(0, 1) — for
convolutions the same with conv(x, θ) and conv(x², α θ²). At evaluation the layer is deterministic and weights with
log α ≥ `threshold` (3 in the paper, §4.4: dropout rate > 0.95) are zero.

KL (§4.2, eq. 14): −KL(q ‖ p) ≈ k1 σ(k2 + k3 log α) − 0.5 log(1 + 1/α) − k1, with k1 = 0.63576, k2 = 1.87320,
k3 = 1.48695; the constant −k1 makes the KL vanish as α → ∞. tests/test_sparse_vd.py checks it against a Monte-Carlo
estimate of the exact KL (0.5 log α − E log|ε|, ε ~ N(1, α), plus the same constant).

Model protocol (read generically, no engine branch): a model with VD layers offers `variational_kl()` (Σ KL over its
VD weights, a scalar tensor) and `sparsity_report()` (its deployed parameters and how many are non-zero at
evaluation; the variational log σ² are not deployed).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

K1, K2, K3 = 0.63576, 1.87320, 1.48695
LOG_ALPHA_CLIP = 8.0
THRESHOLD = 3.0  # log α at and above which a weight is dropped at evaluation (Molchanov et al. §4.4)
_EPS = 1e-8


def vd_kl(log_alpha: torch.Tensor) -> torch.Tensor:
    """Σ of Molchanov et al.'s approximation of KL(N(θ, αθ²) ‖ log-uniform) over `log_alpha`'s entries."""
    neg_kl = K1 * torch.sigmoid(K2 + K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - K1  # log1p(1/α) = softplus(−logα)
    return -neg_kl.sum()


class _SVDLayer(nn.Module):
    """What the linear and convolutional VD layers share: θ, log σ², the clipped log α and the evaluation mask."""

    weight: nn.Parameter
    log_sigma2: nn.Parameter
    threshold: float

    def _init_vd(self, shape: tuple[int, ...], fan_in: int, bias: bool, threshold: float) -> None:
        self.threshold = threshold
        self.weight = nn.Parameter(torch.empty(shape))
        self.log_sigma2 = nn.Parameter(torch.full(shape, -10.0))  # α ≈ 0 at the start: a deterministic layer
        self.bias = nn.Parameter(torch.zeros(shape[0])) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear / nn.Conv2d's own initialisation
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def log_alpha(self) -> torch.Tensor:
        log_alpha = self.log_sigma2 - torch.log(self.weight**2 + _EPS)
        return torch.clamp(log_alpha, -LOG_ALPHA_CLIP, LOG_ALPHA_CLIP)

    def mask(self) -> torch.Tensor:
        """1 where the weight is kept at evaluation (log α < threshold), else 0."""
        return (self.log_alpha < self.threshold).to(self.weight.dtype)

    def kl(self) -> torch.Tensor:
        return vd_kl(self.log_alpha)

    def deployed(self) -> tuple[int, int]:
        """(entries the deterministic layer stores: weight and bias, how many of them are non-zero)."""
        w = self.weight * self.mask()
        total, nonzero = w.numel(), int((w != 0).sum())
        if self.bias is not None:
            total, nonzero = total + self.bias.numel(), nonzero + int((self.bias != 0).sum())
        return total, nonzero

    def _sample(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        return mean + torch.sqrt(var + _EPS) * torch.randn_like(mean)


class LinearSVDO(_SVDLayer):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, threshold: float = THRESHOLD) -> None:
        super().__init__()
        self._init_vd((out_features, in_features), in_features, bias, threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight * self.mask(), self.bias)
        mean = F.linear(x, self.weight, self.bias)  # (B, out)
        var = F.linear(x * x, torch.exp(self.log_alpha) * self.weight**2)  # (B, out)
        return self._sample(mean, var)


class Conv2dSVDO(_SVDLayer):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, threshold: float = THRESHOLD) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self._init_vd(shape, in_channels * kernel_size * kernel_size, bias, threshold)

    def _conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return F.conv2d(x, w, b, self.stride, self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self._conv(x, self.weight * self.mask(), self.bias)
        mean = self._conv(x, self.weight, self.bias)  # (B, C_out, H', W')
        var = self._conv(x * x, torch.exp(self.log_alpha) * self.weight**2, None)
        return self._sample(mean, var)


class VariationalModel(nn.Module):
    """Mixin of models built from VD layers: the protocol methods (`variational_kl`, `sparsity_report`) read here."""

    stochastic_forward = True  # training samples noise (engine/fused.py does not vmap such a model)

    def vd_layers(self) -> list[_SVDLayer]:
        return [m for m in self.modules() if isinstance(m, _SVDLayer)]

    def variational_kl(self) -> torch.Tensor:
        """Σ KL(q(w) ‖ p(w)) over every VD weight of the model (a scalar; the ELBO divides it by the data size)."""
        return torch.stack([layer.kl() for layer in self.vd_layers()]).sum()

    @torch.no_grad()
    def sparsity_report(self) -> dict[str, float]:
        """The deployed model's parameters (every parameter but the VD log σ²) and how many are non-zero at
        evaluation; `sparsity` = 1 − nonzero / deployed; `vd_sparsity`: the same over the VD weights alone."""
        layers = self.vd_layers()
        variational = {id(layer.log_sigma2) for layer in layers}
        in_layers = {id(p) for layer in layers for p in (layer.weight, layer.bias) if p is not None}
        total = nonzero = vd_total = vd_nonzero = 0
        for layer in layers:
            t, n = layer.deployed()
            vd_total, vd_nonzero = vd_total + layer.weight.numel(), vd_nonzero + int((layer.mask() != 0).sum())
            total, nonzero = total + t, nonzero + n
        for p in self.parameters():  # BN, plain layers: deployed as they are
            if id(p) not in variational and id(p) not in in_layers:
                total, nonzero = total + p.numel(), nonzero + int((p != 0).sum())
        return {"deployed_params": float(total), "nonzero_params": float(nonzero),
                "sparsity": 1.0 - nonzero / total, "vd_sparsity": 1.0 - vd_nonzero / vd_total}
