"""Two groups with known moments: the synthetic stream of the fair streaming PCA chapter.

Lee, Cho, Yun and Yun, *Fair Streaming Principal Component Analysis: Statistical and Algorithmic
Viewpoint* (NeurIPS 2023), official code ``synthetic_fair_streaming_pca/fairPCA.py`` (re-implemented
from its description). A sample is a pair (x, s): the sensitive attribute s ~ Bernoulli(p) and
x | s ~ N(μ_s, Σ_s). Everything a fair PCA needs is known in closed form:

* the mean gap f = μ₁ − μ₀, with μ₀ = μ₁ p/(p − 1) so that the overall mean is 0;
* the covariance gap Σ₁ − Σ₀ (rank r: each group has r/2 directions of its own);
* the overall covariance Σ = (1 − p)Σ₀ + pΣ₁ + p(1 − p) f fᵀ.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["TwoGroupGaussian", "two_group_gaussian"]


@dataclass(frozen=True, eq=False)
class TwoGroupGaussian:
    """x | s ~ N(μ_s, Σ_s) with s ~ Bernoulli(p).

    Attributes:
        mu0, mu1: (d,) group means.
        Sigma0, Sigma1: (d, d) group covariances.
        p: P(s = 1).
    """

    mu0: np.ndarray
    mu1: np.ndarray
    Sigma0: np.ndarray
    Sigma1: np.ndarray
    p: float

    def __post_init__(self) -> None:
        if not 0 < self.p < 1:
            raise ValueError(f"p must be in (0, 1), got {self.p}")
        d = len(self.mu0)
        for name, m in (("Sigma0", self.Sigma0), ("Sigma1", self.Sigma1)):
            if np.shape(m) != (d, d) or not np.allclose(m, np.transpose(m)):
                raise ValueError(f"{name} must be a symmetric ({d}, {d}) matrix")
        # square roots for sampling, computed once
        object.__setattr__(self, "_roots", tuple(np.linalg.cholesky(S) for S in (self.Sigma0, self.Sigma1)))

    @property
    def d(self) -> int:
        return len(self.mu0)

    @property
    def mean_gap(self) -> np.ndarray:
        """f = μ₁ − μ₀."""
        return self.mu1 - self.mu0

    @property
    def covariance_gap(self) -> np.ndarray:
        """Σ₁ − Σ₀."""
        return self.Sigma1 - self.Sigma0

    @property
    def second_moment_gap(self) -> np.ndarray:
        """E[xxᵀ | s = 1] − E[xxᵀ | s = 0] = Σ₁ − Σ₀ + μ₁μ₁ᵀ − μ₀μ₀ᵀ."""
        return self.covariance_gap + np.outer(self.mu1, self.mu1) - np.outer(self.mu0, self.mu0)

    @property
    def mean(self) -> np.ndarray:
        return (1 - self.p) * self.mu0 + self.p * self.mu1

    @property
    def covariance(self) -> np.ndarray:
        """Σ = (1 − p)Σ₀ + pΣ₁ + p(1 − p) f fᵀ, the covariance of x (s unobserved)."""
        f = self.mean_gap
        return (1 - self.p) * self.Sigma0 + self.p * self.Sigma1 + self.p * (1 - self.p) * np.outer(f, f)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n samples: x of shape (n, d) and the groups s of shape (n,) (integers 0/1)."""
        s = (rng.uniform(size=n) < self.p).astype(np.int64)
        z = rng.standard_normal((n, self.d))
        x = np.empty((n, self.d))
        for g, (mu, L) in enumerate(zip((self.mu0, self.mu1), self._roots)):  # type: ignore[attr-defined]
            idx = s == g
            x[idx] = mu + z[idx] @ L.T
        return x, s

    def stream(self, chunk: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """An endless stream of (x, s) chunks of ``chunk`` samples each."""
        if chunk < 1:
            raise ValueError(f"chunk must be positive, got {chunk}")
        while True:
            yield self.sample(chunk, rng)


def two_group_gaussian(
    d: int = 100, *, r: int = 10, p: float = 0.5, mu_scale: float = 1.0, eps: float = 0.1,
    max_eig0: float = 2.0, max_eig1: float = 1.0, seed: int = 0,
) -> TwoGroupGaussian:
    """The official synthetic setting: shared directions plus r/2 directions per group.

    With a random orthogonal basis, both groups share its last d − r columns with eigenvalues
    u² (u ~ U(0, 1)) scaled to max min(max_eig0, max_eig1); group 0 adds r/2 directions of its own
    (eigenvalues scaled to max ``max_eig0``), group 1 another r/2 (to max ``max_eig1``); both add
    (eps/2)·I. μ₁ is a random direction of norm ``mu_scale`` and μ₀ = μ₁ p/(p − 1).
    """
    if not 0 <= r < d:
        raise ValueError(f"need 0 ≤ r < d, got r={r}, d={d}")
    rng = np.random.default_rng(seed)
    mu1 = rng.standard_normal(d)
    mu1 *= mu_scale / np.linalg.norm(mu1)
    mu0 = mu1 * p / (p - 1)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    r0 = r // 2
    r1 = r - r0

    def eigs(m: int, top: float) -> np.ndarray:
        u = rng.uniform(size=m) ** 2
        return u / u.max() * top if m else u

    shared = eigs(d - r, min(max_eig0, max_eig1))
    W0 = np.concatenate([basis[:, r:], basis[:, :r0]], axis=1)
    W1 = np.concatenate([basis[:, r:], basis[:, r0:r]], axis=1)
    D0 = np.concatenate([shared, eigs(r0, max_eig0)])
    D1 = np.concatenate([shared, eigs(r1, max_eig1)])
    Sigma0 = (W0 * D0) @ W0.T + eps / 2 * np.eye(d)
    Sigma1 = (W1 * D1) @ W1.T + eps / 2 * np.eye(d)
    return TwoGroupGaussian(mu0=mu0, mu1=mu1, Sigma0=(Sigma0 + Sigma0.T) / 2, Sigma1=(Sigma1 + Sigma1.T) / 2, p=p)
