"""Sharpness-aware minimisation (Foret, Kleiner, Mobahi and Neyshabur, ICLR 2021) around any optimizer.

SAM minimises ``max_{‖ε‖ ≤ ρ} L(w + ε)`` with one ascent step: on the same mini-batch,

    g = ∇L(w);   ε = ρ g/‖g‖ (normalised)  or  ε = ρ g (unnormalised);   w ← base_step(w, ∇L(w + ε)).

``‖g‖`` is the norm over all parameters together. The unnormalised variant is the one Andriushchenko
and Flammarion (ICML 2022) analyse; the SAM paper of Andriushchenko et al. (NeurIPS 2023) uses the
normalised one. Usage, with a closure that computes the loss and calls ``backward()``::

    opt = optim.SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.05)
    def closure():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss
    opt.step(closure)          # two gradient evaluations; one when rho == 0

``rho`` lives in each parameter group (``opt.param_groups[0]["rho"] = 0`` switches SAM off, as the
paper's two-layer experiments do half-way through training).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["SAM"]


class SAM(torch.optim.Optimizer):
    """SAM wrapped around a base optimizer (SGD, SGD with momentum, Adam, ...).

    Args:
        params: the parameters (or parameter groups, each may set its own ``rho``).
        base_optimizer: the optimizer class that takes the step, e.g. ``torch.optim.SGD``.
        rho: the radius ρ of the ascent step (0: the base optimizer alone).
        normalize: ε = ρ g/‖g‖ (True, Foret et al.) or ε = ρ g (False).
        base_kwargs: passed to the base optimizer (``lr``, ``momentum``, ...).
    """

    def __init__(self, params: Iterable[Any], base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD, *,
                 rho: float, normalize: bool = True, **base_kwargs: Any):
        if rho < 0:
            raise ValueError(f"rho must be non-negative, got {rho}")
        super().__init__(params, dict(rho=rho, **base_kwargs))
        self.normalize = bool(normalize)
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups  # one set of groups, shared
        self.defaults.update(self.base_optimizer.defaults)

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> Any:  # type: ignore[override]
        """One SAM step; ``closure`` computes the loss and calls ``backward()``.

        Returns:
            The loss at the current point ``w`` (before the step).
        """
        if closure is None:
            raise ValueError("SAM needs a closure that computes the loss and calls backward(): "
                             "it evaluates the gradient twice per step")
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        if not self._params() or all(group["rho"] == 0 for group in self.param_groups):
            self.base_optimizer.step()
            return loss
        norm = 1.0
        if self.normalize:
            norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad)
                                                               for p in self._params()])))
            if norm == 0.0:  # a zero gradient: nowhere to ascend, take the base step
                self.base_optimizer.step()
                return loss
        shifts: list[tuple[torch.Tensor, torch.Tensor]] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and group["rho"] != 0:
                    e = p.grad * (group["rho"] / norm)
                    p.add_(e)
                    shifts.append((p, e))
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            closure()
        for p, e in shifts:
            p.sub_(e)
        self.base_optimizer.step()
        return loss
