"""A subspace of parameter space: project onto it, project out of it, measure overlaps.

``Subspace(eigs)`` is the span of a :func:`~hild.hessian.top_eigs` result's eigenvectors, the
"dominant subspace" of Gur-Ari, Roberts and Dyer (2018) and of the tiny-subspaces chapter::

    top = hessian.Subspace(hessian.top_eigs(H, k=10))
    top.overlap(g)        # ‖P g‖ / ‖g‖, the fraction of the gradient's length in the subspace
    top.project_out(g)    # the "bulk" component g − P g
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .eigs import Eigs
from .operator import flatten, unflatten

__all__ = ["Subspace"]


class Subspace:
    """The span of the columns of ``basis`` (``(n, k)``), kept as an orthonormal basis ``Q``.

    Vectors may be flat (``(n,)``), blocks (``(n, b)``, one vector per column), or lists of
    parameter-shaped tensors (e.g. ``[p.grad for p in model.parameters()]``); ``project`` and
    ``project_out`` return the same form they were given.

    Args:
        basis: an ``(n, k)`` tensor, a list of ``(n,)`` vectors, or an :class:`Eigs` result.
        orthonormalize: orthonormalise the columns (QR); pass False only for a basis known to be
            orthonormal.
    """

    def __init__(self, basis: torch.Tensor | Eigs | Sequence[torch.Tensor], *, orthonormalize: bool = True):
        if isinstance(basis, Eigs):
            basis = basis.vectors
        elif not isinstance(basis, torch.Tensor):
            basis = torch.stack(list(basis), dim=1)
        if basis.ndim == 1:
            basis = basis[:, None]
        if basis.ndim != 2 or basis.shape[1] > basis.shape[0]:
            raise ValueError(f"basis must be (n, k) with k ≤ n, got shape {tuple(basis.shape)}")
        if orthonormalize and basis.shape[1]:
            basis, r = torch.linalg.qr(basis)
            diag = r.diagonal().abs()
            if bool((diag <= 1e-10 * diag.max().clamp_min(1e-300)).any()):
                raise ValueError("the basis vectors are linearly dependent: pass independent vectors")
        self.Q = basis

    @property
    def dim(self) -> int:
        """``k``, the dimension of the subspace."""
        return self.Q.shape[1]

    @property
    def size(self) -> int:
        """``n``, the dimension of the space it lives in."""
        return self.Q.shape[0]

    @property
    def random_overlap(self) -> float:
        """``√(k/n)``: the typical :meth:`overlap` of a random direction, the baseline to beat."""
        return math.sqrt(self.dim / self.size)

    def _flat(self, v: Any) -> tuple[torch.Tensor, Any]:
        if isinstance(v, torch.Tensor):
            if v.shape[0] != self.size:
                raise ValueError(f"vector has {v.shape[0]} entries, the subspace lives in {self.size} dimensions")
            return v.to(self.Q.dtype), None
        like = list(v)
        return flatten(like).to(self.Q.dtype), like

    def _back(self, x: torch.Tensor, like: Any, dtype: torch.dtype) -> Any:
        if like is None:
            return x.to(dtype)
        return [t.to(p.dtype) for t, p in zip(unflatten(x, like), like)]

    def coordinates(self, v: Any) -> torch.Tensor:
        """``Qᵀ v``: coordinates of ``v`` in the orthonormal basis (``(k,)`` or ``(k, b)``)."""
        x, _ = self._flat(v)
        return self.Q.T @ x

    def project(self, v: Any) -> Any:
        """``P v = Q Qᵀ v``, the component of ``v`` in the subspace."""
        x, like = self._flat(v)
        dtype = v.dtype if like is None else None
        return self._back(self.Q @ (self.Q.T @ x), like, dtype)

    def project_out(self, v: Any) -> Any:
        """``v − P v``, the component of ``v`` orthogonal to the subspace."""
        x, like = self._flat(v)
        dtype = v.dtype if like is None else None
        return self._back(x - self.Q @ (self.Q.T @ x), like, dtype)

    def overlap(self, v: Any) -> float | torch.Tensor:
        """``‖P v‖ / ‖v‖`` in [0, 1]: a float for one vector, a ``(b,)`` tensor for a block."""
        x, _ = self._flat(v)
        num = torch.linalg.vector_norm(self.Q.T @ x, dim=0)
        den = torch.linalg.vector_norm(x, dim=0).clamp_min(1e-300)
        out = num / den
        return float(out) if x.ndim == 1 else out

    def angles(self, other: "Subspace | torch.Tensor") -> torch.Tensor:
        """Principal angles (radians, ascending) between this subspace and another, ``min(k, k')`` of them.

        Computed from sines (``svd((I − P₁) Q₂)``), so small angles are accurate to rounding.
        """
        Q1, Q2 = self.Q, (other.Q if isinstance(other, Subspace) else Subspace(other).Q).to(self.Q.dtype)
        if Q2.shape[1] > Q1.shape[1]:
            Q1, Q2 = Q2, Q1
        sines = torch.linalg.svdvals(Q2 - Q1 @ (Q1.T @ Q2)).clamp(0, 1)
        return torch.sort(torch.arcsin(sines)).values

    def __repr__(self) -> str:
        return f"Subspace(dim={self.dim}, size={self.size}, dtype={self.Q.dtype}, device={self.Q.device})"
