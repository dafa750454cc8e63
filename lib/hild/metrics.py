"""Metrics of predictive distributions: calibration (NLL, ECE) and diversity of an ensemble.

Every function takes class probabilities (rows summing to one) as NumPy arrays or torch tensors:
``probs`` of shape (N, C) for one predictor, ``samples`` of shape (S, N, C) for S predictors (e.g.
posterior samples of a Bayesian network), and integer ``labels`` of shape (N,).

* :func:`nll`, :func:`accuracy` and :func:`ece` (expected calibration error, equal-width confidence
  bins, Guo et al., ICML 2017) of one predictor, e.g. the ensemble's mean prediction;
* :func:`disagreement` (the fraction of inputs on which two samples' top classes differ, averaged
  over pairs) and :func:`symmetric_kl` (KL(p‖q) + KL(q‖p) averaged over inputs and pairs) of an
  ensemble: how different the samples' functions are;
* :func:`ambiguity`, the official PX-SGMCMC code's diversity measure: the samples' mean NLL minus
  the NLL of their averaged logits (zero when all samples agree).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["nll", "accuracy", "ece", "disagreement", "symmetric_kl", "ambiguity", "ensemble"]

_TINY = 1e-12


def _np(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _check_probs(probs: np.ndarray, ndim: int) -> np.ndarray:
    if probs.ndim != ndim:
        raise ValueError(f"expected probabilities with {ndim} axes, got shape {probs.shape}")
    if not np.allclose(probs.sum(-1), 1.0, atol=1e-4):
        raise ValueError("rows must sum to one: pass probabilities (softmax of the logits), not logits")
    return probs


def ensemble(samples: Any) -> np.ndarray:
    """The ensemble's prediction: the mean of the samples' probabilities, (S, N, C) → (N, C)."""
    return _check_probs(_np(samples), 3).mean(0)


def nll(probs: Any, labels: Any) -> float:
    """Mean negative log-likelihood −log p(y | x) of the true labels (nats)."""
    p = _check_probs(_np(probs), 2)
    y = _np(labels).astype(np.int64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], _TINY, None))))


def accuracy(probs: Any, labels: Any) -> float:
    """Fraction of inputs whose most probable class is the label."""
    p = _check_probs(_np(probs), 2)
    return float(np.mean(p.argmax(1) == _np(labels).astype(np.int64)))


def ece(probs: Any, labels: Any, *, bins: int = 15) -> float:
    """Expected calibration error: Σ_b (n_b/N)·|accuracy_b − confidence_b| over equal-width bins of
    the top-class confidence (Guo et al., 2017)."""
    p = _check_probs(_np(probs), 2)
    y = _np(labels).astype(np.int64)
    conf, pred = p.max(1), p.argmax(1)
    correct = (pred == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        idx = which == b
        if idx.any():
            total += idx.mean() * abs(correct[idx].mean() - conf[idx].mean())
    return float(total)


def _pairs(S: int) -> tuple[np.ndarray, np.ndarray]:
    if S < 2:
        raise ValueError(f"diversity needs at least two samples, got {S}")
    i, j = np.triu_indices(S, k=1)
    return i, j


def disagreement(samples: Any) -> float:
    """Mean over pairs of samples of the fraction of inputs where their top classes differ."""
    s = _check_probs(_np(samples), 3)
    top = s.argmax(-1)  # (S, N)
    i, j = _pairs(len(s))
    return float(np.mean(top[i] != top[j]))


def symmetric_kl(samples: Any) -> float:
    """Mean over pairs of samples and inputs of KL(pᵢ‖pⱼ) + KL(pⱼ‖pᵢ) (nats)."""
    s = np.clip(_check_probs(_np(samples), 3), _TINY, None)
    i, j = _pairs(len(s))
    logs = np.log(s)
    total = 0.0
    for a, b in zip(i, j):  # pairs one at a time: (S², N, C) at once would not fit for big S
        total += float(np.sum((s[a] - s[b]) * (logs[a] - logs[b]), axis=-1).mean())
    return total / len(i)


def ambiguity(logit_samples: Any, labels: Any) -> float:
    """Mean NLL of the samples minus the NLL of their averaged logits (the official code's ens_amb)."""
    z = _np(logit_samples)
    if z.ndim != 3:
        raise ValueError(f"expected logits of shape (S, N, C), got {z.shape}")

    def softmax(a: np.ndarray) -> np.ndarray:
        e = np.exp(a - a.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    each = np.mean([nll(softmax(zs), labels) for zs in z])
    return float(each - nll(softmax(z.mean(0)), labels))
