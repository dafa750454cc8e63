"""Checks for the exercises of the collegial-ensembles and infinite-width-hypernetworks chapters.

Each check calls the reader's function on a few cases and compares it with an exact answer that
the check computes itself (a dense Jacobian product, a brute-force search, the library's
hyperkernel and primary network).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..models.ensemble import VarianceModel, primal_optimum
from ..models.hypernet import Hypernetwork, hyperkernel
from . import check_function

__all__ = ["ensemble_ntk", "primal_design", "primary_forward", "one_layer_hyperkernel"]

f64 = torch.float64


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=f64, generator=torch.Generator().manual_seed(seed))


def ensemble_ntk(fn: Callable[..., Any]) -> None:
    """Exercise: the NTK of F = (1/√m) Σ_j f_j from the members' Jacobians J (m, N, P): (1/m) Σ_j J_j J_jᵀ."""
    __tracebackhide__ = True

    def reference(J: torch.Tensor) -> torch.Tensor:
        m = J.shape[0]
        return sum(J[j] @ J[j].T for j in range(m)) / m

    shapes = [(1, 4, 6), (3, 5, 7), (16, 3, 2), (2, 1, 9)]
    cases = [(_randn(m, n, p, seed=seed),) for seed, (m, n, p) in enumerate(shapes)]
    check_function(lambda J: fn(J.clone()), reference=reference, cases=cases, name="ensemble_ntk", rtol=1e-10,
                   atol=1e-12,
                   hint="member j's parameters only reach F through f_j/√m, so ∂F/∂θ_j = J_j/√m: the "
                        "kernel is Σ_j (J_j/√m)(J_j/√m)ᵀ")


def primal_design(fn: Callable[..., Any]) -> None:
    """Exercise: the (n, m) minimising β(e^{α/n} − 1)/m among ensembles of [d, n x depth, 1] MLPs
    within a parameter budget (the paper's primal problem), as a tuple (n, m)."""
    __tracebackhide__ = True

    def reference(budget: int, d: int, depth: int, alpha: float, beta: float) -> tuple[int, int]:
        n, m, _ = primal_optimum(budget, d, depth, VarianceModel(alpha=alpha, beta=beta))
        return n, m

    cases = [(8768, 8, 3, 9.6, 1.5), (133376, 8, 3, 9.6, 1.5), (100, 1, 1, 2.0, 1.0), (5000, 4, 2, 4.0, 3.0),
             (2000, 10, 1, 30.0, 0.5)]
    check_function(lambda *a: tuple(int(v) for v in fn(*a)), reference=reference, cases=cases,
                   name="primal_design", rtol=0, atol=0,
                   hint="a member [d, n, ..., n, 1] has d·n + (depth − 1)·n² + n weights; for every width n "
                        "that fits, take the largest m = budget // (weights per member) and keep the n with "
                        "the smallest β(e^{α/n} − 1)/m")


def primary_forward(fn: Callable[..., Any]) -> None:
    """Exercise: g(z_i; w_i) for a one-hidden-layer primary network with per-example flat weights
    w (B, n_g·d_z + n_g): W¹ = w[:, :n_g·d_z] as (n_g, d_z) rows, then the output weights."""
    __tracebackhide__ = True

    def reference(z: torch.Tensor, w: torch.Tensor, width: int) -> torch.Tensor:
        net = Hypernetwork(1, z.shape[1], 1, width, dtype=z.dtype)
        return net.primary(z, w)[:, 0]

    cases = []
    for seed, (b, d, n) in enumerate([(5, 3, 4), (1, 2, 7), (8, 4, 16)]):
        cases.append((_randn(b, d, seed=10 + seed), _randn(b, n * d + n, seed=20 + seed), n))
    check_function(lambda z, w, n: fn(z.clone(), w.clone(), n).reshape(-1), reference=reference, cases=cases,
                   name="primary_forward", rtol=1e-10, atol=1e-12,
                   hint="per example: u = W¹ z/√d_z, g = vᵀ relu(u)/√n_g; with a batch, reshape to (B, n_g, d_z) "
                        "and use torch.einsum('bij,bj->bi', W, z)")


def one_layer_hyperkernel(fn: Callable[..., Any]) -> None:
    """Exercise: the hyperkernel for one hidden ReLU layer in f and in g (σ = 1, no biases)."""
    __tracebackhide__ = True

    def reference(x1, z1, x2, z2):
        return hyperkernel(x1, z1, x2, z2).ntk

    cases = []
    for seed, (n1, n2, dx, dz) in enumerate([(4, 4, 3, 2), (5, 3, 4, 4), (2, 6, 1, 3)]):
        cases.append((_randn(n1, dx, seed=30 + seed), _randn(n1, dz, seed=40 + seed),
                      _randn(n2, dx, seed=50 + seed), _randn(n2, dz, seed=60 + seed)))
    x = _randn(3, 3, seed=70)
    z = _randn(3, 2, seed=71)
    cases.append((x, z, x, z))  # equal inputs: the diagonal, where cos φ = 1
    check_function(lambda *a: fn(*(t.clone() for t in a)), reference=reference, cases=cases,
                   name="one_layer_hyperkernel", rtol=1e-9, atol=1e-12,
                   hint="Σ^f(x, x') multiplies the first-layer covariance q of g AND the output weights' "
                        "covariance in the backward term: Θ^h = Θ^f·[k1(q) + Σ^f·(zᵀz'/d_z)·k0(q)], with "
                        "Σ^f(x, x) = ‖x‖²/(2 d_x) in the variances of q")
