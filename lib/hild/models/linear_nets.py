"""Two linear networks whose loss curvature has a closed form: the edge-of-stability models.

* :class:`TwoLayerLinear`, ``f(x) = vᵀUx``: the two-layer fully connected linear network with one
  output that Song and Yun (NeurIPS 2023, *Trajectory Alignment*) train on a single data point.
  With ``‖x‖ = ρ`` only the component ``b = U x/ρ`` of ``U`` and ``v`` ever move, and gradient
  descent on ``ℓ(f − y)`` is an exact map of two numbers, the output ``f`` and the squared gradient
  norm ``λ = ‖∇_θ f‖² = ρ²(‖v‖² + ‖b‖²)`` (:func:`two_layer_gd_map`), whatever the width.
* :class:`DiagonalLinear`, ``f(x) = ⟨u⊙u − v⊙v, x⟩``: the linear diagonal network of sparse
  regression (Woodworth et al., COLT 2020), the model of Phunyaphibarn et al., *Gradient Descent
  with Polyak's Momentum Finds Flatter Minima via Large Catapults* (arXiv 2311.15051v3).

Closed forms (each checked against :func:`hild.hessian.dense_hessian` in float64 by
``tests/test_linear_nets.py``):

* the sharpness of ``ℓ(f(x) − y)`` for :class:`TwoLayerLinear` anywhere
  (:func:`two_layer_sharpness`); at a global minimum (``ℓ'(0) = 0``, ``ℓ''(0) = 1``) it is ``λ``;
* the Hessian of the half mean squared error of :class:`DiagonalLinear`
  (:meth:`DiagonalLinear.hessian`), and its sharpness at an interpolating minimum,
  ``λ_max((4/n) X diag(u² + v²) Xᵀ)`` (:meth:`DiagonalLinear.minimum_sharpness`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["TwoLayerLinear", "DiagonalLinear", "log_cosh", "half_mse", "two_layer_sharpness",
           "two_layer_gd_map", "LOSSES"]


def log_cosh(r: torch.Tensor) -> torch.Tensor:
    """ℓ(r) = log cosh r, elementwise, without overflow: r + softplus(−2r) − log 2.

    (Smooth at 0 under autograd, unlike forms built on ``|r|``, whose second derivative autograd
    takes as 0 there.)
    """
    return r + nn.functional.softplus(-2.0 * r) - math.log(2.0)


# name → (ℓ, ℓ', ℓ'') on NumPy arrays; both losses have ℓ'(0) = 0 and ℓ''(0) = 1.
LOSSES: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any], Callable[[Any], Any]]] = {
    "log_cosh": (lambda r: np.logaddexp(r, -r) - math.log(2.0), np.tanh, lambda r: 1.0 / np.cosh(r) ** 2),
    "squared": (lambda r: 0.5 * np.square(r), lambda r: np.asarray(r, dtype=float),
                lambda r: np.ones_like(np.asarray(r, dtype=float))),
}


def _loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: use one of {sorted(LOSSES)}")
    return LOSSES[name]


class TwoLayerLinear(nn.Module):
    """``f(x) = vᵀUx`` with ``U ∈ R^{width×d}``, ``v ∈ R^{width}``; ``copies`` independent networks.

    The parameters carry a leading ``copies`` axis (``U``: (copies, width, d), ``v``:
    (copies, width)) so that many initialisations train in one autograd pass: with the loss
    *summed* over copies, each copy's gradient is exactly the gradient of its own loss, and one
    GD step on the sum is one GD step of every copy.

    Args:
        d: input dimension.
        width: hidden width.
        copies: number of independent networks.
        dtype: parameter dtype (float64 by default: the chapters compare with closed forms).
        generator: for the default initialisation, entries N(0, 1/d) for U and N(0, 1/width) for v.
    """

    def __init__(self, d: int, width: int, *, copies: int = 1, dtype: torch.dtype = torch.float64,
                 generator: torch.Generator | None = None):
        super().__init__()
        if min(d, width, copies) < 1:
            raise ValueError(f"d, width and copies must be positive, got {d}, {width}, {copies}")
        self.d, self.width, self.copies = d, width, copies
        self.U = nn.Parameter(torch.randn(copies, width, d, dtype=dtype, generator=generator) / math.sqrt(d))
        self.v = nn.Parameter(torch.randn(copies, width, dtype=dtype, generator=generator) / math.sqrt(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(copies, n)`` for inputs ``x`` of shape ``(n, d)``."""
        return torch.einsum("cw,cwd,nd->cn", self.v, self.U, x.to(self.U.dtype))

    @torch.no_grad()
    def grad_norm2(self, x: torch.Tensor) -> torch.Tensor:
        """``λ = ‖∇_θ f(x)‖² = ‖x‖²‖v‖² + ‖Ux‖²`` per copy, ``(copies,)``, for one input ``x`` (d,)."""
        x = x.to(self.U.dtype).reshape(-1)
        return (x @ x) * (self.v**2).sum(1) + (torch.einsum("cwd,d->cw", self.U, x) ** 2).sum(1)

    @torch.no_grad()
    def place(self, x: torch.Tensor, *, output: Any, grad_norm2: Any,
              generator: torch.Generator | None = None) -> "TwoLayerLinear":
        """Set every copy to ``f(x) = output`` and ``‖∇_θ f(x)‖² = grad_norm2`` (scalars or per copy).

        ``Ux/ρ`` and ``v`` get equal norms and the angle that gives the output; the part of ``U``
        orthogonal to ``x`` keeps its random values (it never moves under GD and does not enter
        ``f``). Needs ``|output| ≤ grad_norm2 / (2ρ)`` (the most a given ``λ`` allows).
        """
        x = x.to(self.U.dtype).reshape(-1)
        rho = float(x.norm())
        f0 = torch.as_tensor(output, dtype=self.U.dtype).expand(self.copies)
        lam = torch.as_tensor(grad_norm2, dtype=self.U.dtype).expand(self.copies)
        cos = 2 * rho * f0 / lam  # with ‖b‖ = ‖v‖ = s: f = ρ s² cos ψ and λ = 2ρ²s²
        if torch.any(lam <= 0) or torch.any(cos.abs() > 1):
            raise ValueError(f"need 0 < 2ρ|output| ≤ grad_norm2 (ρ = ‖x‖ = {rho:.4g})")
        s = torch.sqrt(lam / (2 * rho**2))
        e = torch.randn(self.copies, self.width, 2, dtype=self.U.dtype, generator=generator)
        e1 = e[..., 0] / e[..., 0].norm(dim=1, keepdim=True)
        e2 = e[..., 1] - (e[..., 1] * e1).sum(1, keepdim=True) * e1
        e2 = e2 / e2.norm(dim=1, keepdim=True)
        xhat = x / rho
        b = s[:, None] * e1
        v = s[:, None] * (cos[:, None] * e1 + torch.sqrt(1 - cos**2)[:, None] * e2)
        U = self.U - torch.einsum("cwd,d->cw", self.U, xhat)[..., None] * xhat  # keep U's part ⟂ x
        self.U.copy_(U + b[..., None] * xhat)
        self.v.copy_(v)
        return self


def two_layer_sharpness(output: Any, grad_norm2: Any, *, y: float, rho: float = 1.0,
                        loss: str = "log_cosh") -> np.ndarray:
    """The largest Hessian eigenvalue of ``ℓ(f(x) − y)`` for :class:`TwoLayerLinear`, in closed form.

    With ``p = f − y``, ``c = ℓ''(p)``, ``s = ℓ'(p)``, ``λ = ‖∇_θ f‖²`` and ``ρ = ‖x‖``, the Hessian
    is ``c ∇f∇fᵀ + sρ J`` where ``J`` swaps ``Ux/ρ`` and ``v``; on the plane of ``∇f`` and ``J∇f``
    it reduces to a 2x2 matrix whose top eigenvalue

        cλ/2 + sqrt(c²λ²/4 + s²ρ² + 2csρ² f)

    is the sharpness (every other eigenvalue is ``±sρ`` or 0, never larger). At a global minimum
    ``s = 0``, ``c = 1`` and the sharpness is ``λ``.
    """
    _, d1, d2 = _loss(loss)
    f = np.asarray(output, dtype=float)
    lam = np.asarray(grad_norm2, dtype=float)
    p = f - y
    c, s = d2(p), d1(p)
    return c * lam / 2 + np.sqrt(np.maximum(c**2 * lam**2 / 4 + s**2 * rho**2 + 2 * c * s * rho**2 * f, 0.0))


def two_layer_gd_map(output: Any, grad_norm2: Any, *, lr: float, y: float, rho: float = 1.0,
                     loss: str = "log_cosh") -> tuple[np.ndarray, np.ndarray]:
    """One exact GD step of :class:`TwoLayerLinear` on ``ℓ(f(x) − y)``, as a map of ``(f, λ)``.

    With ``g = ℓ'(f − y)``: ``f' = f(1 + η²ρ²g²) − ηgλ`` and ``λ' = λ(1 + η²ρ²g²) − 4ηρ²g f``.
    Two numbers determine the whole future of the output and the curvature, whatever the width.
    """
    _, d1, _ = _loss(loss)
    f = np.asarray(output, dtype=float)
    lam = np.asarray(grad_norm2, dtype=float)
    g = d1(f - y)
    grow = 1 + (lr * rho * g) ** 2
    return f * grow - lr * g * lam, lam * grow - 4 * lr * rho**2 * g * f


def half_mse(model: nn.Module, batch: Any) -> torch.Tensor:
    """``L = (1/2n) Σ_i (f(x_i) − y_i)²``: the loss of the diagonal-network chapter."""
    x, y = batch
    return 0.5 * ((model(x) - y) ** 2).mean()


class DiagonalLinear(nn.Module):
    """``f(x) = ⟨w, x⟩`` with ``w = u⊙u − v⊙v``: a two-layer linear network with diagonal layers.

    Args:
        d: dimension.
        init: the initial ``u = v`` (a scalar α, the usual "scale α" initialisation with ``w = 0``,
            or a vector ``(d,)``), or a pair ``(u, v)``.
        dtype: parameter dtype (float64 by default).
    """

    def __init__(self, d: int, *, init: Any = 1.0, dtype: torch.dtype = torch.float64):
        super().__init__()
        if isinstance(init, (tuple, list)) and len(init) == 2:
            u0, v0 = (torch.as_tensor(t, dtype=dtype) for t in init)
        else:
            u0 = torch.as_tensor(init, dtype=dtype).expand(d).clone()
            v0 = u0.clone()
        if u0.shape != (d,) or v0.shape != (d,):
            raise ValueError(f"init must give u and v of shape ({d},), got {tuple(u0.shape)}, {tuple(v0.shape)}")
        self.u = nn.Parameter(u0.clone())
        self.v = nn.Parameter(v0.clone())

    @property
    def w(self) -> torch.Tensor:
        """The regression weights ``u⊙u − v⊙v`` (d,)."""
        return self.u * self.u - self.v * self.v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(n,)`` for inputs ``(n, d)``."""
        return x.to(self.u.dtype) @ self.w

    @torch.no_grad()
    def hessian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The Hessian of :func:`half_mse` with respect to ``(u, v)``, ``(2d, 2d)``, in closed form.

        With ``A = XᵀX/n``, ``g = Xᵀ(Xw − y)/n`` and ``J = [2 diag(u), −2 diag(v)]``:
        ``H = JᵀAJ + diag(2g, −2g)``.
        """
        x, y = x.to(self.u.dtype), y.to(self.u.dtype)
        n = x.shape[0]
        A = x.T @ x / n
        g = x.T @ (x @ self.w - y) / n
        J = torch.cat([torch.diag(2 * self.u), torch.diag(-2 * self.v)], dim=1)
        return J.T @ A @ J + torch.diag(torch.cat([2 * g, -2 * g]))

    @torch.no_grad()
    def minimum_sharpness(self, x: torch.Tensor) -> float:
        """``λ_max((4/n) X diag(u² + v²) Xᵀ)``: the top eigenvalue of the Gauss-Newton part of
        :meth:`hessian`, hence the sharpness at any interpolating minimum (``Xw = y``)."""
        x = x.to(self.u.dtype)
        K = 4 * (x * (self.u**2 + self.v**2)) @ x.T / x.shape[0]
        return float(torch.linalg.eigvalsh(K)[-1])
