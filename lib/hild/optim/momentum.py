"""Heavy-ball momentum against plain SGD at the same effective learning rate.

Wang, Malladi, Wang, Lyu and Li, *The Marginal Value of Momentum for Small Learning Rate SGD*
(ICLR 2024), write SGD with momentum (SGDM) as

    g_k = ∇ℓ(x_k; batch_k),    m_{k+1} = β m_k + g_k,    x_{k+1} = x_k − γ m_{k+1},

which is ``torch.optim.SGD(lr=γ, momentum=β)`` (dampening 0, m_0 = 0). A gradient's total effect,
summed over the steps it stays in the buffer, is γ/(1 − β): the **effective learning rate**
η = γ/(1 − β). The paper shows that when η is small and gradient noise dominates, SGDM(γ, β) and
SGD(η) are close in distribution on time scales O(1/η) and O(1/η²); momentum matters only where the
curvature, not the noise, limits the step.

This module holds the exact linear-Gaussian picture behind that statement (a noisy quadratic,
where both methods are linear maps with closed-form stationary variances and stability limits) and
:func:`train_arms`, which trains several optimizers from one initialisation on one batch stream, so
that any difference between their curves comes from the optimizers alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch

from ..train import History, train

__all__ = ["effective_lr", "heavy_ball", "momentum_warmup", "heavy_ball_matrix", "stability_limit",
           "stationary_variance", "train_arms", "relative_gap"]


def effective_lr(lr: float, beta: float) -> float:
    """η = γ/(1 − β): the total step a gradient receives from SGDM(γ, β) over its time in the buffer."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    return lr / (1.0 - beta)


def heavy_ball(params: Iterable[torch.Tensor], *, lr_eff: float, beta: float) -> torch.optim.SGD:
    """SGDM with momentum β and effective learning rate ``lr_eff`` (γ = lr_eff·(1 − β)).

    ``heavy_ball(p, lr_eff=η, beta=0.0)`` is plain SGD with rate η.
    """
    if lr_eff <= 0:
        raise ValueError(f"lr_eff must be positive, got {lr_eff}")
    effective_lr(1.0, beta)  # validates beta
    return torch.optim.SGD(params, lr=lr_eff * (1.0 - beta), momentum=beta)


def momentum_warmup(optimizer: torch.optim.Optimizer, beta: float) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate ramp that SGDM applies implicitly, for an optimizer without momentum.

    Started from an empty buffer, SGDM(γ, β) moves by γ(1 − β^{k+1})/(1 − β)·g at step k under a
    constant gradient g: its effective rate ramps up over about 1/(1 − β) steps. Multiplying SGD's
    rate by 1 − β^{k+1} (this scheduler, stepped once per step) reproduces that ramp exactly, which
    separates what momentum does from the warm-up it brings along.
    """
    effective_lr(1.0, beta)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0 - beta ** (k + 1))


def heavy_ball_matrix(h: float, lr: float, beta: float) -> np.ndarray:
    """The 2x2 map of SGDM(γ = ``lr``, β) on f(x) = h x²/2, acting on the state (x_k, m_k).

    With g = h x: m' = β m + h x and x' = x − γ m' = (1 − γh) x − γβ m.
    """
    return np.array([[1.0 - lr * h, -lr * beta], [h, beta]])


def stability_limit(h: float, beta: float) -> float:
    """The largest raw rate γ for which SGDM(γ, β) is stable on h x²/2: 2(1 + β)/h.

    In effective-rate terms η = γ/(1 − β) the limit is 2(1 + β)/((1 − β)h): 19 times plain GD's 2/h
    at β = 0.9.
    """
    if h <= 0:
        raise ValueError(f"the curvature h must be positive, got {h}")
    effective_lr(1.0, beta)
    return 2.0 * (1.0 + beta) / h


def stationary_variance(h: float, sigma: float, lr: float, beta: float = 0.0) -> float:
    """Var(x_∞) of SGDM(γ = ``lr``, β) on f = h x²/2 with gradient noise g = h x + σ ξ, ξ ~ N(0, 1).

    The closed form (it solves the 2x2 Lyapunov equation of :func:`heavy_ball_matrix`):

        Var = γσ²(1 + β) / (h (1 − β) (2(1 + β) − γh)),

    which at β = 0 is SGD's ησ²/(h(2 − ηh)), and in both cases → ησ²/(2h) as ηh → 0 with
    η = γ/(1 − β): the stationary law of the SDE dX = −hX dt + √η σ dW that both approximate.

    Raises:
        ValueError: if the iteration is unstable (γh ≥ 2(1 + β)), where no stationary law exists.
    """
    if h <= 0 or sigma < 0 or lr <= 0:
        raise ValueError(f"need h > 0, sigma ≥ 0, lr > 0; got h={h}, sigma={sigma}, lr={lr}")
    limit = stability_limit(h, beta)
    if lr >= limit:
        raise ValueError(f"SGDM with lr={lr}, beta={beta} is unstable on curvature h={h} (needs lr < {limit:.4g})")
    return lr * sigma**2 * (1.0 + beta) / (h * (1.0 - beta) * (2.0 * (1.0 + beta) - lr * h))


def train_arms(
    model: torch.nn.Module,
    optimizers: Mapping[str, Callable[[Iterable[torch.Tensor]], Any]],
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    data: Callable[[int], Any],
    *,
    steps: int,
    every: int = 1,
    track: Mapping[str, Callable[[Any], float]] | None = None,
    **train_kwargs: Any,
) -> dict[str, tuple[torch.nn.Module, History]]:
    """Train one copy of ``model`` per optimizer, all from the same weights on the same batches.

    Args:
        model: the initial network (left untouched; each arm trains a deep copy).
        optimizers: name → function params → optimizer (or → (optimizer, scheduler)), e.g.
            ``{"SGDM": lambda p: heavy_ball(p, lr_eff=0.02, beta=0.9),
            "SGD": lambda p: heavy_ball(p, lr_eff=0.02, beta=0.0)}``.
        loss_fn: ``loss_fn(model, batch)`` (see :func:`hild.train.supervised`).
        data: a replayable batch source, step → batch (e.g. :func:`hild.train.batches`), so every arm
            sees the same batch at the same step.
        steps, every, track, train_kwargs: passed to :func:`hild.train.train`.

    Returns:
        name → (trained copy, history).
    """
    if not callable(data):
        raise TypeError("data must be a replayable function step -> batch (hild.train.batches), so that "
                        "every arm sees the same batches")
    out = {}
    for name, make in optimizers.items():
        arm = copy.deepcopy(model)
        made = make(arm.parameters())
        optimizer, scheduler = made if isinstance(made, tuple) else (made, None)
        history = train(arm, loss_fn, data, optimizer=optimizer, scheduler=scheduler, steps=steps, every=every,
                        track=track, desc=name, **train_kwargs)
        out[name] = (arm, history)
    return out


def relative_gap(a: Any, b: Any) -> np.ndarray:
    """|a − b| / min(a, b), elementwise, for two positive curves (e.g. losses at the same steps)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the curves have different shapes {a.shape} and {b.shape}: record them at the same steps")
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("relative_gap needs positive values (losses)")
    return np.abs(a - b) / np.minimum(a, b)
