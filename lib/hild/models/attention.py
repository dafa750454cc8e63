"""One softmax attention layer, and what to measure on attention maps: entropy and its lower bound.

``SoftmaxAttention`` is the smallest model in which the rank of the learned attention logits can
grow (Boix-Adserà, Littwin, Abbe, Bengio and Susskind, *Transformers learn through gradual rank
increase*, NeurIPS 2023)::

    attention(X) = softmax(X W Xᵀ) X W_V,     W = W_Q W_Kᵀ  (the logit matrix, d x d)

with the softmax over each row (query ``i`` weighs the keys ``j`` by ``exp(x_iᵀ W x_j)``). The
values are the identity unless ``learn_values=True``; ``diagonal=True`` makes W_Q and W_K diagonal,
the setting of the paper's theorem.

The entropy functions follow Zhai et al., *Stabilizing Transformer Training by Preventing Attention
Entropy Collapse* (ICML 2023): the entropy of each query's attention distribution, averaged per head,
and the paper's Theorem 3.1, a lower bound on it that falls exponentially in the spectral norm of
the attention logits.

(This file is owned by the rank / σReparam chapters; the max-margin attention of another chapter
lives in ``hild.models.prefix_attention``.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["SoftmaxAttention", "attention_entropy", "head_entropy", "entropy_lower_bound",
           "extremal_logits", "qk_spectral_norms"]


class SoftmaxAttention(nn.Module):
    """softmax(X W_Q W_Kᵀ Xᵀ) X W_V on inputs X of shape (B, T, d); output (B, T, d).

    Args:
        d: token dimension.
        d_head: columns of W_Q and W_K (default ``d``: full d x d factors); ignored when diagonal.
        diagonal: W_Q = diag(q), W_K = diag(k), so W = diag(q ⊙ k) (the paper's theorem).
        learn_values: a trained d x d value matrix W_V instead of the identity.
        init_std: standard deviation of every trained entry at initialisation (small: the
            incremental regime needs it).
        dtype: parameter dtype.
    """

    def __init__(self, d: int, *, d_head: int | None = None, diagonal: bool = False,
                 learn_values: bool = False, init_std: float = 1e-3, dtype: torch.dtype | None = None):
        super().__init__()
        if d < 1 or (d_head is not None and d_head < 1):
            raise ValueError(f"d and d_head must be positive, got d={d}, d_head={d_head}")
        if init_std < 0:
            raise ValueError(f"init_std must be non-negative, got {init_std}")
        self.d, self.diagonal = d, diagonal
        shape = (d,) if diagonal else (d, d_head or d)
        self.w_q = nn.Parameter(torch.randn(shape, dtype=dtype) * init_std)
        self.w_k = nn.Parameter(torch.randn(shape, dtype=dtype) * init_std)
        self.w_v = nn.Parameter(torch.randn(d, d, dtype=dtype) * init_std) if learn_values else None

    def logit_matrix(self) -> torch.Tensor:
        """W = W_Q W_Kᵀ, (d, d): the logit of query x_i on key x_j is x_iᵀ W x_j."""
        if self.diagonal:
            return torch.diag(self.w_q * self.w_k)
        return self.w_q @ self.w_k.T

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention probabilities, (B, T, T); each row sums to one."""
        if x.ndim != 3 or x.shape[-1] != self.d:
            raise ValueError(f"x must be (B, T, {self.d}), got shape {tuple(x.shape)}")
        return torch.softmax(x @ self.logit_matrix() @ x.transpose(1, 2), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.attention(x) @ x
        return out if self.w_v is None else out @ self.w_v


def attention_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy −Σ_j A_ij log A_ij of each row of attention maps, in nats.

    Zero probabilities (masked keys) contribute 0, so a causal map's row ``i`` has at most
    log(i + 1) nats.

    Args:
        probs: (..., T_keys) attention probabilities, each row summing to one.

    Returns:
        (...,) the entropy of each row.
    """
    if not torch.is_tensor(probs):
        probs = torch.as_tensor(probs)
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def head_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean attention entropy per head: (B, H, T, T) maps → (H,), averaged over examples and queries.

    This is the quantity Zhai et al. plot per head; a causal map's uniform value is the mean of
    log(i + 1) over the queries (3.21 nats for T = 64).
    """
    if probs.ndim != 4:
        raise ValueError(f"head_entropy expects maps of shape (B, H, T, T), got {tuple(probs.shape)}")
    return attention_entropy(probs).mean(dim=(0, 2))


def entropy_lower_bound(sigma: float | np.ndarray | torch.Tensor, T: int) -> np.ndarray:
    """Theorem 3.1 of Zhai et al. (2023): the least entropy of a row of softmax(X W_K W_Qᵀ Xᵀ).

    With σ = ‖W_K W_Qᵀ‖₂, σ_x = ‖XXᵀ‖₂ and **σ** = σ σ_x (``sigma`` here), every row satisfies

        Ent(A_i) ≥ log(1 + (T − 1) β) + **σ** √(T(T − 1)) β / (1 + (T − 1) β),
        β = exp(−**σ** √(T / (T − 1))).

    The bound is attained by a row whose logits have norm **σ** with one entry above the T − 1
    others (see :func:`extremal_logits`).

    Args:
        sigma: **σ** ≥ 0, the bound on each row's logit norm (scalar or array).
        T: number of keys (≥ 2).
    """
    if T < 2:
        raise ValueError(f"the bound needs at least two keys, got T={T}")
    if torch.is_tensor(sigma):
        sigma = sigma.detach().cpu().double().numpy()
    s = np.asarray(sigma, dtype=np.float64)
    if np.any(s < 0):
        raise ValueError("sigma is a norm: it must be non-negative")
    beta = np.exp(-s * math.sqrt(T / (T - 1)))
    return np.log1p((T - 1) * beta) + s * math.sqrt(T * (T - 1)) * beta / (1 + (T - 1) * beta)


def extremal_logits(T: int, norm: float, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The logit vector of Euclidean norm ``norm`` whose softmax has the least entropy.

    One entry ``norm·√((T − 1)/T)`` and T − 1 entries ``−norm/√(T(T − 1))``: the gap between the
    top logit and the rest is as large as the norm allows, ``norm·√(T/(T − 1))``; its entropy is
    :func:`entropy_lower_bound` exactly.
    """
    if T < 2 or norm < 0:
        raise ValueError(f"need T ≥ 2 and norm ≥ 0, got T={T}, norm={norm}")
    a = torch.full((T,), -norm / math.sqrt(T * (T - 1)), dtype=dtype)
    a[0] = norm * math.sqrt((T - 1) / T)
    return a


def qk_spectral_norms(w_qkv: torch.Tensor, n_head: int) -> torch.Tensor:
    """Per head, ‖W_Q,hᵀ W_K,h‖₂ / √d_head from a fused (3C, C) query-key-value weight.

    The rows of ``w_qkv`` are the queries, keys and values (C each, as ``nn.Linear(C, 3C)``
    stores them); head ``h`` owns rows ``h·d_head .. (h+1)·d_head`` of each. The logit of query
    x_i on key x_j in head h is x_iᵀ W_Q,hᵀ W_K,h x_j / √d_head, so this is the spectral norm of
    the head's logit matrix, the σ of Theorem 3.1 (up to the input norm).

    Returns:
        (n_head,) tensor.
    """
    if w_qkv.ndim != 2 or w_qkv.shape[0] != 3 * w_qkv.shape[1]:
        raise ValueError(f"w_qkv must be (3C, C), got shape {tuple(w_qkv.shape)}")
    C = w_qkv.shape[1]
    if C % n_head:
        raise ValueError(f"C = {C} is not a multiple of n_head = {n_head}")
    dh = C // n_head
    with torch.no_grad():
        q, k = w_qkv[:C].view(n_head, dh, C), w_qkv[C:2 * C].view(n_head, dh, C)
        logits = q.transpose(1, 2) @ k / math.sqrt(dh)  # (H, C, C)
        return torch.linalg.matrix_norm(logits, ord=2)
