"""Sparse linear regression: Gaussian inputs and an s-sparse teacher, the task of linear diagonal
networks (Woodworth et al., COLT 2020; Phunyaphibarn et al., arXiv 2311.15051v3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SparseRegression", "sparse_regression"]


@dataclass(frozen=True)
class SparseRegression:
    """``y = X w*`` with ``X`` (n, d) i.i.d. N(0, 1) and ``w*`` s-sparse with entries ±``scale``.

    With ``n < d`` the problem is underdetermined: the interpolating minima form an affine set of
    dimension ``d − n``, and which one training reaches is the implicit bias.
    """

    x: torch.Tensor       # (n, d)
    y: torch.Tensor       # (n,)
    w_star: torch.Tensor  # (d,)

    @property
    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y


def sparse_regression(n: int, d: int, *, s: int, scale: float = 1.0, seed: int = 0,
                      dtype: torch.dtype = torch.float64) -> SparseRegression:
    """``n`` noiseless samples of a ``d``-dimensional regression with an ``s``-sparse teacher.

    The support is uniform among the coordinates and the signs are random; everything is drawn
    from NumPy's generator with ``seed``.
    """
    if not 0 < s <= d or n < 1:
        raise ValueError(f"need n ≥ 1 and 0 < s ≤ d, got n={n}, d={d}, s={s}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = np.zeros(d)
    support = rng.choice(d, s, replace=False)
    w[support] = scale * rng.choice([-1.0, 1.0], s)
    as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    return SparseRegression(as_t(x), as_t(x @ w), as_t(w))
