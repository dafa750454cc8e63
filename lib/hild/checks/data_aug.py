"""Checks for the exercises of the chapters of Part "Data, augmentation and features": Cutout and
CutMix on patches, DASH's per-neuron shrinking, and DUAL pruning scores and sampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..data import augment, pruning
from ..optim.dash import neuron_cosines
from . import check_function

__all__ = ["cutout_patches", "cutmix_labels", "neuron_cosine", "dash_layer", "dual_score", "beta_probabilities"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _patch_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    cases = []
    for seed, (B, P, d) in enumerate([(1, 4, 3), (5, 4, 6), (3, 7, 2)]):
        g = _gen(seed)
        x = torch.randn(B, P, d, generator=g, dtype=torch.float64)
        cut = torch.rand(B, P, generator=g) < 0.5
        cases.append((x, cut))
    return cases


def cutout_patches(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(x, cut)`` zeroes the patches of ``x`` (B, P, d) where ``cut`` (B, P) is True."""
    __tracebackhide__ = True
    check_function(fn, reference=augment.apply_cutout, cases=_patch_cases(), name="cutout_patches", rtol=0, atol=0,
                   hint="keep = ~cut has shape (B, P); give it a last axis of length one and multiply, or "
                        "index x[cut] = 0 on a copy of x")


def cutmix_labels(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(y_a, y_b, mask)`` returns λ·y_a + (1 − λ)·y_b, λ = fraction of own patches."""
    __tracebackhide__ = True
    cases = []
    for seed, (B, P) in enumerate([(4, 4), (6, 5), (3, 9)]):
        g = _gen(10 + seed)
        y_a = torch.where(torch.rand(B, generator=g) < 0.5, 1.0, -1.0).double()
        y_b = torch.where(torch.rand(B, generator=g) < 0.5, 1.0, -1.0).double()
        cases.append((y_a, y_b, torch.rand(B, P, generator=g) < 0.4))
    eye = torch.eye(3, dtype=torch.float64)
    cases.append((eye[[0, 1, 2]], eye[[2, 2, 0]], torch.tensor([[True, False, False, False]] * 3)))
    check_function(fn, reference=augment.mix_labels, cases=cases, name="cutmix_labels", rtol=1e-12, atol=1e-12,
                   hint="mask is True where the patch came from the partner: λ = 1 − mask.float().mean(dim=1); "
                        "for one-hot labels λ needs a trailing axis")


def neuron_cosine(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(w, g)``: cosine per row of a Linear weight (out, in) → (out,), and per (output,
    input) channel pair of a convolution weight (out, in, k, k) → (out, in)."""
    __tracebackhide__ = True
    cases = []
    for seed, shape in enumerate([(5, 3), (4, 10), (2, 3, 3, 3), (3, 1, 2, 2)]):
        g = _gen(20 + seed)
        cases.append((torch.randn(shape, generator=g, dtype=torch.float64),
                      torch.randn(shape, generator=g, dtype=torch.float64)))
    w, _ = cases[0]
    cases.append((w, 2.5 * w))  # aligned rows: cosine exactly one
    check_function(fn, reference=neuron_cosines, cases=cases, name="neuron_cosine", rtol=1e-9, atol=1e-12,
                   hint="flatten everything after the first two axes of a convolution weight, then take "
                        "⟨w, g⟩ / (‖w‖·‖g‖) along the last axis")


def dash_layer(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(w, neg_grad, lam)`` returns the Linear weight after DASH: each row times
    clamp(cos(w_i, −∇_i), λ, 1)."""
    __tracebackhide__ = True

    def reference(w: torch.Tensor, neg_grad: torch.Tensor, lam: float) -> torch.Tensor:
        return w * neuron_cosines(w, neg_grad).clamp(lam, 1.0)[:, None]

    cases = []
    for seed, (shape, lam) in enumerate([((6, 4), 0.3), ((3, 8), 0.7), ((5, 2), 0.1)]):
        g = _gen(30 + seed)
        w = torch.randn(shape, generator=g, dtype=torch.float64)
        neg = torch.randn(shape, generator=g, dtype=torch.float64)
        neg[0] = 3 * w[0]  # one row perfectly aligned: it must come back untouched
        cases.append((w, neg, lam))
    check_function(fn, reference=reference, cases=cases, name="dash_layer", rtol=1e-9, atol=1e-12,
                   hint="the factor of row i is cos(w_i, −∇_i) clipped to [λ, 1]: an aligned row keeps its "
                        "length, an orthogonal or opposed one shrinks to λ times its length")


def _history(T: int, n: int, seed: int) -> torch.Tensor:
    g = _gen(seed)
    return torch.rand(T, n, generator=g, dtype=torch.float64).cumsum(0) / T  # rising, like training


def dual_score(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(p, window)`` returns the DUAL score of every example from a (T, n) history."""
    __tracebackhide__ = True

    def reference(p: torch.Tensor, window: int) -> torch.Tensor:
        return pruning.dual_scores(p, window=window)

    cases = [(_history(30, 7, 40), 10), (_history(12, 5, 41), 4), (_history(5, 3, 42), 5)]
    check_function(fn, reference=reference, cases=cases, name="dual_score", rtol=1e-9, atol=1e-12,
                   hint="slide a window over the epochs (p[k:k + window] for k = 0..T − window), take "
                        "10 · std (with Bessel's correction, torch's default) · (1 − mean) per example, "
                        "then average over the windows")


def beta_probabilities(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(p, scores, prune_ratio)`` returns each example's probability of being drawn
    first by DUAL's Beta sampling (weights Beta(p̄; a, b)·score, normalised to sum to one), c_D = 4."""
    __tracebackhide__ = True

    def reference(p: torch.Tensor, scores: torch.Tensor, prune_ratio: float) -> torch.Tensor:
        w = pruning.beta_weights(p.mean(dim=0), scores, prune_ratio, c_d=4.0)
        return w / w.sum()

    cases = []
    for seed, (T, n, r) in enumerate([(30, 40, 0.5), (30, 40, 0.9), (10, 25, 0.7)]):
        p = _history(T, n, 50 + seed).clamp(0.01, 0.99)
        cases.append((p, pruning.dual_scores(p, window=min(10, T)), r))
    check_function(fn, reference=reference, cases=cases, name="beta_probabilities", rtol=1e-7, atol=1e-12,
                   hint="p̄ = p.mean(0); the anchor is the mean p̄ of the ten highest scores; b = 15(1 − anchor)"
                        "(1 − r⁴), a = 16 − b; the Beta density is p̄^(a−1)(1 − p̄)^(b−1)/B(a, b) "
                        "(torch.lgamma gives log B)")
