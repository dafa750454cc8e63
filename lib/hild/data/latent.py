"""Data with a planted latent rank: x = A z + noise, the data of the greedy-rank autoencoder chapter.

Sun, Thilak, Littwin, Saremi and Susskind (arXiv 2107.01301) test whether an autoencoder finds the
true rank of its data's latent codes on synthetic data of exactly this kind::

    z ~ N(0, diag(s)²) in R^r,   x = A z + noise · ε,   A ∈ R^{d×r} with orthonormal columns,
    ε ~ N(0, I_d)

The data covariance is A diag(s²) Aᵀ + noise² I: r directions of standard deviation
√(s_k² + noise²) and d − r directions of standard deviation ``noise``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["LatentSubspace", "latent_subspace"]


@dataclass(frozen=True, eq=False)
class LatentSubspace:
    """Samples from a planted r-dimensional latent subspace.

    Attributes:
        x: (n, d) data.
        z: (n, r) latent codes that made it.
        basis: (d, r) the orthonormal A.
        scales: (r,) the latent standard deviations s.
        noise: the standard deviation of the isotropic noise.
    """

    x: torch.Tensor
    z: torch.Tensor
    basis: torch.Tensor
    scales: torch.Tensor
    noise: float

    @property
    def rank(self) -> int:
        """The latent rank r."""
        return int(self.basis.shape[1])

    def population_std(self) -> torch.Tensor:
        """(d,) standard deviations of the data along its principal directions, largest first:
        √(s_k² + noise²) for k ≤ r, then ``noise``."""
        d = self.basis.shape[0]
        s = torch.sqrt(self.scales.double() ** 2 + self.noise**2)
        return torch.cat([torch.sort(s, descending=True).values,
                          torch.full((d - self.rank,), float(self.noise), dtype=torch.float64)])


def latent_subspace(n: int, d: int, scales: Sequence[float], *, noise: float = 0.1, seed: int = 0,
                    dtype: torch.dtype = torch.float32) -> LatentSubspace:
    """n samples x = A z + noise·ε with r = len(scales) latent directions.

    Args:
        n, d: samples and data dimension.
        scales: the latent standard deviations s_1, ..., s_r (positive).
        noise: standard deviation of the isotropic Gaussian noise (≥ 0).
        seed: seeds A, z and ε (a ``torch.Generator``, independent of the global seed).
    """
    r = len(scales)
    if not 1 <= r <= d:
        raise ValueError(f"need 1 ≤ len(scales) ≤ d = {d}, got {r}")
    if any(s <= 0 for s in scales) or noise < 0:
        raise ValueError(f"scales must be positive and noise ≥ 0, got {tuple(scales)}, {noise}")
    g = torch.Generator().manual_seed(seed)
    a, r_ = torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64))
    a = a * torch.sign(torch.diagonal(r_))
    s = torch.tensor([float(v) for v in scales], dtype=torch.float64)
    z = torch.randn(n, r, generator=g, dtype=torch.float64) * s
    x = z @ a.T + noise * torch.randn(n, d, generator=g, dtype=torch.float64)
    return LatentSubspace(x=x.to(dtype), z=z.to(dtype), basis=a.to(dtype), scales=s.to(dtype),
                          noise=float(noise))
