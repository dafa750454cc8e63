"""Checks for the exercises of two Workshop-phenomena chapters: the marginal value of momentum and
max-margin token selection in attention. (The part's other chapters: ``workshop``.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..optim.att_svm import att_svm_constraints, optimal_tokens, solve_att_svm
from ..optim.momentum import stationary_variance
from . import check_function

__all__ = ["sgd_stationary_variance", "sgdm_stationary_variance", "att_svm_rows", "w_svm_from_p"]


# ------------------------------------------------------------------------------- momentum chapter
def sgd_stationary_variance(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(h, sigma, lr)`` is Var(x_∞) of SGD on f = h x²/2 with gradient noise σξ."""
    __tracebackhide__ = True
    cases = [(1.0, 1.0, 0.01), (2.0, 0.5, 0.3), (0.5, 2.0, 1.0), (4.0, 1.0, 0.45), (1.0, 3.0, 1.9)]
    check_function(lambda h, s, lr: float(fn(h, s, lr)),
                   reference=lambda h, s, lr: stationary_variance(h, s, lr, 0.0), cases=cases,
                   name="sgd_stationary_variance", rtol=1e-9, atol=1e-14,
                   hint="x' = (1 − ηh) x − ησξ; in the stationary state Var(x') = Var(x) = V, so "
                        "V = (1 − ηh)² V + η²σ²: solve for V")


def sgdm_stationary_variance(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(h, sigma, lr, beta)`` is Var(x_∞) of SGDM(γ = lr, β) on f = h x²/2 with noise σξ."""
    __tracebackhide__ = True
    cases = [(1.0, 1.0, 0.002, 0.9), (1.0, 1.0, 0.05, 0.9), (2.0, 0.5, 0.3, 0.5), (1.0, 1.0, 3.0, 0.9),
             (0.5, 2.0, 0.01, 0.99), (3.0, 1.0, 0.2, 0.0)]
    check_function(lambda h, s, lr, b: float(fn(h, s, lr, b)), reference=stationary_variance, cases=cases,
                   name="sgdm_stationary_variance", rtol=1e-7, atol=1e-14,
                   hint="the state s = (x, m) follows s' = M s + b ξ with M = [[1 − γh, −γβ], [h, β]] and "
                        "b = σ(−γ, 1); its covariance solves S = M S Mᵀ + b bᵀ (iterate it, or solve the "
                        "4x4 linear system (I − M⊗M) vec S = vec(b bᵀ)); return S[0, 0]")


# ------------------------------------------------------------------------------ attention chapter
def _sequence_cases() -> list[tuple[np.ndarray, np.ndarray, float]]:
    rng = np.random.default_rng(11)
    cases = []
    for T, d in ((2, 3), (4, 5), (6, 4), (3, 8)):
        cases.append((rng.standard_normal((T, d)), rng.standard_normal(d), float(rng.choice([-1.0, 1.0]))))
    return cases


def att_svm_rows(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(X, v, y)`` is the (T − 1, d) matrix of one sequence's Att-SVM constraint rows
    x_opt − x_t, for the tokens t ≠ opt in their order, where opt maximises the score y·vᵀx_t."""
    __tracebackhide__ = True

    def reference(X: np.ndarray, v: np.ndarray, y: float) -> np.ndarray:
        X3, Y = X[None], np.array([y])
        return att_svm_constraints(X3, optimal_tokens(X3, Y, v))

    check_function(lambda X, v, y: np.asarray(fn(X, v, y), dtype=float), reference=reference,
                   cases=_sequence_cases(), name="att_svm_rows", rtol=1e-12, atol=1e-12,
                   hint="scores = y * (X @ v); opt = argmax; rows = X[opt] − X[t] for every t ≠ opt, "
                        "stacked in the order of t")


def w_svm_from_p(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(p_mm, p)`` is the W-SVM solution W^mm (d x d) when every sequence is read
    through the same query p, given the p-SVM solution p^mm."""
    __tracebackhide__ = True
    rng = np.random.default_rng(5)
    cases, answers = [], {}
    for n, T, d in ((2, 3, 6), (3, 4, 12), (1, 5, 5)):
        X, v, Y = rng.standard_normal((n, T, d)), rng.standard_normal(d), rng.choice([-1.0, 1.0], n)
        opt = optimal_tokens(X, Y, v)
        p = rng.standard_normal(d)
        p_mm = solve_att_svm(X, opt).w
        answers[id(p_mm)] = solve_att_svm(X, opt, queries=p).w  # solved as a d²-dimensional SVM
        cases.append((p_mm, p))
    check_function(lambda p_mm, p: np.asarray(fn(p_mm, p), dtype=float),
                   reference=lambda p_mm, p: answers[id(p_mm)], cases=cases, name="w_svm_from_p",
                   rtol=1e-7, atol=1e-9,
                   hint="the constraints see W only through q = Wp, which must be feasible for the p-SVM; "
                        "among all W with Wp = q the smallest Frobenius norm is q pᵀ/‖p‖²")
