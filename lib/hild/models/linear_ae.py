"""An autoencoder with a deep linear bottleneck: greedy rank learning of its latent codes.

Sun, Thilak, Littwin, Saremi and Susskind (*Implicit Greedy Rank Learning in Autoencoders via
Overparameterized Linear Networks*, arXiv 2107.01301) put a product of L square linear maps
between an autoencoder's encoder and its decoder::

    codes  c = W_L ⋯ W_2 W_1 E x        (E: latent × d, each W_l: latent × latent)
    output x̂ = D c                      (D: d × latent)

and show that gradient descent then learns the latent codes one singular value at a time, leaving
the directions the data does not need at (almost) zero. Everything here is linear, so the
end-to-end map is one matrix, ``D W_L ⋯ W_1 E`` (:meth:`LinearBottleneckAE.end_to_end`).

Two knobs control the bottleneck's dynamics, and both are here:

* the initialisation: each W_l = c·Q_l with Q_l a random orthogonal matrix
  (:func:`orthogonal_factors`), so the product starts with all singular values equal to c^L;
* the learning rate. With orthogonal (hence balanced) factors the product P = W_L ⋯ W_1 moves,
  to first order, by η Σ_l (W_L⋯W_{l+1})(⋯)ᵀ G (⋯)ᵀ(W_{l−1}⋯W_1) (Arora, Cohen and Hazan, ICML
  2018): along a direction in which P has singular value σ that is the gradient times
  η · L · σ^{2−2/L}. :func:`depth_adjusted_lr` divides η by L · σ_ref^{2−2/L}, so that a direction
  at the reference size σ_ref moves at the same rate whatever the depth.

A bottleneck of depth 0 is a plain linear autoencoder (codes ``c = E x``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LinearBottleneckAE", "orthogonal_factors", "depth_adjusted_lr", "end_to_end_rate"]


def orthogonal_factors(depth: int, width: int, *, scale: float = 1.0,
                       generator: torch.Generator | None = None,
                       dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """``depth`` matrices ``scale · Q_l`` with ``Q_l`` Haar-random orthogonal (width × width).

    The product of the factors has every singular value equal to ``scale ** depth``.
    """
    if depth < 0 or width < 1 or not scale > 0:
        raise ValueError(f"need depth ≥ 0, width ≥ 1 and scale > 0, got {depth}, {width}, {scale}")
    out = []
    for _ in range(depth):
        a = torch.randn(width, width, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))  # the sign fix makes Q Haar-distributed
        out.append((scale * q).to(dtype))
    return out


def end_to_end_rate(depth: int, sigma: float) -> float:
    """How much faster than a single matrix the product of ``depth`` balanced factors moves along a
    direction of singular value ``sigma``, to first order: ``depth · sigma^(2 − 2/depth)``."""
    if depth < 1 or sigma < 0:
        raise ValueError(f"need depth ≥ 1 and sigma ≥ 0, got {depth}, {sigma}")
    return depth * sigma ** (2 - 2 / depth)


def depth_adjusted_lr(lr: float, depth: int, *, reference: float = 1.0) -> float:
    """The learning rate that makes a depth-``depth`` bottleneck move like a single matrix at
    singular value ``reference``: ``lr / (depth · reference^(2 − 2/depth))``; ``lr`` for depth ≤ 1."""
    if depth <= 1:
        return float(lr)
    return float(lr) / end_to_end_rate(depth, reference)


class LinearBottleneckAE(nn.Module):
    """x → D W_L ⋯ W_1 E x: a linear autoencoder with ``depth`` square maps at its bottleneck.

    Args:
        d: data dimension.
        latent: width of the codes (and of every bottleneck matrix).
        depth: number of bottleneck matrices L (0: a plain linear autoencoder).
        scale: each bottleneck matrix starts as ``scale`` times a random orthogonal matrix.
        generator: random numbers for the initialisation (torch's global ones if None).
        dtype: parameter dtype.

    The encoder E (latent × d) and decoder D (d × latent) start with orthonormal rows / columns.
    """

    def __init__(self, d: int, latent: int, depth: int, *, scale: float = 0.1,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        if min(d, latent) < 1 or depth < 0:
            raise ValueError(f"need d, latent ≥ 1 and depth ≥ 0, got {d}, {latent}, {depth}")
        self.d, self.latent, self.depth, self.scale = d, latent, depth, scale

        def semi_orthogonal(rows: int, cols: int) -> torch.Tensor:
            a = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
            q, r = torch.linalg.qr(a)
            q = q * torch.sign(torch.diagonal(r))
            return (q if rows >= cols else q.T).to(dtype)

        self.encoder = nn.Parameter(semi_orthogonal(latent, d))
        self.decoder = nn.Parameter(semi_orthogonal(d, latent))
        self.bottleneck = nn.ParameterList(
            nn.Parameter(w) for w in orthogonal_factors(depth, latent, scale=scale,
                                                        generator=generator, dtype=dtype))

    def product(self) -> torch.Tensor:
        """P = W_L ⋯ W_1 (latent × latent); the identity for depth 0."""
        p = torch.eye(self.latent, dtype=self.encoder.dtype, device=self.encoder.device)
        for w in self.bottleneck:
            p = w @ p
        return p

    def end_to_end(self) -> torch.Tensor:
        """The whole map D W_L ⋯ W_1 E as one (d × d) matrix."""
        return self.decoder @ self.product() @ self.encoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The latent codes (n, latent) after the bottleneck for inputs (n, d)."""
        c = x @ self.encoder.T
        for w in self.bottleneck:
            c = c @ w.T
        return c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions (n, d) of inputs (n, d)."""
        return self.encode(x) @ self.decoder.T

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Squared reconstruction error per example, ``mean_i ‖x̂_i − x_i‖²``."""
        return ((self(x) - x) ** 2).sum(-1).mean()

    @torch.no_grad()
    def code_singular_values(self, x: torch.Tensor) -> torch.Tensor:
        """Singular values of the code matrix (n × latent) divided by √n, largest first: the
        standard deviations of the codes along their principal directions."""
        return torch.linalg.svdvals(self.encode(x).double()) / math.sqrt(x.shape[0])
