"""Checks for the exercises of the chapters on rank and stability (gradual rank increase, σReparam,
the Slingshot mechanism).

Each check calls the reader's function on a few cases and compares it with an exact answer the
check computes itself: a closed form, the library's implementation (:mod:`hild.rank`,
:mod:`hild.models.attention`), or ``torch.optim.Adam`` run on the same gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import rank
from ..models.attention import entropy_lower_bound
from . import check_function

__all__ = ["numerical_rank", "half_time", "power_iteration_sigma", "extremal_entropy", "adam_update",
           "count_slingshots"]


def numerical_rank(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(svals, rtol)`` counts the singular values above ``rtol`` times the largest."""
    __tracebackhide__ = True
    cases = [
        (np.array([24.0, 16.0, 8.0, 0.004, 0.001]), 0.01),
        (np.array([24.0, 16.0, 8.0, 0.004, 0.001]), 1e-4),
        (np.array([1.0, 0.5, 0.2]), 0.3),
        (np.array([3.0, 1e-9, 0.0]), 0.01),
        (np.array([0.2, 5.0, 0.01]), 0.01),  # not sorted: compare with the largest, not the first
    ]
    check_function(lambda s, r: float(fn(s, r)), reference=lambda s, r: float(rank.numerical_rank(s, rtol=r)),
                   cases=cases, name="numerical_rank", rtol=0, atol=0,
                   hint="count the entries s_k with s_k > rtol · max(s)")


def half_time(fn: Callable[..., Any]) -> None:
    """Exercise: the time at which w = u·v, started at u = v = α, reaches w*/2 under gradient flow
    on ½(uv − w*)²: the logistic solution gives t = log(w*/α² − 1) / (2 w*)."""
    __tracebackhide__ = True

    def reference(alpha: float, w_star: float) -> float:
        return math.log(w_star / alpha**2 - 1) / (2 * w_star)

    cases = [(1e-3, 1.0), (1e-3, 4.0), (1e-6, 4.0), (0.1, 2.0), (1e-2, 0.5)]
    check_function(fn, reference=reference, cases=cases, name="half_time", rtol=1e-8, atol=1e-12,
                   hint="with u = v the product w = u² obeys w' = 2w(w* − w), a logistic equation; "
                        "solve it from w(0) = α² and set w(t) = w*/2")


def _power_sigma(W: np.ndarray, u0: np.ndarray, steps: int) -> float:
    u = u0 / np.linalg.norm(u0)
    v = W @ u
    v = v / np.linalg.norm(v)
    for _ in range(steps):
        v = W @ u
        v /= np.linalg.norm(v)
        u = W.T @ v
        u /= np.linalg.norm(u)
    return float(v @ W @ u)


def power_iteration_sigma(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(W, u0, steps)`` runs ``steps`` power-iteration steps (v ← Wu/‖Wu‖,
    u ← Wᵀv/‖Wᵀv‖) from the unit vector along ``u0`` and returns σ ≈ vᵀWu."""
    __tracebackhide__ = True
    rng = np.random.default_rng(0)
    cases = []
    for steps, shape in ((1, (5, 4)), (3, (6, 6)), (50, (8, 3)), (0, (4, 4))):
        cases.append((rng.standard_normal(shape), rng.standard_normal(shape[1]), steps))
    check_function(lambda W, u0, k: float(fn(W, u0, k)), reference=_power_sigma, cases=cases,
                   name="power_iteration_sigma", rtol=1e-9, atol=1e-12,
                   hint="normalise u0 first; with 0 steps return vᵀWu for v = Wu/‖Wu‖, i.e. ‖W u‖")
    W = cases[2][0]
    exact = float(np.linalg.norm(W, 2))
    approx = _power_sigma(W, cases[2][1], 50)
    print(f"  after 50 steps on an 8 x 3 matrix: σ ≈ {approx:.10f}, exact {exact:.10f}")


def extremal_entropy(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(T, r)``, the entropy of softmax(a) for the logit vector of norm r with one
    entry above T − 1 equal ones (summing to zero), which is Theorem 3.1's bound."""
    __tracebackhide__ = True
    cases = [(2, 1.0), (8, 0.5), (8, 5.0), (64, 3.0), (64, 20.0), (10, 0.0)]
    check_function(lambda T, r: float(fn(T, r)), reference=lambda T, r: float(entropy_lower_bound(r, T)),
                   cases=cases, name="extremal_entropy", rtol=1e-9, atol=1e-12,
                   hint="a = (c, −c/(T−1), ..., −c/(T−1)) has norm c·√(T/(T−1)); solve for c, then "
                        "take −Σ p log p of p = softmax(a)")


def adam_update(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(grads, lr, beta1, beta2, eps)``, the change Adam makes to a scalar parameter
    at the last of the gradients ``grads`` (bias-corrected, as ``torch.optim.Adam``)."""
    __tracebackhide__ = True

    def reference(grads: np.ndarray, lr: float, beta1: float, beta2: float, eps: float) -> float:
        p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
        before = 0.0
        for g in grads:
            before = float(p.detach())
            p.grad = torch.tensor([float(g)], dtype=torch.float64)
            opt.step()
        return float(p.detach()) - before

    cases = [
        (np.array([1.0]), 1e-3, 0.9, 0.999, 1e-8),              # first step: −lr·sign(g)
        (np.array([1.0, 0.5, 0.25]), 1e-3, 0.9, 0.98, 1e-8),
        (np.full(50, 1e-6), 3e-3, 0.9, 0.98, 1e-8),             # tiny gradients, still ~lr-sized steps
        (np.full(20, 1e-9), 3e-3, 0.9, 0.98, 1e-8),             # below eps: now the step shrinks
        (np.array([1.0] * 30 + [1e-4] * 5), 1e-3, 0.9, 0.98, 1e-8),
    ]
    check_function(fn, reference=reference, cases=cases, name="adam_update", rtol=1e-9, atol=1e-15,
                   hint="m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ), "
                        "update −lr·m̂/(√v̂ + eps)")


def count_slingshots(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(steps, loss, norm, window)`` counts Slingshot events as
    :func:`hild.rank.slingshot_events` defines them (1% norm rise, 10x loss spike)."""
    __tracebackhide__ = True
    cases = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        steps = np.arange(0, 6000, 10)
        loss = 1e-6 * np.exp(0.1 * rng.standard_normal(len(steps)))  # noise far below a 10x spike
        norm = 10 + 1e-5 * steps                                      # slow drift far below 1%
        for k in range(6):  # candidates 800 steps apart: a spike, a norm step, both or neither
            i = (400 + 800 * k + 10 * int(rng.integers(0, 10))) // 10
            if rng.uniform() < 0.7:
                loss[i:i + 4] += 10.0 ** rng.uniform(-4, -1) * np.exp(-np.arange(4))
            if rng.uniform() < 0.7:
                norm[i - 3:] *= 1.03
        cases.append((steps, loss, norm, 300))

    def reference(steps, loss, norm, window):
        return float(len(rank.slingshot_events(steps, loss, norm, window=window)))

    check_function(lambda *a: float(fn(*a)), reference=reference, cases=cases, name="count_slingshots",
                   rtol=0, atol=0,
                   hint="slide a window over the records; a hit needs norm[j] > 1.01·norm[i] and "
                        "max(loss[i..j]) > 10·loss[i]; hits whose loss peaks are within one window "
                        "of the previous event's peak are the same event; skip windows past the end")
