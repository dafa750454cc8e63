"""Checks for the exercises of the greedy-rank autoencoder chapter.

Each check calls the reader's function on a few cases and compares it with an exact answer the
check computes itself: the singular values of the data matrix (NumPy's SVD), and the first-order
change of a product of balanced orthogonal factors under one gradient step, measured on the
product itself (autograd in float64) and compared with the closed form
:func:`hild.models.linear_ae.end_to_end_rate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..models.linear_ae import end_to_end_rate, orthogonal_factors
from . import check, check_function

__all__ = ["principal_stds", "product_rate", "measured_product_rate"]


def principal_stds(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(x, k)`` returns the k largest standard deviations of the (n, d) data ``x``
    along its principal directions, without centring: the top singular values of x divided by √n."""
    __tracebackhide__ = True
    rng = np.random.default_rng(0)
    cases = []
    for n, d, k in ((50, 6, 3), (200, 10, 10), (30, 4, 1)):
        cases.append((rng.standard_normal((n, d)) * rng.uniform(0.1, 3.0, size=d), k))
    low = rng.standard_normal((100, 2)) @ rng.standard_normal((2, 8))  # rank 2: the rest is 0
    cases.append((low, 4))

    def reference(x: np.ndarray, k: int) -> np.ndarray:
        return np.linalg.svd(np.asarray(x, dtype=float), compute_uv=False)[:k] / np.sqrt(len(x))

    check_function(lambda x, k: np.asarray(fn(x, k), dtype=float).ravel(), reference=reference,
                   cases=cases, name="principal_stds", rtol=1e-8, atol=1e-10,
                   hint="np.linalg.svd(x, compute_uv=False) gives the singular values, largest "
                        "first; divide by √n (no centring: the data has mean zero)")


def measured_product_rate(depth: int, sigma: float, *, width: int = 5, seed: int = 0) -> float:
    """Measure ``‖ΔP‖ / (η‖G‖)`` for the first-order change ΔP of P = W_L ⋯ W_1 under one gradient
    step on ``⟨G, P⟩``, with balanced orthogonal factors whose product has singular values σ."""
    g = torch.Generator().manual_seed(seed)
    ws = [w.requires_grad_() for w in orthogonal_factors(depth, width, scale=sigma ** (1 / depth),
                                                         generator=g, dtype=torch.float64)]
    G = torch.randn(width, width, generator=g, dtype=torch.float64)

    def product(mats):
        p = torch.eye(width, dtype=torch.float64)
        for w in mats:
            p = w @ p
        return p

    (G * product(ws)).sum().backward()
    grads = [w.grad for w in ws]
    # the linear term of P(W − ηΔ): Σ_l (W_L ⋯ W_{l+1}) Δ_l (W_{l−1} ⋯ W_1), with η = 1
    with torch.no_grad():
        dp = sum(product(ws[l + 1:]) @ grads[l] @ product(ws[:l]) for l in range(depth))
    return float(dp.norm() / G.norm())


def product_rate(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(depth, sigma)`` is how much faster than a single matrix a product of ``depth``
    balanced orthogonal factors moves, to first order, when its singular values are all σ."""
    __tracebackhide__ = True
    cases = [(1, 0.3), (2, 0.1), (3, 1.0), (4, 0.01), (8, 0.5), (4, 2.0)]
    check_function(lambda L, s: float(fn(L, s)), reference=lambda L, s: measured_product_rate(L, s),
                   cases=cases, name="product_rate", rtol=1e-8, atol=1e-12,
                   hint="each factor is c·Q with c = σ^(1/L); the gradient of factor l is "
                        "(W_L⋯W_{l+1})ᵀ G (W_{l−1}⋯W_1)ᵀ; put it back between the same products")
    closed = [end_to_end_rate(L, s) for L, s in cases]
    answers = [float(fn(L, s)) for L, s in cases]
    check("product_rate", bool(np.allclose(answers, closed, rtol=1e-8)),
          detail=f"rates {np.round(answers, 6).tolist()} for (L, σ) = {cases}")
