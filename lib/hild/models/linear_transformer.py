"""The linear transformer of in-context linear regression (Ahn, Cheng, Song, Yun, Jadbabaie and Sra,
*Linear attention is (maybe) all you need (to understand transformer optimization)*, ICLR 2024;
the model of Ahn, Cheng, Daneshmand and Sra, NeurIPS 2023, and of von Oswald et al., ICML 2023).

A prompt is a matrix ``Z`` of ``N + 1`` tokens, one per row (see :mod:`hild.data.icl`): ``N``
labelled examples ``[x_iᵀ, y_i]`` and the query ``[x_qᵀ, 0]``. Each layer adds a sum of linear
attention heads (no softmax) to its input::

    Z ← Z + Σ_heads (1/N) · (Z Q̃ Zᵀ) M (Z P̃ᵀ)

    Q̃ = [[Q, 0],      P̃ = [[P, 0],      M = diag(1, ..., 1, 0)
         [0, 0]]           [0, 1]]

with ``d x d`` parameters ``P`` (the value map on the covariates) and ``Q`` (the product of key
and query maps), embedded in ``(d + 1) x (d + 1)`` as in the official code: the value map carries
each label unchanged, and the scores see only covariates. The mask ``M`` drops the query as a
key/value, so its label slot, which holds 0, is never read. The prediction is ``ŷ = −Z[N, d]``
after the last layer (the sign convention of the papers).

The layer is computed in its linear-attention order, ``X Q (X_cᵀ V_c) / N`` (``X`` covariates,
``V_c`` the values of the ``N`` context tokens), which costs ``O(N d²)`` per prompt instead of
``O(N² d)``; it is the same matrix expression, re-associated.

:meth:`LinearTransformer.from_preconditioned_gd` sets the weights of the papers' construction:
``P_ℓ = 0`` and ``Q_ℓ = −Γ_ℓ`` make ``L`` layers compute ``L`` steps of GD preconditioned by
``Γ_ℓ`` on the prompt's least-squares loss (checked exactly in ``tests/test_linear_transformer.py``
against :func:`hild.data.icl.preconditioned_gd`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["LinearTransformer", "linear_attention"]


def linear_attention(Z: torch.Tensor, P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """One linear attention head's update ``(1/N)·(Z Q̃ Zᵀ) M (Z P̃ᵀ)``, shape ``(B, N + 1, d + 1)``.

    Args:
        Z: prompts ``(B, N + 1, d + 1)`` (last row the query).
        P, Q: ``(d, d)`` value and key-query matrices (embedded as in the module docstring).
    """
    N = Z.shape[-2] - 1
    X = Z[..., :-1]                                        # (B, N + 1, d) covariates of every token
    values = torch.cat([X[..., :N, :] @ P.T, Z[..., :N, -1:]], dim=-1)  # (B, N, d + 1): P̃ z_i, context only
    kv = X[..., :N, :].transpose(-1, -2) @ values          # (B, d, d + 1) = Σ_i x_i (P̃ z_i)ᵀ
    return (X @ Q) @ kv / N                                # row t: Σ_i (x_tᵀ Q x_i)(P̃ z_i)ᵀ / N


class LinearTransformer(nn.Module):
    """``n_layers`` residual layers of ``n_heads`` linear attention heads on ``(B, N + 1, d + 1)`` prompts.

    Args:
        d: covariate dimension.
        n_layers: number of layers (the paper: 3).
        n_heads: heads per layer (the paper: 1).
        init_std: parameters are drawn from ``N(0, init_std²)`` (the official code: 0.05); 0 gives zeros.
        dtype: parameter dtype (float32 by default; float64 for exact checks).

    Attributes:
        P, Q: parameters of shape ``(n_layers, n_heads, d, d)``.
    """

    def __init__(self, d: int, *, n_layers: int = 3, n_heads: int = 1, init_std: float = 0.05,
                 dtype: torch.dtype | None = None):
        super().__init__()
        if d < 1 or n_layers < 1 or n_heads < 1:
            raise ValueError(f"need d, n_layers, n_heads ≥ 1, got {d}, {n_layers}, {n_heads}")
        self.d, self.n_layers, self.n_heads = d, n_layers, n_heads
        self.P = nn.Parameter(torch.randn(n_layers, n_heads, d, d, dtype=dtype) * init_std)
        self.Q = nn.Parameter(torch.randn(n_layers, n_heads, d, d, dtype=dtype) * init_std)

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        """The prompts after every layer, ``(B, N + 1, d + 1)``."""
        if Z.shape[-1] != self.d + 1:
            raise ValueError(f"prompts must have d + 1 = {self.d + 1} columns, got shape {tuple(Z.shape)}")
        for layer in range(self.n_layers):
            update = sum(linear_attention(Z, self.P[layer, h], self.Q[layer, h]) for h in range(self.n_heads))
            Z = Z + update
        return Z

    def predict(self, Z: torch.Tensor) -> torch.Tensor:
        """The query predictions ``ŷ = −(last layer's query label slot)``, shape ``(B,)``."""
        return -self(Z)[..., -1, -1]

    @classmethod
    def from_preconditioned_gd(cls, preconditioners: Sequence[torch.Tensor]) -> "LinearTransformer":
        """The construction: one head per layer, ``P_ℓ = 0``, ``Q_ℓ = −Γ_ℓ``.

        With these weights the prediction equals ``x_qᵀ w_L`` for ``L`` steps of preconditioned GD
        ``w_{ℓ+1} = w_ℓ − Γ_ℓ ∇R(w_ℓ)`` from ``w_0 = 0`` on ``R(w) = (1/2N) Σ_i (wᵀx_i − y_i)²``:
        by induction the context label slots hold the residuals ``y_i − w_ℓᵀx_i`` and the query's
        slot holds ``−w_ℓᵀx_q``, while ``P = 0`` keeps the covariates fixed.
        """
        G = [torch.as_tensor(g) for g in preconditioners]
        if not G or any(g.ndim != 2 or g.shape[0] != g.shape[1] for g in G):
            raise ValueError("preconditioners must be a non-empty list of square (d, d) matrices")
        d = G[0].shape[0]
        model = cls(d, n_layers=len(G), n_heads=1, init_std=0.0, dtype=G[0].dtype)
        with torch.no_grad():
            for layer, g in enumerate(G):
                model.Q[layer, 0] = -g
        return model

    def extra_repr(self) -> str:
        return f"d={self.d}, n_layers={self.n_layers}, n_heads={self.n_heads}"
