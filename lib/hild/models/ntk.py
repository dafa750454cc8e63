"""Layers and MLPs in the NTK parameterisation (Jacot et al. 2018; the convention of neural-tangents).

A layer computes ``y = (σ_w/√fan_in)·x Wᵀ + σ_b·b`` with every entry of ``W`` and ``b`` drawn from
N(0, 1). The scale lives in the forward pass, not in the initialisation, so gradient descent with a
width-independent learning rate converges to kernel gradient descent with the infinite-width NTK
as the width grows: the regime of :mod:`hild.ntk`'s analytic kernels.

``NTKMLP([d, n, n, 1], sigma_w=2**0.5)`` is the network whose infinite-width NNGP and NTK kernels
are ``hild.ntk.relu_kernels(x1, x2, depth=2, sigma_w=2**0.5)``; ``NTKRNN(d, n)`` is the Elman RNN
whose kernels are ``hild.ntk.relu_rnn_kernels``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ntk import _per_layer
from .mlp import MLP

__all__ = ["NTKLinear", "NTKMLP", "NTKRNN"]


class NTKLinear(nn.Linear):
    """A linear layer in the NTK parameterisation: ``y = (σ_w/√fan_in) x Wᵀ + σ_b b``, W, b ~ N(0, 1).

    It is an ``nn.Linear`` (so code that looks for linear layers finds it) whose ``weight`` and
    ``bias`` hold the *unscaled* N(0, 1) parameters; :attr:`effective_weight` is the matrix that
    multiplies the input.

    Args:
        in_features, out_features: the widths (fan-in and fan-out).
        sigma_w: weight scale σ_w (``2**0.5`` for the He-scaled ReLU nets of many papers).
        sigma_b: bias scale σ_b; the layer has a bias parameter only when σ_b > 0.
    """

    def __init__(self, in_features: int, out_features: int, *, sigma_w: float = 1.0, sigma_b: float = 0.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        if sigma_w <= 0 or sigma_b < 0:
            raise ValueError(f"need sigma_w > 0 and sigma_b >= 0, got sigma_w={sigma_w}, sigma_b={sigma_b}")
        self.sigma_w = float(sigma_w)
        self.sigma_b = float(sigma_b)
        super().__init__(in_features, out_features, bias=sigma_b > 0, device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.normal_(self.bias)

    @property
    def effective_weight(self) -> torch.Tensor:
        """``(σ_w/√fan_in)·W``: the matrix the input is multiplied with, shape (out, in)."""
        return self.weight * (self.sigma_w / math.sqrt(self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.sigma_b if self.bias is not None else None
        return F.linear(x, self.effective_weight, bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sigma_w={self.sigma_w:g}, sigma_b={self.sigma_b:g}"


class NTKMLP(MLP):
    """An :class:`~hild.models.MLP` whose linear layers are :class:`NTKLinear`.

    ``NTKMLP([64, 1024, 1024, 10], sigma_w=2**0.5)`` maps (B, 64) → (B, 10) with two hidden ReLU
    layers; its infinite-width kernels are ``hild.ntk.relu_kernels(..., depth=2, sigma_w=2**0.5)``.

    Args:
        sizes: input, hidden and output widths.
        activation: as for :class:`~hild.models.MLP`.
        sigma_w: one σ_w for every layer, or one per layer (``len(sizes) - 1`` values).
        sigma_b: one σ_b for every layer, or one per layer; 0 means no bias.
    """

    def __init__(self, sizes: Sequence[int], *, activation: str | type[nn.Module] = "relu",
                 sigma_w: float | Sequence[float] = 1.0, sigma_b: float | Sequence[float] = 0.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__(sizes, activation=activation, bias=False, dtype=dtype)
        n = len(self.sizes) - 1
        sw = _per_layer(sigma_w, n, "sigma_w")
        sb = _per_layer(sigma_b, n, "sigma_b")
        k = 0
        for i, m in enumerate(list(self)):
            if isinstance(m, nn.Linear):
                self[i] = NTKLinear(m.in_features, m.out_features, sigma_w=sw[k], sigma_b=sb[k],
                                    device=device, dtype=dtype)
                k += 1
        if device is not None:
            self.to(device)


class NTKRNN(nn.Module):
    """An Elman RNN in the NTK parameterisation, read out at the last step.

    g_t = (σ_w/√n) W s_{t−1} + (σ_u/√d) U x_t,  s_t = φ(g_t),  s_0 = 0,  f(x) = (σ_v/√n) vᵀ s_T,
    with W (n x n), U (n x d) and v (O x n) drawn from N(0, 1) and the same W at every step.

    Args:
        d_in: input size d per step; width: hidden size n; d_out: outputs O.
        activation: a name from :data:`~hild.models.mlp.ACTIVATIONS`.
        sigma_w, sigma_u, sigma_v: the scales of the recurrent, input and readout weights.

    Input (B, T, d) → output (B, O).
    """

    def __init__(self, d_in: int, width: int, d_out: int = 1, *, activation: str = "relu",
                 sigma_w: float = 1.0, sigma_u: float = 1.0, sigma_v: float = 1.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        from .mlp import ACTIVATIONS

        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
        kw = dict(device=device, dtype=dtype)
        self.inp = NTKLinear(d_in, width, sigma_w=sigma_u, **kw)
        self.rec = NTKLinear(width, width, sigma_w=sigma_w, **kw)
        self.out = NTKLinear(width, d_out, sigma_w=sigma_v, **kw)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(f"NTKRNN takes sequences (B, T, d), got shape {tuple(x.shape)}")
        s = self.act(self.inp(x[:, 0]))  # s_0 = 0, so the first step has no recurrent term
        for t in range(1, x.shape[1]):
            s = self.act(self.rec(s) + self.inp(x[:, t]))
        return self.out(s)
