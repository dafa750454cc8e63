"""Matrix-free estimates of a symmetric operator's trace and spectral density.

* :func:`trace`: Hutchinson's estimator ``tr A ≈ mean zᵀ A z`` over random sign vectors, and
  Hutch++ (Meyer, Musco, Musco, Woodruff, SOSA 2021), which takes the trace of the top of the
  spectrum exactly on a sketched subspace and uses Hutchinson only on the rest: its error falls
  as ``1/m`` in the number of products instead of ``1/√m``.
* :func:`spectral_density`: stochastic Lanczos quadrature (SLQ; Ghorbani, Krishnan and Xiao,
  ICML 2019; Yao et al., PyHessian 2020). ``m`` Lanczos steps from a random unit vector ``v``
  give a Gauss quadrature rule ``(θ_j, τ_j)`` with ``Σ_j τ_j f(θ_j) = vᵀ f(A) v`` exactly for
  polynomials ``f`` of degree ``< 2m``; averaging over probes and broadening each node with a
  Gaussian gives the density of eigenvalues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from .operator import SymmetricOperator, as_operator

__all__ = ["TraceEstimate", "trace", "SpectralDensity", "spectral_density", "lanczos_quadrature"]


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate.

    Attributes:
        value: the estimate of ``tr A``.
        std_error: its standard error, estimated from the spread of the random part
            (``nan`` when there are too few probes to tell).
        hvps: products used.
        method: ``"hutch++"`` or ``"hutchinson"``.
    """

    value: float
    std_error: float
    hvps: int
    method: str

    def __float__(self) -> float:
        return self.value


def _signs(n: int, cols: int, gen: torch.Generator, op: SymmetricOperator) -> torch.Tensor:
    z = torch.randint(0, 2, (n, cols), generator=gen, device=op.device)
    return (2 * z - 1).to(op.dtype)


def _quad_forms(op: SymmetricOperator, Z: torch.Tensor, block: int) -> torch.Tensor:
    """``z_iᵀ A z_i`` for each column, multiplying ``block`` columns at a time."""
    out = []
    for j in range(0, Z.shape[1], block):
        Zj = Z[:, j : j + block]
        out.append((Zj * op.matmat(Zj)).sum(0))
    return torch.cat(out).double().cpu() if out else torch.empty(0, dtype=torch.float64)


def trace(A: Any, *, method: Literal["hutch++", "hutchinson"] = "hutch++", n_hvps: int = 60, seed: int = 0,
          block: int = 20) -> TraceEstimate:
    """Estimate ``tr A`` with ``n_hvps`` products.

    Args:
        A: any symmetric operator (see :func:`~hild.hessian.as_operator`).
        method: ``"hutch++"`` spends a third of the products on a sketch ``A S``, a third on the
            exact trace of ``A`` on the sketch's span, and the rest on Hutchinson for the
            remainder; ``"hutchinson"`` spends all on random sign vectors.
        n_hvps: products to spend (at least 3 for Hutch++).
        seed: seeds the random sign vectors (on the operator's device).
        block: products per operator call (memory vs. speed; the estimate does not depend on it).
    """
    op = as_operator(A)
    n = op.size
    gen = torch.Generator(device=op.device).manual_seed(int(seed))
    if method == "hutchinson":
        if n_hvps < 1:
            raise ValueError(f"Hutchinson needs n_hvps ≥ 1, got {n_hvps}")
        q = _quad_forms(op, _signs(n, n_hvps, gen, op), block)
        se = float(q.std(unbiased=True) / math.sqrt(n_hvps)) if n_hvps > 1 else math.nan
        return TraceEstimate(float(q.mean()), se, n_hvps, method)
    if method != "hutch++":
        raise ValueError(f"method must be 'hutch++' or 'hutchinson', got {method!r}")
    if n_hvps < 3:
        raise ValueError(f"Hutch++ needs n_hvps ≥ 3 (sketch, projection, residual), got {n_hvps}")
    s = min(n_hvps // 3, n)
    S = _signs(n, s, gen, op)
    AS = torch.cat([op.matmat(S[:, j : j + block]) for j in range(0, s, block)], dim=1)
    Qm, _ = torch.linalg.qr(AS)
    AQ = torch.cat([op.matmat(Qm[:, j : j + block]) for j in range(0, Qm.shape[1], block)], dim=1)
    top = float((Qm * AQ).sum().double())
    r = n_hvps - 2 * s
    if r < 1 or s == n:
        return TraceEstimate(top, 0.0 if s == n else math.nan, 2 * s, method)
    G = _signs(n, r, gen, op)
    G = G - Qm @ (Qm.T @ G)  # Hutchinson on (I − QQᵀ) A (I − QQᵀ)
    q = _quad_forms(op, G, block)
    se = float(q.std(unbiased=True) / math.sqrt(r)) if r > 1 else math.nan
    return TraceEstimate(top + float(q.mean()), se, 2 * s + r, method)


@dataclass(frozen=True)
class SpectralDensity:
    """An eigenvalue density from stochastic Lanczos quadrature.

    Attributes:
        grid: ``(g,)`` eigenvalue axis (NumPy).
        density: ``(g,)`` density on ``grid``, integrating to 1 (the fraction of eigenvalues per
            unit of eigenvalue), each node broadened by a Gaussian of width ``sigma``.
        nodes: ``(n_probes, n_steps)`` quadrature nodes (Ritz values) per probe.
        weights: ``(n_probes, n_steps)`` quadrature weights per probe (each row sums to 1).
        sigma: the Gaussian broadening (eigenvalue units).
        hvps: products used.
        size: the operator's size ``n`` (``n · density`` counts eigenvalues).
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    hvps: int
    size: int

    def trace(self) -> float:
        """``n · mean_probes Σ τ_j θ_j``: the SLQ estimate of ``tr A``."""
        return float(self.size * np.mean(np.sum(self.weights * self.nodes, axis=1)))

    def moment(self, p: int) -> float:
        """``(1/n) tr A^p`` as SLQ estimates it (exact per probe for ``p < 2·n_steps``)."""
        return float(np.mean(np.sum(self.weights * self.nodes.astype(np.float64) ** p, axis=1)))


def lanczos_quadrature(A: Any, V: torch.Tensor, n_steps: int, *, reorthogonalize: bool = True
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Independent Lanczos runs from the columns of ``V`` (``(n, P)``), all advanced by one block product.

    Returns:
        ``(nodes, weights)``, each ``(P, n_steps)``: for probe ``i`` the Gauss rule
        ``Σ_j weights[i, j] f(nodes[i, j]) ≈ v_iᵀ f(A) v_i / ‖v_i‖²``. A run whose Krylov space is
        exhausted early (β ≈ 0) gets zero weights on its unused nodes.
    """
    op = as_operator(A)
    n, P = V.shape
    steps = min(n_steps, n)
    Q = V / torch.linalg.vector_norm(V, dim=0)
    basis = [Q]
    alphas = torch.zeros(P, steps, dtype=torch.float64)
    betas = torch.zeros(P, steps, dtype=torch.float64)
    alive = torch.ones(P, dtype=torch.bool)
    length = torch.full((P,), steps, dtype=torch.long)
    prev = torch.zeros_like(Q)
    beta_prev = torch.zeros(P, dtype=Q.dtype, device=Q.device)
    for j in range(steps):
        AQ = op.matmat(Q)
        a = (Q * AQ).sum(0)
        alphas[:, j] = a.double().cpu()
        R = AQ - Q * a - prev * beta_prev
        if reorthogonalize:  # full re-orthogonalisation, twice, per probe against its own basis
            B = torch.stack(basis, dim=0)  # (j+1, n, P)
            for _ in range(2):
                R = R - (B * torch.einsum("jnp,np->jp", B, R)[:, None, :]).sum(0)
        b = torch.linalg.vector_norm(R, dim=0)
        betas[:, j] = b.double().cpu()
        scale = alphas[:, : j + 1].abs().max(dim=1).values.clamp_min(1e-300)
        ended = alive & (betas[:, j] <= 1e-10 * scale)
        length[ended] = j + 1
        alive &= ~ended
        if j == steps - 1 or not bool(alive.any()):
            break
        safe = torch.where(b > 0, b, torch.ones_like(b))
        prev, Q = Q, R / safe
        beta_prev = b
        basis.append(Q)
    nodes = np.zeros((P, steps))
    weights = np.zeros((P, steps))
    for i in range(P):
        L = int(length[i])
        Tm = torch.diag(alphas[i, :L]) + torch.diag(betas[i, : L - 1], 1) + torch.diag(betas[i, : L - 1], -1)
        th, U = torch.linalg.eigh(Tm)
        nodes[i, :L] = th.numpy()
        weights[i, :L] = (U[0] ** 2).numpy()
    return nodes, weights


def spectral_density(A: Any, *, n_probes: int = 10, n_steps: int = 80, seed: int = 0,
                     sigma: float | None = None, grid: np.ndarray | int = 1000,
                     reorthogonalize: bool = True) -> SpectralDensity:
    """The eigenvalue density of ``A`` by stochastic Lanczos quadrature.

    Args:
        A: any symmetric operator.
        n_probes: random probes (Rademacher vectors, normalised); the density's error falls as
            ``1/√(n · n_probes)`` in the bulk.
        n_steps: Lanczos steps per probe; costs ``n_probes · n_steps`` products, all probes
            multiplied together as one block.
        seed: seeds the probes.
        sigma: Gaussian broadening; default 1% of the spread of the nodes.
        grid: the eigenvalue axis, or a number of points spanning the nodes ± 5 sigma.
        reorthogonalize: full re-orthogonalisation (stores ``n_steps · n_probes`` vectors; turn
            it off only for very large models, at the cost of spurious copies of outliers).
    """
    op = as_operator(A)
    gen = torch.Generator(device=op.device).manual_seed(int(seed))
    V = (2 * torch.randint(0, 2, (op.size, n_probes), generator=gen, device=op.device) - 1).to(op.dtype)
    before = op.products
    nodes, weights = lanczos_quadrature(op, V, n_steps, reorthogonalize=reorthogonalize)
    hvps = op.products - before
    used = weights > 0
    lo, hi = float(nodes[used].min()), float(nodes[used].max())
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 1e-3
    if np.isscalar(grid):
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, int(grid))
    grid = np.asarray(grid, dtype=np.float64)
    norm = 1.0 / (n_probes * sigma * math.sqrt(2 * math.pi))
    th, w = nodes[used], weights[used]
    dens = (w[:, None] * np.exp(-0.5 * ((grid[None, :] - th[:, None]) / sigma) ** 2)).sum(0)
    return SpectralDensity(grid=grid, density=dens * norm, nodes=nodes, weights=weights, sigma=float(sigma),
                           hvps=int(hvps), size=op.size)
