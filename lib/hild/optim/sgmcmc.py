"""Stochastic-gradient MCMC samplers and the parameter-expanded linear layer.

Samplers of a posterior p(θ | D) ∝ exp(−U(θ)/T), U(θ) = −log p(D | θ) − log p(θ), from stochastic
estimates of ∇U (a mini-batch's negative log-likelihood scaled to the data set, plus the prior):

* :class:`SGLD` (Welling and Teh, ICML 2011): θ ← θ − ε∇U(θ) + √(2εT)·ξ.
* :class:`SGHMC` (Chen, Fox and Guestrin, ICML 2014), in the form of the PX-SGMCMC official code
  (github cs-giung/px-sgmcmc, ``src/sghmc.py``): m ← (1 − εγ)m + ε∇U(θ) + √(2εγT)·ξ, θ ← θ − εm,
  with the friction γ settable per parameter group.

Both follow torch's optimizer convention (``loss.backward(); opt.step()``), ``loss`` being the
estimate of U (not of the mean loss), and ``lr`` being ε.

Kim, Nam, Yun, Yang and Lee, *Parameter Expanded Stochastic Gradient Markov Chain Monte Carlo*
(ICLR 2025) write each weight matrix as a product W = P V Q of a square P (out x out), the layer's
own V (out x in) and a square Q (in x in), P = Q = I at the start, and sample (P, V, Q) instead of W.
The network computes the same function (:meth:`ExpandedLinear.effective` gives the plain layer);
only the sampler's geometry changes: with G = ∂U/∂W, a gradient step of size ε on (P, V, Q) moves W
by a *preconditioned* gradient, to first order

    ΔW ≈ −ε [ (PV)(PV)ᵀ G  +  PPᵀ G QᵀQ  +  G (VQ)ᵀ(VQ) ],

which at P = Q = I is −ε[VVᵀG + G + GVᵀV]: the plain step plus steps along W's own large singular
directions. :func:`expand_linears` turns every ``nn.Linear`` of a model into an
:class:`ExpandedLinear` with the same function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["SGLD", "SGHMC", "ExpandedLinear", "expand_linears", "linear_regression_posterior"]


class _Sampler(torch.optim.Optimizer):
    """A sampler's ``step``: evaluate the closure if given, then update each parameter with a gradient."""

    generator: torch.Generator | None

    def _noise(self, p: torch.Tensor) -> torch.Tensor:
        return torch.randn(p.shape, generator=self.generator, dtype=p.dtype, device=p.device)

    def _update(self, p: torch.Tensor, group: dict) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss


class SGLD(_Sampler):
    """Stochastic gradient Langevin dynamics: θ ← θ − ε∇U + √(2εT)·ξ, ξ ~ N(0, I).

    Args:
        params: parameters or parameter groups.
        lr: the step ε (on U, the posterior energy summed over the data set).
        temperature: T (1 samples the posterior itself; T < 1 a "cold" posterior).
        generator: an optional torch.Generator for the noise (default: the global one).
    """

    def __init__(self, params: Iterable[Any], *, lr: float, temperature: float = 1.0,
                 generator: torch.Generator | None = None):
        if lr <= 0 or temperature < 0:
            raise ValueError(f"need lr > 0 and temperature ≥ 0, got lr={lr}, temperature={temperature}")
        super().__init__(params, dict(lr=lr, temperature=temperature))
        self.generator = generator

    def _update(self, p: torch.Tensor, group: dict) -> None:
        eps, T = group["lr"], group["temperature"]
        p.add_(p.grad, alpha=-eps).add_(self._noise(p), alpha=math.sqrt(2 * eps * T))


class SGHMC(_Sampler):
    """Stochastic gradient Hamiltonian Monte Carlo with friction γ (per group) and temperature T.

    m ← (1 − εγ)·m + ε∇U + √(2εγT)·ξ;  θ ← θ − ε·m   (unit mass; εγ must be at most 1).

    Args:
        params: parameters or parameter groups (a group may set its own ``friction``).
        lr: the step ε; friction: γ; temperature: T.
        generator: an optional torch.Generator for the noise.
    """

    def __init__(self, params: Iterable[Any], *, lr: float, friction: float, temperature: float = 1.0,
                 generator: torch.Generator | None = None):
        if lr <= 0 or friction < 0 or temperature < 0:
            raise ValueError(f"need lr > 0, friction ≥ 0, temperature ≥ 0; got {lr}, {friction}, {temperature}")
        super().__init__(params, dict(lr=lr, friction=friction, temperature=temperature))
        for g in self.param_groups:
            if g["lr"] * g["friction"] > 1:
                raise ValueError(f"lr·friction = {g['lr'] * g['friction']:.3g} > 1: the momentum would flip sign "
                                 f"each step; lower lr or friction")
        self.generator = generator

    def _update(self, p: torch.Tensor, group: dict) -> None:
        eps, gamma, T = group["lr"], group["friction"], group["temperature"]
        m = self.state[p].setdefault("momentum", torch.zeros_like(p))
        m.mul_(1 - eps * gamma).add_(p.grad, alpha=eps).add_(self._noise(p), alpha=math.sqrt(2 * eps * gamma * T))
        p.add_(m, alpha=-eps)


class ExpandedLinear(nn.Module):
    """A linear layer with W = P V Q (PX-SGMCMC): y = P(V Q x + b) = W x + P b.

    P (out x out) and Q (in x in) start at the identity and V, b at the given layer's weight and
    bias, so at the start the layer computes exactly what ``linear`` did. Like the official code,
    the output-side factor also multiplies the bias.

    Args:
        linear: the ``nn.Linear`` to expand (its values are copied).
        expand_in, expand_out: whether to add Q (input side) and P (output side).
    """

    def __init__(self, linear: nn.Linear, *, expand_in: bool = True, expand_out: bool = True):
        super().__init__()
        w = linear.weight.detach()
        self.V = nn.Parameter(w.clone())
        self.bias = nn.Parameter(linear.bias.detach().clone()) if linear.bias is not None else None
        kw = dict(dtype=w.dtype, device=w.device)
        self.P = nn.Parameter(torch.eye(w.shape[0], **kw)) if expand_out else None
        self.Q = nn.Parameter(torch.eye(w.shape[1], **kw)) if expand_in else None

    @property
    def in_features(self) -> int:
        return self.V.shape[1]

    @property
    def out_features(self) -> int:
        return self.V.shape[0]

    def effective(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The plain layer's (W, b) = (P V Q, P b): the function this layer computes."""
        W = self.V
        if self.Q is not None:
            W = W @ self.Q
        b = self.bias
        if self.P is not None:
            W = self.P @ W
            b = self.P @ b if b is not None else None
        return W, b

    def expansion_parameters(self) -> list[nn.Parameter]:
        """P and Q (the parameters the expansion adds)."""
        return [p for p in (self.P, self.Q) if p is not None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        W, b = self.effective()
        return nn.functional.linear(x, W, b)


def expand_linears(model: nn.Module, *, expand_in: bool = True, expand_out: bool = True) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (in place) by an :class:`ExpandedLinear` with the same
    function; returns the model."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, ExpandedLinear(child, expand_in=expand_in, expand_out=expand_out))
        else:
            expand_linears(child, expand_in=expand_in, expand_out=expand_out)
    return model


def linear_regression_posterior(X: np.ndarray, y: np.ndarray, *, prior_var: float,
                                noise_var: float) -> tuple[np.ndarray, np.ndarray]:
    """The exact posterior of Bayesian linear regression, y = Xθ + N(0, σ²), θ ~ N(0, τ²I).

    Returns:
        (mean, covariance): S = (XᵀX/σ² + I/τ²)⁻¹ and m = S Xᵀy/σ².
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    S = np.linalg.inv(X.T @ X / noise_var + np.eye(X.shape[1]) / prior_var)
    return S @ X.T @ y / noise_var, S
