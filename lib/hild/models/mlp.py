"""Multilayer perceptrons, the workhorse of the ci-scale chapters."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "linear": nn.Identity,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


class MLP(nn.Sequential):
    """Linear layers of the given sizes with an activation between them (none after the last).

    ``MLP([64, 32, 32, 10], activation="tanh")`` maps (B, 64) → (B, 10). ``model.linears`` lists
    the ``nn.Linear`` layers (for per-layer metrics), ``model.features(x)`` is the input to the
    last layer (the penultimate representation).

    Args:
        sizes: input, hidden and output widths (at least two).
        activation: a name from :data:`ACTIVATIONS` or an ``nn.Module`` class.
        bias: whether the linear layers have biases.
        dtype: parameter dtype (float32 by default; float64 for exact curvature checks).
    """

    def __init__(self, sizes: Sequence[int], *, activation: str | type[nn.Module] = "relu", bias: bool = True,
                 dtype: torch.dtype | None = None):
        sizes = list(sizes)
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ValueError(f"sizes must be at least two positive widths, got {sizes}")
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
            act = ACTIVATIONS[activation]
        else:
            act = activation
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, bias=bias, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(act())
        super().__init__(*layers)
        self.sizes = tuple(sizes)

    @property
    def linears(self) -> list[nn.Linear]:
        return [m for m in self if isinstance(m, nn.Linear)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation: everything but the last linear layer."""
        for m in list(self)[:-1]:
            x = m(x)
        return x
