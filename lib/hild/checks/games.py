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


# ------------------------------------------------------------------------------- SEG-FFA chapter
def flip_flop_order(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(perm)`` returns the flip-flop order of one epoch, τ₁ … τₙ τₙ … τ₁."""
    __tracebackhide__ = True
    from ..optim.seg import flip_flop

    rng = np.random.default_rng(11)
    cases = [(np.array([0]),), (np.array([1, 0]),), (np.array([2, 0, 3, 1]),), (rng.permutation(9),)]
    check_function(lambda perm: np.asarray(fn(perm), dtype=float), reference=flip_flop, cases=cases,
                   name="flip_flop_order", rtol=0, atol=0,
                   hint="visit the permutation forwards, then the SAME permutation backwards: "
                        "the order reads the same from both ends")


def ffa_epoch(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(F, z, perm, lr)`` runs one SEG-FFA epoch (flip-flop order, extrapolation lr/2,
    update lr, then the anchoring average) on a 2-D finite-sum game and returns the new z."""
    __tracebackhide__ = True
    from ..data.games import FiniteSumGame
    from ..optim.seg import pass_order, run_seg

    # three components of a 2-D game f_i(x, y) = ½ q_i x² + b_i x y − ½ c_i y² − t_iᵀ(x, y)
    Q = np.array([[[2.0, 1.0], [1.0, -1.0]], [[-1.0, 0.5], [0.5, 1.0]], [[0.5, 2.0], [2.0, -0.5]]])
    game = FiniteSumGame(Q=Q, t=np.array([[1.0, 0.0], [0.0, -1.0], [0.5, 0.5]]), dx=1, z0=np.array([1.0, -2.0]))
    F = lambda i, z: game.operator(np.asarray(z, dtype=float), int(i))  # noqa: E731
    seed_of, cases = {}, []
    for seed, lr in ((0, 0.1), (3, 0.3), (5, 0.05), (8, 0.2)):
        perm = pass_order("ff", game.n, np.random.default_rng(seed))[: game.n]  # the order run_seg draws
        seed_of[tuple(perm.tolist())] = seed
        cases.append((perm, lr))

    def reference(perm: np.ndarray, lr: float) -> np.ndarray:
        return run_seg(game, sampling="ff", anchor=True, lr=lr, passes=1, seed=seed_of[tuple(perm.tolist())]).z

    check_function(lambda perm, lr: np.asarray(fn(F, game.z0.copy(), perm, lr), dtype=float),
                   reference=reference, cases=cases, name="ffa_epoch", rtol=1e-10, atol=1e-12,
                   hint="for i in the flip-flop order: w = z − (lr/2)·F(i, z), z = z − lr·F(i, w); "
                        "at the end return (z + z_start)/2")


__all__ += ["flip_flop_order", "ffa_epoch"]


# ---------------------------------------------------------------------- fair streaming PCA chapter
def mean_matching_projection(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(f)`` returns P = I − ffᵀ/‖f‖², the projection that removes the mean gap f."""
    __tracebackhide__ = True
    rng = np.random.default_rng(5)
    cases = [(np.array([1.0, 0.0]),), (np.array([3.0, 4.0]),), (rng.standard_normal(6),),
             (rng.standard_normal(10) * 7,)]
    check_function(fn, reference=lambda f: np.eye(len(f)) - np.outer(f, f) / (f @ f), cases=cases,
                   name="mean_matching_projection", rtol=1e-9, atol=1e-12,
                   hint="divide by ‖f‖² (not ‖f‖): P = I − f fᵀ / (fᵀf), so that P f = 0")


def fair_power_step(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(V, X, P)`` returns an orthonormal basis of span(P Σ̂ P V), Σ̂ = XᵀX/b; compared
    as the projector onto that span, so column signs and order do not matter."""
    __tracebackhide__ = True
    rng = np.random.default_rng(8)
    cases = []
    for d, k, b in ((4, 1, 10), (6, 2, 50), (12, 3, 200)):
        V, _ = np.linalg.qr(rng.standard_normal((d, k)))
        f = rng.standard_normal(d)
        P = np.eye(d) - np.outer(f, f) / (f @ f)
        cases.append((V, rng.standard_normal((b, d)) @ np.diag(np.linspace(3, 0.5, d)), P))

    def reference(V: np.ndarray, X: np.ndarray, P: np.ndarray) -> np.ndarray:
        Q, _ = np.linalg.qr(P @ (X.T @ X / len(X)) @ P @ V)
        return Q @ Q.T

    def projector(V: np.ndarray, X: np.ndarray, P: np.ndarray) -> np.ndarray:
        Q = np.asarray(fn(V, X, P), dtype=float)
        if Q.shape != V.shape:
            raise ValueError(f"the new basis should have V's shape {V.shape}, got {Q.shape}")
        return Q @ Q.T

    check_function(projector, reference=reference, cases=cases, name="fair_power_step", rtol=1e-7, atol=1e-9,
                   hint="project, multiply by the block's covariance, project again, then orthonormalise "
                        "with np.linalg.qr (keep Q)")


__all__ += ["mean_matching_projection", "fair_power_step"]


# ----------------------------------------------------------------------------- PX-SGMCMC chapter
def sgld_step(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(theta, grad, lr, temperature, noise)`` returns θ − ε∇U + √(2εT)·ξ."""
    __tracebackhide__ = True
    rng = np.random.default_rng(3)
    cases = [((rng.standard_normal(d), rng.standard_normal(d), lr, T, rng.standard_normal(d)), {})
             for d, lr, T in ((1, 0.1, 1.0), (3, 0.01, 1.0), (5, 1e-3, 0.1), (4, 0.05, 0.0))]
    check_function(fn, reference=lambda th, g, lr, T, xi: th - lr * g + np.sqrt(2 * lr * T) * xi,
                   cases=cases, name="sgld_step", rtol=1e-10, atol=1e-12,
                   hint="the noise's scale is √(2·lr·T): it shrinks only as the square root of the step")


def expanded_linear(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(x, P, V, Q, b)`` computes the expanded layer y = x (PVQ)ᵀ + P b for a batch x."""
    __tracebackhide__ = True
    import torch

    from ..optim.sgmcmc import ExpandedLinear

    rng = np.random.default_rng(4)
    cases = []
    for n, d_in, d_out in ((1, 2, 2), (5, 3, 4), (7, 6, 2)):
        cases.append((rng.standard_normal((n, d_in)), rng.standard_normal((d_out, d_out)),
                      rng.standard_normal((d_out, d_in)), rng.standard_normal((d_in, d_in)),
                      rng.standard_normal(d_out)))

    def reference(x: np.ndarray, P: np.ndarray, V: np.ndarray, Q: np.ndarray, b: np.ndarray) -> np.ndarray:
        layer = ExpandedLinear(torch.nn.Linear(V.shape[1], V.shape[0], dtype=torch.float64))
        with torch.no_grad():
            for name, value in (("P", P), ("V", V), ("Q", Q), ("bias", b)):
                getattr(layer, name).copy_(torch.as_tensor(value))
            return layer(torch.as_tensor(x)).numpy()

    check_function(fn, reference=reference, cases=cases, name="expanded_linear", rtol=1e-9, atol=1e-10,
                   hint="W = P @ V @ Q has V's shape (out, in); the bias goes through P too: y = x Wᵀ + P b")


__all__ += ["sgld_step", "expanded_linear"]
