"""Checks for the exercises of the chapter on the neural Fisher kernel (:mod:`hild.fisher`).

Each check calls the reader's function on a few cases and compares it with an exact answer the
check computes itself: the closed-form Fisher kernel of binary logistic regression, and the best
rank-k approximation of a kernel matrix from ``torch.linalg.eigh``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import check_function

__all__ = ["logistic_fisher_kernel", "nystrom_features"]

f64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logistic_kernel(x: torch.Tensor, w: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    px, pz = torch.sigmoid(x @ w), torch.sigmoid(z @ w)
    d = (px * (1 - px)) @ x**2 / len(x)                 # diagonal Fisher on x: mean p(1−p) x_j²
    weight = (torch.outer(px.sqrt() * (1 - px), pz.sqrt() * (1 - pz))
              + torch.outer((1 - px).sqrt() * px, (1 - pz).sqrt() * pz))
    return weight * ((x / d) @ z.T)


def logistic_fisher_kernel(fn: Callable[..., Any]) -> None:
    """Exercise: the Fisher kernel of p(1 | x) = σ(wᵀx), labels from the model, diagonal Fisher on x."""
    __tracebackhide__ = True
    cases = []
    for seed, (n, m, d) in enumerate([(6, 3, 4), (10, 10, 2), (5, 8, 7)]):
        g = _gen(seed)
        x, z = torch.randn(n, d, dtype=f64, generator=g), torch.randn(m, d, dtype=f64, generator=g)
        cases.append((x, torch.randn(d, dtype=f64, generator=g), z))
    check_function(lambda x, w, z: fn(x.clone(), w.clone(), z.clone()), reference=_logistic_kernel,
                   cases=cases, name="logistic_fisher_kernel", rtol=1e-9, atol=1e-12,
                   hint="∇_w log p_1 = (1 − p) x and ∇_w log p_0 = −p x; the diagonal Fisher is "
                        "D_j = mean over x of p(1 − p) x_j²; sum the two labels, each weighted by "
                        "√(p_c(x) p_c(z))")


def _low_rank_kernel(K: torch.Tensor, k: int) -> torch.Tensor:
    lam, u = torch.linalg.eigh(K)
    lam, u = lam.flip(0)[:k], u.flip(1)[:, :k]
    return u @ torch.diag(lam) @ u.T


def nystrom_features(fn: Callable[..., Any]) -> None:
    """Exercise: features E (N, k) with E Eᵀ the best rank-k approximation of a PSD kernel K."""
    __tracebackhide__ = True
    cases = []
    for seed, (n, k) in enumerate([(8, 2), (20, 5), (12, 1)]):
        a = torch.randn(n, n, dtype=f64, generator=_gen(10 + seed)) * torch.linspace(0.05, 1.0, n, dtype=f64)
        cases.append((a @ a.T, k))

    def gram(K: torch.Tensor, k: int) -> torch.Tensor:
        e = torch.as_tensor(fn(K.clone(), k), dtype=f64)
        if e.shape != (len(K), k):
            raise ValueError(f"expected features of shape ({len(K)}, {k}), got {tuple(e.shape)}")
        return e @ e.T

    check_function(gram, reference=_low_rank_kernel, cases=cases, name="nystrom_features (E Eᵀ)",
                   rtol=1e-8, atol=1e-10,
                   hint="take the k largest eigenpairs (λ, u) of K (torch.linalg.eigh sorts them "
                        "ascending) and return the columns u·√λ")
