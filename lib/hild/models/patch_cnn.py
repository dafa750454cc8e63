"""The two-layer convolutional network of the patch-data theory papers (Oh and Yun, NeurIPS 2024;
after Shen et al. 2022 and Zou et al. 2023).

The same filters w_{s,r} ∈ ℝᵈ slide over every patch and the second layer is fixed:

    f_W(X) = F_{+1}(X) − F_{−1}(X),    F_s(X) = (1/m) Σ_{r=1..m} Σ_{p=1..P} φ(⟨w_{s,r}, x⁽ᵖ⁾⟩),

with the smoothed leaky ReLU

    φ(z) = z − (1 − β) r / 2          for z ≥ r,
           (1 − β) z² / (2r) + β z    for 0 ≤ z ≤ r,
           β z                        for z ≤ 0,

which is continuously differentiable, has slope β < 1 below zero and slope 1 above r.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchCNN", "smoothed_leaky_relu"]


def smoothed_leaky_relu(z: torch.Tensor, *, beta: float = 0.1, r: float = 1.0) -> torch.Tensor:
    """φ(z) of the module docstring, elementwise (C¹, slope β below 0, slope 1 above r)."""
    if not 0 <= beta < 1 or r <= 0:
        raise ValueError(f"need 0 ≤ beta < 1 and r > 0, got beta={beta}, r={r}")
    quad = (1 - beta) / (2 * r) * z.clamp(0, r) ** 2
    # βz + the quadratic bend on [0, r] + the linear part above r; each term is continuous in z
    return beta * z + quad + (1 - beta) * (z - r).clamp_min(0)


class PatchCNN(nn.Module):
    """f_W(X) = F_{+1}(X) − F_{−1}(X) on inputs X of shape (B, P, d); returns (B,) logits.

    ``model.weight`` has shape (2, m, d): ``weight[0]`` holds the filters w_{+1,r} of class +1,
    ``weight[1]`` those of class −1.

    Args:
        d: patch dimension.
        m: filters per class.
        beta, r: the activation's leak and smoothing width.
        init_std: the filters start i.i.d. N(0, init_std²).
        generator: for a reproducible initialisation without touching the global RNG.
    """

    def __init__(self, d: int, m: int, *, beta: float = 0.1, r: float = 1.0, init_std: float = 0.01,
                 generator: torch.Generator | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        if d < 1 or m < 1:
            raise ValueError(f"d and m must be positive, got d={d}, m={m}")
        self.d, self.m, self.beta, self.r = int(d), int(m), float(beta), float(r)
        w = torch.randn(2, m, d, generator=generator, dtype=dtype or torch.get_default_dtype())
        self.weight = nn.Parameter(init_std * w)

    def class_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2): F_{+1}(X) and F_{−1}(X)."""
        if x.ndim != 3 or x.shape[-1] != self.d:
            raise ValueError(f"expected patches of shape (B, P, {self.d}), got {tuple(x.shape)}")
        B, P, d = x.shape
        z = x.reshape(B * P, d) @ self.weight.reshape(2 * self.m, d).T  # ⟨w_{s,r}, x⁽ᵖ⁾⟩, one matmul
        act = smoothed_leaky_relu(z, beta=self.beta, r=self.r).reshape(B, P, 2, self.m)
        return act.sum(dim=1).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.class_outputs(x)
        return out[:, 0] - out[:, 1]

    @torch.no_grad()
    def feature_output(self, v: torch.Tensor, s: int) -> torch.Tensor:
        """How strongly class s's filters respond to patches v: (1/m) Σ_r φ(⟨w_{s,r}, v⟩).

        This is the contribution of a patch v to F_s, the quantity the paper plots to show which
        features a network has learned. ``v`` has shape (d,) or (N, d); returns () or (N,).
        """
        if s not in (1, -1):
            raise ValueError(f"s must be +1 or -1, got {s}")
        w = self.weight[0 if s == 1 else 1]
        z = v.to(w.dtype) @ w.T
        return smoothed_leaky_relu(z, beta=self.beta, r=self.r).mean(dim=-1)
