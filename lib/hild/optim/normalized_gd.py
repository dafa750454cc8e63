"""Normalised gradient descent: every step has the same length, whatever the gradient's size.

    θ ← θ − lr · ∇L(θ) / ‖∇L(θ)‖          (one global norm over all parameters)

The max-margin attention papers train this way (the official code of Tarzanagh et al., NeurIPS
2023, normalises the gradient of p and v at each iteration): with an exponentially-tailed loss the
gradient decays like e^{−margin·‖θ‖}, so plain GD slows to a crawl while the normalised step keeps
‖θ‖ growing linearly and makes the directional convergence visible in a few thousand steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["NormalizedGD"]


class NormalizedGD(torch.optim.Optimizer):
    """θ ← θ − lr·g/‖g‖ with g the gradient of all parameters together.

    The norm is computed after dividing by the largest entry, so gradients as small as 1e-300
    (a saturated softmax) still give a unit direction instead of 0/0. A gradient that is exactly
    zero (or has underflowed to zero) leaves the parameters unchanged; ``last_norm`` then reads 0.

    Args:
        params: the parameters (one group).
        lr: the length of every step, in parameter units.

    Attributes:
        last_norm: ‖g‖ of the last step (a float; 0.0 if the gradient vanished).
    """

    def __init__(self, params: Iterable[torch.Tensor], *, lr: float):
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        super().__init__(params, defaults={"lr": lr})
        if len(self.param_groups) != 1:
            raise ValueError("NormalizedGD takes one parameter group: the norm is over all parameters together")
        self.last_norm = float("nan")

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        grads = [p.grad for p in group["params"] if p.grad is not None]
        if not grads:
            self.last_norm = 0.0
            return loss
        scale = max(float(g.abs().max()) for g in grads)
        if scale == 0.0 or not torch.isfinite(torch.tensor(scale)):
            self.last_norm = 0.0 if scale == 0.0 else float("nan")
            if scale != 0.0:
                raise FloatingPointError(f"the gradient is not finite (largest entry {scale}): lower lr or check the loss")
            return loss
        rel = torch.sqrt(sum(((g / scale) ** 2).sum() for g in grads))
        norm = rel * scale
        self.last_norm = float(norm)
        for p in group["params"]:
            if p.grad is not None:
                p.add_(p.grad / scale / rel, alpha=-group["lr"])
        return loss
