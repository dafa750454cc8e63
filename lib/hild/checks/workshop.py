"""Checks for the exercises of three Workshop-phenomena chapters: one-step feature learning,
stochastic collapse and SAM's low-rank features. (The part's other chapters: ``workshop2``.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..models.representation import feature_rank, neuron_collapse
from ..models.two_layer import TwoLayer
from . import check_function

__all__ = ["one_step_W", "spike_overlap", "log_drift", "effective_width", "sam_step", "n_components"]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------ one-step feature learning
def one_step_W(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(W, a, X, y, eta)`` is W after one GD step on the mean squared error of
    ``f(x) = aᵀtanh(Wx)/√N`` (second layer frozen)."""
    __tracebackhide__ = True

    def reference(W, a, X, y, eta):
        net = TwoLayer(W, a, activation="tanh", scale=1 / np.sqrt(len(a)))
        return W - eta * net.gradients(X, y, params=("W",))["W"]

    cases = []
    for seed, (N, d, n, eta) in enumerate([(4, 3, 5, 1.0), (8, 5, 12, 3.0), (16, 6, 10, 40.0)]):
        r = _rng(seed)
        cases.append((r.standard_normal((N, d)) / np.sqrt(d), r.choice([-1.0, 1.0], N) / np.sqrt(N),
                      r.standard_normal((n, d)), r.standard_normal(n), eta))
    check_function(fn, reference=reference, cases=cases, rtol=1e-9, atol=1e-12,
                   hint="r = f(X) − y; ∇_W L = (2/(n√N)) [(r aᵀ) ⊙ (1 − tanh²(XWᵀ))]ᵀ X; W₁ = W − η ∇_W L")


def spike_overlap(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(W, beta)`` is |⟨v₁, β/‖β‖⟩| for v₁ the top right singular vector of W."""
    __tracebackhide__ = True

    def reference(W, beta):
        v1 = np.linalg.svd(W)[2][0]
        return abs(v1 @ beta) / np.linalg.norm(beta)

    cases = []
    for seed, (N, d, spike) in enumerate([(6, 4, 0.0), (20, 10, 5.0), (30, 8, 50.0)]):
        r = _rng(10 + seed)
        beta = r.standard_normal(d)
        W = r.standard_normal((N, d)) / np.sqrt(d) + spike * np.outer(r.standard_normal(N) / np.sqrt(N), beta)
        cases.append((W, 3.0 * beta))  # β not normalised: the overlap is a cosine
    check_function(fn, reference=reference, cases=cases, rtol=1e-9, atol=1e-12,
                   hint="np.linalg.svd(W) returns U, S, Vᵀ: the top right singular vector is Vᵀ[0]; "
                        "normalise β and take the absolute value (a singular vector's sign is arbitrary)")


# ------------------------------------------------------------------------ stochastic collapse
def log_drift(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(L_prime, sigma, theta)`` is the Itô drift of log|θ| for dθ = −L′(θ)dt + σ(θ)dW."""
    __tracebackhide__ = True

    def reference(L_prime, sigma, theta):
        return -L_prime(theta) / theta - sigma(theta) ** 2 / (2 * theta**2)

    quartic = (lambda t: t**3 - 1.5 * t, lambda t: 2.0 * t)         # the quartic well, ζ = 2
    other = (lambda t: np.sinh(t) - 0.5 * t, lambda t: 0.7 * np.sin(t))
    cases = [(*quartic, 0.3), (*quartic, -1.2), (*quartic, 1e-4), (*other, 0.8), (*other, -0.05)]
    check_function(fn, reference=reference, cases=cases, rtol=1e-9, atol=1e-12,
                   hint="Itô: d log|θ| = dθ/θ − (dθ)²/(2θ²) with (dθ)² = σ(θ)² dt")


def effective_width(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(W, a, tol)`` is the number of distinct alive neurons (vanished ones removed,
    duplicates counted once)."""
    __tracebackhide__ = True

    def reference(W, a, tol):
        return neuron_collapse(W, a, tol=tol).distinct

    r = _rng(20)
    base_W, base_a = r.standard_normal((6, 3)), r.standard_normal(6)
    # neurons 6-7 copy neurons 0-1 up to 1e-3; neurons 8-10 are zero, 11-12 nearly zero
    W = np.vstack([base_W, base_W[:2] + 1e-3, np.zeros((3, 3)), 1e-3 * r.standard_normal((2, 3))])
    a = np.concatenate([base_a, base_a[:2] + 1e-3, np.zeros(5)])
    cases = [(W, a, 0.05), (W, a, 1e-5), (np.ones((4, 2)), np.ones(4), 0.05),
             (r.standard_normal((5, 4)), r.standard_normal(5), 0.05)]
    check_function(fn, reference=reference, cases=cases, rtol=0, atol=0,
                   hint="neuron j is θ_j = (w_j, a_j); alive if ‖θ_j‖ > tol·max‖θ‖; an alive neuron within "
                        "tol·max‖θ‖ of an earlier kept neuron is a duplicate")


# ------------------------------------------------------------------------ SAM and low-rank features
def sam_step(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(w, grad, lr, rho)`` is one SAM step w − lr·∇L(w + ρ g/‖g‖), g = ∇L(w)."""
    __tracebackhide__ = True

    def reference(w, grad, lr, rho):
        g = grad(w)
        return w - lr * grad(w + rho * g / np.linalg.norm(g))

    r = _rng(30)
    M = r.standard_normal((4, 4))
    A = M @ M.T + np.eye(4)
    quadratic = lambda w: A @ w  # noqa: E731
    wavy = lambda w: np.sin(w) + 0.1 * w**3  # noqa: E731  (∇ of Σ −cos w + w⁴/40)
    cases = [(r.standard_normal(4), quadratic, 0.1, 0.05), (r.standard_normal(4), quadratic, 0.01, 1.0),
             (r.standard_normal(3), wavy, 0.2, 0.3)]
    check_function(fn, reference=reference, cases=cases, rtol=1e-10, atol=1e-12,
                   hint="the gradient that moves w is taken at the perturbed point w + ρ g/‖g‖, not at w")


def n_components(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(features, fraction)`` is the number of principal components explaining at least
    ``fraction`` of the variance of the (centred) features."""
    __tracebackhide__ = True

    def reference(features, fraction):
        return feature_rank(features, fraction)

    r = _rng(40)
    low = r.standard_normal((30, 3)) @ r.standard_normal((3, 10)) + 0.01 * r.standard_normal((30, 10))
    decaying = r.standard_normal((50, 8)) * 2.0 ** -np.arange(8) + 5.0
    cases = [(low, 0.99), (low, 0.9999), (decaying, 0.5), (decaying, 0.9), (decaying, 0.99)]
    check_function(fn, reference=reference, cases=cases, rtol=0, atol=0,
                   hint="centre the columns, take the singular values s, and find the smallest k with "
                        "(s₁² + ... + s_k²) ≥ fraction·Σ s²")
