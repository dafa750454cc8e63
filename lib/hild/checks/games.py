"""Checks for the exercises of the minimax chapters (Part "Minimax and streaming")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data.games import QuadraticGame
from . import check_function

__all__ = ["alt_gda_radius", "alex_best_extrapolation"]


def _scalar_game(a: float, b: float, c: float) -> QuadraticGame:
    return QuadraticGame(A=[[a]], B=[[b]], C=[[c]], x0=[1.0], y0=[1.0])


def alt_gda_radius(fn: Callable[..., Any]) -> None:
    """Exercise: ρ(M) of Alt-GDA on f = a x²/2 + b x y − c y²/2 with steps α, β."""
    __tracebackhide__ = True

    def reference(a: float, b: float, c: float, alpha: float, beta: float) -> float:
        return _scalar_game(a, b, c).spectral_radius("alt", alpha=alpha, beta=beta)

    cases = [
        (1.0, 1.0, 1.0, 0.5, 0.5),
        (0.1, 1.0, 0.1, 0.9, 0.9),  # complex eigenvalues: ρ = √((1 − αa)(1 − βc))
        (0.5, 0.2, 2.0, 0.3, 0.1),  # real eigenvalues
        (0.0, 1.0, 0.0, 0.5, 0.5),  # bilinear: ρ = 1 exactly
        (1.0, 3.0, 1.0, 0.1, 0.2),
    ]
    check_function(fn, reference=reference, cases=cases, rtol=1e-8, atol=1e-10,
                   hint="Alt-GDA updates x first, then y at the NEW x: the second row of M contains β·b·(first row).")


def alex_best_extrapolation(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(grid)`` returns the γ = δ in ``grid`` that makes Alex-GDA (α = β = 0.5)
    contract fastest on f = xy, and that spectral radius."""
    __tracebackhide__ = True
    g = _scalar_game(0.0, 1.0, 0.0)

    def reference(grid: np.ndarray) -> np.ndarray:
        rho = np.array([g.spectral_radius("alex", alpha=0.5, beta=0.5, gamma=v, delta=v) for v in grid])
        best = int(np.argmin(rho))
        return np.array([grid[best], rho[best]])

    grids = [np.round(np.arange(1.0, 3.0001, 0.1), 1), np.array([1.0, 1.5, 2.0, 2.5]), np.linspace(1.2, 2.2, 6)]
    check_function(lambda grid: np.asarray(fn(grid), dtype=float), reference=reference,
                   cases=[(grid,) for grid in grids], name="alex_best_extrapolation", rtol=1e-7, atol=1e-9,
                   hint="for each γ build the 3x3 matrix acting on (x, y, ỹ), take the largest |eigenvalue|, "
                        "and return (the γ with the smallest one, that value)")
