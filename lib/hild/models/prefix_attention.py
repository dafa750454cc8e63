"""One softmax-attention head read through a query: the model of the max-margin attention papers.

Tarzanagh, Li, Zhang and Oymak, *Max-Margin Token Selection in Attention Mechanism* (NeurIPS 2023),
study the prefix (prompt-tuning) model

    f(X) = vᵀXᵀ softmax(X W p),      X ∈ R^{T×d} (one token per row), v, p ∈ R^d, W ∈ R^{d×d},

in which a query p attends over the T tokens through the key-query matrix W and the head v reads
the attention-weighted token. Training p with W = I is the paper's p-parameterisation, training W
with p fixed its W-parameterisation. :class:`PrefixAttention` holds both, and optionally a query
per sequence (``forward(X, queries=Z)``: scores X_i W z_i, self-attention with the query taken
from the sequence, as in the follow-up *Transformers as Support Vector Machines*).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["PrefixAttention", "attend"]


def attend(scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Σ_t softmax(scores)_t · values_t over the last axis: (..., T), (..., T) → (...).

    Written around the most-attended token r as u_r + Σ_t s_t (u_t − u_r). It is the same number
    as Σ_t s_t u_t, but its gradient stays exact when the softmax saturates: in the plain form the
    gradient through the selected token is s_r·(u_r − Σ_t s_t u_t), a difference of two nearly
    equal numbers whose rounding error (1e-16 relative) swamps the true value (e^{−gap}) as soon as
    the attention on the other tokens falls below about 1e-16. Max-margin dynamics live exactly
    there, so the plain form turns the direction of p into noise.
    """
    s = torch.softmax(scores, dim=-1)
    r = s.argmax(dim=-1, keepdim=True).detach()
    u_r = values.gather(-1, r)
    return u_r.squeeze(-1) + (s * (values - u_r)).sum(-1)


class PrefixAttention(nn.Module):
    """f(X) = vᵀXᵀ softmax(X W p) for a batch of sequences X of shape (n, T, d) → (n,).

    Args:
        v: (d,) the head, kept fixed (a buffer), as in the paper's main theorems.
        p: (d,) the query (default zeros: uniform attention at the start).
        W: (d, d) the key-query matrix (default the identity).
        train: which of ``"p"``, ``"W"`` are trained (parameters); the others are buffers.
        dtype: float64 by default: max-margin dynamics need the dynamic range.
    """

    def __init__(self, v: torch.Tensor, *, p: torch.Tensor | None = None, W: torch.Tensor | None = None,
                 train: Iterable[str] = ("p",), dtype: torch.dtype = torch.float64):
        super().__init__()
        v = torch.as_tensor(v, dtype=dtype)
        if v.ndim != 1:
            raise ValueError(f"v must be a vector (d,), got shape {tuple(v.shape)}")
        d = v.shape[0]
        p = torch.zeros(d, dtype=dtype) if p is None else torch.as_tensor(p, dtype=dtype).clone()
        W = torch.eye(d, dtype=dtype) if W is None else torch.as_tensor(W, dtype=dtype).clone()
        if p.shape != (d,) or W.shape != (d, d):
            raise ValueError(f"with v of size {d}, p must be ({d},) and W ({d}, {d}); got {tuple(p.shape)}, {tuple(W.shape)}")
        train = set(train)
        if not train or not train <= {"p", "W"}:
            raise ValueError(f"train must name some of 'p' and 'W', got {sorted(train)}")
        self.register_buffer("v", v)
        for name, value in (("p", p), ("W", W)):
            if name in train:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.d = d

    def scores(self, X: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        """Attention logits X W p (or X_i W z_i with ``queries`` Z of shape (n, d)): (n, T)."""
        if X.ndim != 3 or X.shape[-1] != self.d:
            raise ValueError(f"X must be (n, T, {self.d}), got shape {tuple(X.shape)}")
        if queries is None:
            return X @ (self.W @ self.p)
        if queries.shape != (X.shape[0], self.d):
            raise ValueError(f"queries must be (n, d) = ({X.shape[0]}, {self.d}), got {tuple(queries.shape)}")
        return torch.einsum("ntd,nd->nt", X, queries @ self.W.T)

    def attention(self, X: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        """softmax of the scores: the weight of each token, (n, T), rows sum to one."""
        return torch.softmax(self.scores(X, queries), dim=-1)

    def forward(self, X: torch.Tensor, queries: torch.Tensor | None = None) -> torch.Tensor:
        return attend(self.scores(X, queries), X @ self.v)
