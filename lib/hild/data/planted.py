"""A planted low-rank attention teacher: the data of the gradual-rank-increase chapter.

Boix-Adserà, Littwin, Abbe, Bengio and Susskind (NeurIPS 2023) train attention from small
initialisation towards targets made by an attention layer whose logit matrix has low rank::

    X ~ N(0, I/d) per token,   W* = √d · U diag(s) Vᵀ,   Y = softmax(X W* Xᵀ) X

with U, V orthonormal d x r (``diagonal=True``: W* = √d · diag(s, 0, ..., 0)). The √d keeps each
logit of order s_k for tokens of norm about one. The singular values of W* are √d·s exactly, so a
student that fits the data must grow W_Q W_Kᵀ − W₀ to rank r.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["PlantedAttention", "planted_attention"]


@dataclass(frozen=True, eq=False)
class PlantedAttention:
    """Inputs, targets and the teacher's logit matrix.

    Attributes:
        x: (n, T, d) token sequences.
        y: (n, T, d) targets softmax(x W* xᵀ) x.
        w_star: (d, d) the teacher's logit matrix W*.
    """

    x: torch.Tensor
    y: torch.Tensor
    w_star: torch.Tensor

    @property
    def rank(self) -> int:
        return int(torch.linalg.matrix_rank(self.w_star))


def planted_attention(n: int, T: int, d: int, strengths: Sequence[float], *, diagonal: bool = False,
                      seed: int = 0, dtype: torch.dtype = torch.float32) -> PlantedAttention:
    """Sequences whose targets come from an attention layer with a rank-r logit matrix.

    Args:
        n, T, d: sequences, tokens per sequence, token dimension.
        strengths: s₁, ..., s_r > 0; W* has singular values √d·s_k.
        diagonal: W* = √d·diag(s, 0, ...) instead of random orthonormal U, V.
        seed: seeds x and U, V (a ``torch.Generator``, independent of the global seed).
    """
    r = len(strengths)
    if not 1 <= r <= d:
        raise ValueError(f"need 1 ≤ len(strengths) ≤ d = {d}, got {r}")
    if any(s <= 0 for s in strengths):
        raise ValueError(f"strengths must be positive, got {tuple(strengths)}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    s = torch.tensor([float(v) for v in strengths], dtype=torch.float64)
    if diagonal:
        w = torch.diag(torch.cat([s, torch.zeros(d - r, dtype=torch.float64)]))
    else:
        U, _ = torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64))
        V, _ = torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64))
        w = U @ torch.diag(s) @ V.T
    w = math.sqrt(d) * w
    y = torch.softmax(x @ w @ x.transpose(1, 2), dim=-1) @ x
    return PlantedAttention(x.to(dtype), y.to(dtype), w.to(dtype))
