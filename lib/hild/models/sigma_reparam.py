"""σReparam: every linear layer's weight reparameterised as Ŵ = (γ / σ(W)) W.

Zhai, Likhomanenko, Littwin, Busbridge, Ramapuram, Zhang, Gu and Susskind, *Stabilizing Transformer
Training by Preventing Attention Entropy Collapse* (ICML 2023); written after the description in the
paper and the official PyTorch layer (github apple/ml-sigma-reparam, ``vision/layers.py``):

* σ(W) is the spectral norm of W, estimated by **one** step of power iteration per training forward
  pass, from singular vectors u, v that persist between steps (buffers, no gradient). They start
  at W's exact top singular vectors (an SVD at wrapping time), so σ is exact at step 0 and tracks W
  as it moves.
* σ = vᵀ W u is computed *with* gradient through W (u, v held fixed), so the update sees the
  normalisation, as in the official code.
* γ is one learned scalar per layer, so Ŵ has spectral norm γ exactly once u, v have converged;
  the paper initialises it to 1 (the official code to σ(W₀), which leaves the initial network
  unchanged): ``gamma_init="one"`` or ``"sigma"``.

Wrap one layer with :class:`SigmaReparam` or every ``nn.Linear`` of a model with
:func:`sigma_reparam`::

    model = sigma_reparam(DecoderTransformer(cfg))          # in place; returns the model
    effective_weight(model.head)                            # Ŵ, for measurements
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SigmaReparam", "sigma_reparam", "effective_weight"]


class SigmaReparam(nn.Module):
    """A linear layer computing x Ŵᵀ + b with Ŵ = (γ / σ(W)) W.

    The wrapped layer's ``weight`` and ``bias`` stay its parameters (``layer.linear.weight``), so an
    optimizer built after wrapping trains W, b and γ.

    Args:
        linear: the ``nn.Linear`` to reparameterise.
        gamma_init: ``"one"`` (the paper), ``"sigma"`` (σ(W₀): the wrapped layer starts as the
            plain one), or a number.
        n_power_iterations: power-iteration steps per training forward pass (1 in the paper).

    Attributes:
        gamma: the learned scale (a parameter of shape (1,)).
        u, v: buffers, the current estimates of W's top right and left singular vectors.
        sigma: buffer, the last estimate of σ(W).
    """

    def __init__(self, linear: nn.Linear, *, gamma_init: Literal["one", "sigma"] | float = "one",
                 n_power_iterations: int = 1):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"SigmaReparam wraps an nn.Linear, got {type(linear).__name__}")
        if n_power_iterations < 0:
            raise ValueError(f"n_power_iterations must be non-negative, got {n_power_iterations}")
        self.linear = linear
        self.n_power_iterations = n_power_iterations
        w = linear.weight.detach()
        with torch.no_grad():
            _, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
            u0 = vh[0].to(w.dtype)  # right singular vector (input side), (in,)
        self.register_buffer("u", u0.clone())
        self.register_buffer("v", F.normalize(w @ u0, dim=0))  # left singular vector, (out,)
        self.register_buffer("sigma", s[:1].to(w.dtype).clone())
        if gamma_init == "one":
            g = torch.ones(1, dtype=w.dtype)
        elif gamma_init == "sigma":
            g = s[:1].to(w.dtype).clone()
        elif isinstance(gamma_init, (int, float)):
            g = torch.full((1,), float(gamma_init), dtype=w.dtype)
        else:
            raise ValueError(f"gamma_init={gamma_init!r}: use 'one', 'sigma' or a number")
        self.gamma = nn.Parameter(g.to(w.device))

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def power_iteration(self, steps: int = 1) -> None:
        """Refine u, v by ``steps`` power-iteration steps on the current W (no gradient)."""
        with torch.no_grad():
            w = self.linear.weight
            u, v = self.u, self.v
            for _ in range(steps):
                v = F.normalize(w @ u, dim=0)
                u = F.normalize(w.T @ v, dim=0)
            self.u.copy_(u)
            self.v.copy_(v)

    def weight_hat(self) -> torch.Tensor:
        """Ŵ = (γ / σ) W with σ = vᵀ W u (differentiable in W and γ; u, v fixed)."""
        w = self.linear.weight
        sigma = torch.einsum("o,oi,i->", self.v, w, self.u)
        with torch.no_grad():
            self.sigma.copy_(sigma.detach().reshape(1))
        return (self.gamma / sigma) * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.n_power_iterations:
            self.power_iteration(self.n_power_iterations)
        return F.linear(x, self.weight_hat(), self.linear.bias)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma.item():.4g}, sigma={self.sigma.item():.4g}"


def sigma_reparam(model: nn.Module, *, gamma_init: Literal["one", "sigma"] | float = "one",
                  n_power_iterations: int = 1) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``model`` (and ``model`` itself) by :class:`SigmaReparam`.

    Works in place and returns the model, so build the optimizer afterwards. Layers already
    wrapped are left alone.
    """
    if isinstance(model, nn.Linear):
        return SigmaReparam(model, gamma_init=gamma_init, n_power_iterations=n_power_iterations)
    for name, child in list(model.named_children()):
        if isinstance(child, SigmaReparam):
            continue
        if isinstance(child, nn.Linear):
            setattr(model, name, SigmaReparam(child, gamma_init=gamma_init,
                                              n_power_iterations=n_power_iterations))
        else:
            sigma_reparam(child, gamma_init=gamma_init, n_power_iterations=n_power_iterations)
    return model


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight a layer applies: Ŵ for :class:`SigmaReparam`, W for ``nn.Linear`` (detached)."""
    with torch.no_grad():
        if isinstance(layer, SigmaReparam):
            return layer.weight_hat().detach()
        if isinstance(layer, nn.Linear):
            return layer.weight.detach()
    raise TypeError(f"expected nn.Linear or SigmaReparam, got {type(layer).__name__}")
