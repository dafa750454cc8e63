"""Polyak's heavy ball as the catapult papers write it, a linear warm-up, and catapult sizes.

Phunyaphibarn, Lee, Wang, Zhang and Yun (*Gradient Descent with Polyak's Momentum Finds Flatter
Minima via Large Catapults*, arXiv 2311.15051v3, eq. 1) run

    w_{t+1} = w_t − η_t ∇L(w_t) + β (w_t − w_{t−1}),

:class:`PolyakHeavyBall`. With a constant η it is ``torch.optim.SGD(lr=η, momentum=β)`` (which
keeps ``m_t = −(w_t − w_{t−1})/η``); under a changing η_t the two differ, because torch's form
rescales the previous step by η_t/η_{t−1}. On a quadratic ``h w²/2`` it is a linear map with
the same eigenvalues as :func:`hild.optim.momentum.heavy_ball_matrix`, stable exactly for
``η h < 2(1 + β)`` (:func:`hild.optim.momentum.stability_limit`); a gradient's total effect,
summed over the steps it stays in the velocity, is ``η/(1 − β)``
(:func:`hild.optim.momentum.effective_lr`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PolyakHeavyBall", "linear_warmup", "Catapult", "catapult"]


class PolyakHeavyBall(torch.optim.Optimizer):
    """``w ← w − η_t ∇L(w) + β (w − w_prev)``; ``beta=0`` is plain gradient descent.

    The state holds the last step ``w_t − w_{t−1}`` (zero at the start, so the first step is a
    plain gradient step). ``lr`` may change between steps (a scheduler): the new rate multiplies
    only the new gradient.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, beta: float = 0.9):
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        super().__init__(params, {"lr": lr, "beta": beta})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (torch's signature)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta = group["lr"], group["beta"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "step" not in state:
                    state["step"] = torch.zeros_like(p)
                delta = state["step"]
                delta.mul_(beta).add_(p.grad, alpha=-lr)
                p.add_(delta)
        return loss


def linear_warmup(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """η_t = η · min(1, (t + 1)/steps): a linear ramp from η/steps to η over ``steps`` steps.

    Step it once after each optimizer step (:func:`hild.train.train` does); ``steps=0`` or 1 is
    no warm-up.
    """
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    T = max(int(steps), 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: min(1.0, (t + 1) / T))


@dataclass(frozen=True)
class Catapult:
    """The largest rise of a loss curve above its running minimum.

    Attributes:
        rise: ``max_t L_t / min_{s ≤ t} L_s`` (1 when the loss never goes up).
        peak_step: the step ``t`` of that maximum (index into the curve).
        low_step: the step ``s`` of the minimum it rose from.
        low, peak: the two loss values.
    """

    rise: float
    peak_step: int
    low_step: int
    low: float
    peak: float


def catapult(losses: Sequence[float] | np.ndarray, *, floor: float = 0.0) -> Catapult:
    """Find the catapult of a loss curve: its largest jump above the lowest loss reached before.

    Args:
        losses: the loss at every step.
        floor: losses below it count as ``floor`` (a converged run's last digits of rounding
            should not count as a rise).
    """
    L = np.asarray(losses, dtype=float)
    if L.ndim != 1 or len(L) == 0:
        raise ValueError("losses must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(L)):
        raise ValueError("the loss curve has NaN or inf (the run diverged): cut it before the divergence")
    clipped = np.maximum(L, floor) if floor > 0 else L
    low = np.minimum.accumulate(clipped)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(low > 0, clipped / low, 1.0)
    t = int(np.argmax(ratio))
    s = int(np.argmin(clipped[: t + 1]))
    return Catapult(float(ratio[t]), t, s, float(clipped[s]), float(clipped[t]))
