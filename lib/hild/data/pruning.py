"""Dataset pruning by training dynamics: scores, the DUAL Beta sampler, and a pruned-training driver.

Scores are computed from a *prediction history*: after each epoch t = 1..T of an ordinary training
run, the predicted probabilities of every training example (see :func:`record_dynamics`).

* **DUAL** (Cho, Shin, Kang and Yun, ICML 2025; official code ``exp_cifar/importance_evaluation.py``):
  with p_t(x) the predicted probability of x's *labelled* class after epoch t and windows of J
  epochs sliding over t = 1..T,

      DUAL(x) = mean over windows k of  10·std(p_k..p_{k+J−1}) · (1 − mean(p_k..p_{k+J−1})),

  (std with Bessel's correction, as torch's default): prediction *uncertainty* (the spread of p
  over a window) times example *difficulty* (one minus its mean), measured early (T = 30 epochs in
  the paper, J = 10). The constant 10 is the official code's and changes no ranking.
* **EL2N** (Paul et al., NeurIPS 2021): ‖softmax(f(x)) − onehot(y)‖₂ at one epoch.
* **forgetting** (Toneva et al., ICLR 2019): how often an example goes from correctly to wrongly
  classified between consecutive epochs (as in the DUAL code, never-learned examples count 0).

Higher scores mean more important. **Beta sampling** (DUAL, official ``data_subset.py``) keeps
(1 − r)·n examples for a pruning ratio r, without replacement, with probability proportional to
Beta(p̄(x); a, b)·DUAL(x), where p̄ is the mean of p_t over the T epochs, b = 15(1 − p̄_anchor)(1 − r^c_D),
a = 16 − b, and p̄_anchor is the mean p̄ of the ten highest-scoring examples. At high r the Beta
density moves towards easy examples (p̄ near 1), which keeps a tiny subset learnable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import classify

__all__ = ["Dynamics", "dual_scores", "el2n_scores", "forgetting_scores", "beta_parameters", "beta_weights",
           "beta_sample", "top_k", "random_subset", "keep_count", "record_dynamics"]


@dataclass(frozen=True)
class Dynamics:
    """A prediction history: ``probs[t, i]`` is the softmax output for training example i after
    epoch t + 1, shape (T, n, C); ``y`` (n,) are the labels it was trained on."""

    probs: torch.Tensor
    y: torch.Tensor

    def target_probs(self) -> torch.Tensor:
        """(T, n): the probability of each example's labelled class after each epoch (p_t(x))."""
        T = self.probs.shape[0]
        return self.probs.gather(2, self.y.to(self.probs.device).expand(T, -1)[..., None]).squeeze(-1)

    def correct(self) -> torch.Tensor:
        """(T, n) bool: classified correctly after each epoch."""
        return self.probs.argmax(-1) == self.y.to(self.probs.device)


def _as_history(p: torch.Tensor, what: str) -> torch.Tensor:
    p = torch.as_tensor(p)
    if p.ndim != 2:
        raise ValueError(f"{what} must have shape (T epochs, n examples), got {tuple(p.shape)}")
    return p


def dual_scores(target_probs: torch.Tensor, *, window: int = 10) -> torch.Tensor:
    """DUAL scores (module docstring) from p_t(x) of shape (T, n); returns (n,).

    Raises:
        ValueError: when fewer epochs than ``window`` (at least 2) were recorded.
    """
    p = _as_history(target_probs, "target_probs").to(torch.float64)
    T = p.shape[0]
    if not 2 <= window <= T:
        raise ValueError(f"window must be between 2 and the number of epochs T = {T}, got {window}")
    windows = p.unfold(0, window, 1)  # (T − J + 1, n, J): every window of J consecutive epochs
    return (10 * windows.std(dim=-1) * (1 - windows.mean(dim=-1))).mean(dim=0)


def el2n_scores(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """EL2N: ‖p(x) − onehot(y)‖₂ from probabilities of shape (n, C); returns (n,)."""
    probs = torch.as_tensor(probs)
    if probs.ndim != 2 or len(y) != probs.shape[0]:
        raise ValueError(f"expected probs (n, C) and labels (n,), got {tuple(probs.shape)} and {tuple(y.shape)}")
    return (probs - F.one_hot(torch.as_tensor(y), probs.shape[1]).to(probs.dtype)).norm(dim=1)


def forgetting_scores(correct: torch.Tensor) -> torch.Tensor:
    """Forgetting events per example from a (T, n) bool history of correct classification."""
    c = _as_history(correct, "correct").to(torch.bool)
    return (c[:-1] & ~c[1:]).sum(dim=0)


def keep_count(n: int, prune_ratio: float) -> int:
    """How many of n examples a pruning ratio r keeps: (1 − r)·n rounded half up, at least one (the
    official code truncates, which loses an example when (1 − 0.9)·1400 evaluates to 139.999...)."""
    if not 0 <= prune_ratio < 1:
        raise ValueError(f"prune_ratio must be in [0, 1), got {prune_ratio}")
    return max(1, math.floor((1 - prune_ratio) * n + 0.5))


def beta_parameters(mean_probs: torch.Tensor, scores: torch.Tensor, prune_ratio: float, *, c_d: float = 4.0,
                    anchor: int = 10) -> tuple[float, float]:
    """(a, b) of the sampler's Beta density: b = 15(1 − p̄_anchor)(1 − r^c_D), a = 16 − b, with
    p̄_anchor the mean p̄ of the ``anchor`` highest-scoring examples."""
    if len(mean_probs) != len(scores):
        raise ValueError(f"mean_probs has {len(mean_probs)} entries, scores {len(scores)}")
    top = torch.as_tensor(scores).argsort()[-anchor:]
    p_anchor = float(torch.as_tensor(mean_probs, dtype=torch.float64)[top].mean())
    b = 15 * (1 - p_anchor) * (1 - prune_ratio**c_d)
    return 16 - b, b


def beta_weights(mean_probs: torch.Tensor, scores: torch.Tensor, prune_ratio: float, *, c_d: float = 4.0
                 ) -> torch.Tensor:
    """Unnormalised sampling weights Beta(p̄; a, b)·score, shape (n,). p̄ is clipped to
    [1e-6, 1 − 1e-6] so that the density stays finite at p̄ = 0 or 1."""
    a, b = beta_parameters(mean_probs, scores, prune_ratio, c_d=c_d)
    p = torch.as_tensor(mean_probs, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    log_pdf = (a - 1) * p.log() + (b - 1) * (-p).log1p() - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    return log_pdf.exp() * torch.as_tensor(scores, dtype=torch.float64)


def beta_sample(target_probs: torch.Tensor, scores: torch.Tensor, prune_ratio: float, *, c_d: float = 4.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """DUAL's pruning-ratio-adaptive Beta sampling: the indices of the kept examples.

    Args:
        target_probs: (T, n) p_t(x), the history the scores came from (p̄ is its mean over T).
        scores: (n,) the DUAL scores.
        prune_ratio: the fraction r of examples to prune.
        c_d: the exponent c_D of the schedule (4 in the paper for CIFAR).
        generator: for a reproducible draw.

    Returns:
        (keep_count(n, r),) int64 indices, without repetition. If fewer examples than that have a
        positive weight (a score of exactly zero), all positive-weight examples are kept and the
        rest is filled uniformly at random from the others.
    """
    p = _as_history(target_probs, "target_probs")
    n = p.shape[1]
    k = keep_count(n, prune_ratio)
    w = beta_weights(p.to(torch.float64).mean(dim=0), scores, prune_ratio, c_d=c_d)
    positive = int((w > 0).sum())
    if positive >= k:
        return torch.multinomial(w, k, replacement=False, generator=generator)
    chosen = torch.nonzero(w > 0).flatten()
    rest = torch.nonzero(w <= 0).flatten()
    extra = rest[torch.randperm(len(rest), generator=generator)[: k - positive]]
    return torch.cat([chosen, extra])


def top_k(scores: torch.Tensor, prune_ratio: float) -> torch.Tensor:
    """Keep the highest-scoring (1 − r)·n examples (the usual score-based pruning)."""
    scores = torch.as_tensor(scores)
    return scores.argsort(descending=True)[: keep_count(len(scores), prune_ratio)]


def random_subset(n: int, prune_ratio: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep (1 − r)·n examples chosen uniformly at random (the baseline every score must beat)."""
    return torch.randperm(n, generator=generator)[: keep_count(n, prune_ratio)]


def record_dynamics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int = 32,
                    lr: float = 1e-3, seed: int = 0, **fit_kwargs) -> Dynamics:
    """Train ``model`` as :func:`hild.classify.fit` does (same keywords) and record its softmax outputs on all of
    ``x`` after every epoch: the history DUAL, EL2N and forgetting scores are computed from."""
    probs: list[torch.Tensor] = []

    def snapshot(_: int) -> None:
        probs.append(classify.predict_probs(model, x).cpu())

    classify.fit(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, on_epoch=snapshot, **fit_kwargs)
    if not probs:  # a run capped below one epoch (smoke test): record the state it reached
        snapshot(0)
    return Dynamics(torch.stack(probs), y.cpu())
