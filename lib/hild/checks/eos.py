"""Checks for the exercises of the edge-of-stability chapters (Part "Curvature and the edge of
stability": trajectory alignment, momentum catapults). Each check computes its exact answer itself:
dense float64 Hessians, a root found by bisection, or the spectral radius of heavy ball's 2x2 map
(:func:`hild.optim.momentum.heavy_ball_matrix`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.optimize import brentq

from . import check, check_function

__all__ = ["two_layer_minimum_sharpness", "period_two_point", "effective_learning_rate",
           "heavy_ball_threshold"]


def _two_layer_minimum(d: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (U, v, x): a global minimum of ℓ(vᵀUx − y) for the target y = vᵀUx."""
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(width, d, dtype=torch.float64, generator=g)
    v = torch.randn(width, dtype=torch.float64, generator=g)
    x = torch.randn(d, dtype=torch.float64, generator=g) * (0.5 + seed % 3)
    return U, v, x


def _dense_top_eigenvalue(U: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> float:
    """λ_max of the dense float64 Hessian of log cosh(vᵀUx − y) at y = vᵀUx."""
    from ..hessian import dense_hessian
    from ..models.linear_nets import TwoLayerLinear, log_cosh

    y = float(v @ U @ x)
    net = TwoLayerLinear(U.shape[1], U.shape[0])
    with torch.no_grad():
        net.U.copy_(U[None])
        net.v.copy_(v[None])
    H = dense_hessian(net, lambda m, b: log_cosh(m(b).sum() - y), x[None], dtype=torch.float64)
    return float(torch.linalg.eigvalsh(H)[-1])


def two_layer_minimum_sharpness(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(U, v, x)`` returns the sharpness of log cosh(vᵀUx − y) at a global minimum."""
    __tracebackhide__ = True
    shapes = [(5, 5), (3, 7), (6, 2), (1, 1), (4, 3)]
    cases = [_two_layer_minimum(d, w, s) for s, (d, w) in enumerate(shapes)]
    check_function(lambda U, v, x: float(fn(U, v, x)), reference=_dense_top_eigenvalue, cases=cases,
                   name="two_layer_minimum_sharpness", rtol=1e-9, atol=1e-12,
                   hint="at f = y the Hessian is ℓ''(0)·∇f∇fᵀ with ℓ''(0) = 1: its top eigenvalue is "
                        "‖∇_θ f‖² = ‖∂f/∂U‖² + ‖∂f/∂v‖², with ∂f/∂U = v xᵀ and ∂f/∂v = Ux")


def _period_two_reference(q: float) -> float:
    return brentq(lambda p: p - q * np.tanh(p), 1e-12, 10 * q + 10, xtol=1e-15, rtol=1e-15)


def period_two_point(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(q)`` returns p > 0 with p ↦ p − 2q·tanh p mapping p to −p (q > 1)."""
    __tracebackhide__ = True
    qs = [1.02, 1.1, 1.5, 2.0, 3.7]
    check_function(lambda q: float(fn(q)), reference=_period_two_reference, cases=[(q,) for q in qs],
                   name="period_two_point", rtol=1e-7, atol=1e-10,
                   hint="p ↦ p − 2q tanh p sends p to −p exactly when tanh(p)/p = 1/q; for q > 1 that "
                        "equation has one positive root: bisect between a tiny p and a large one")
    p = float(fn(1.5))
    image = p - 3.0 * np.tanh(p)
    check("period_two_point (the orbit)", abs(image + p) < 1e-7,
          detail=f"at q = 1.5: p* = {p:.6f} maps to {image:.6f} = −p*, and back: a period-2 orbit ±p*")


def effective_learning_rate(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(lr, beta)`` returns the step heavy ball takes per unit of a constant gradient,
    in the limit of many steps: η/(1 − β)."""
    __tracebackhide__ = True

    def reference(lr: float, beta: float) -> float:
        step = 0.0  # the velocity under a unit gradient, Δ ← βΔ − η, run to its fixed point
        for _ in range(20_000):
            step = beta * step - lr
        return -step

    cases = [(0.1, 0.9), (0.5, 0.0), (0.02, 0.99), (1.0, 0.5), (0.3, 0.7)]
    check_function(lambda lr, beta: float(fn(lr, beta)), reference=reference, cases=cases,
                   name="effective_learning_rate", rtol=1e-9, atol=1e-12,
                   hint="each gradient is added to the velocity once and then multiplied by β at every "
                        "later step: sum the geometric series η(1 + β + β² + …)")


def heavy_ball_threshold(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(lr, beta)`` returns the largest curvature λ for which heavy ball with rate
    ``lr`` and momentum ``beta`` converges on λw²/2: 2(1 + β)/η."""
    __tracebackhide__ = True

    from ..optim.momentum import heavy_ball_matrix  # heavy ball's 2x2 map (same spectrum as eq. 1's)

    def radius(lam: float, lr: float, beta: float) -> float:
        return float(np.max(np.abs(np.linalg.eigvals(heavy_ball_matrix(lam, lr, beta)))))

    def reference(lr: float, beta: float) -> float:
        # the spectral radius crosses 1 where an eigenvalue passes through −1: bisect for it
        hi = 2 * (1 + beta) / lr * 1.5
        return brentq(lambda lam: radius(lam, lr, beta) - 1 - 1e-15, 1e-9, hi, xtol=1e-14, rtol=1e-15)

    cases = [(0.1, 0.9), (0.5, 0.0), (0.05, 0.99), (1.0, 0.5), (0.2, 0.7)]
    check_function(lambda lr, beta: float(fn(lr, beta)), reference=reference, cases=cases,
                   name="heavy_ball_threshold", rtol=1e-6, atol=1e-9,
                   hint="write w_{t+1} = (1 + β − ηλ) w_t − β w_{t−1} as a 2x2 matrix on (w_t, w_{t−1}); "
                        "at the threshold one eigenvalue is −1: put z = −1 into z² − (1 + β − ηλ) z + β = 0")
