"""Checks for the exercises of the tiny-subspaces chapter (Part "Curvature and the edge of stability").

Each check computes its exact answer itself: projections from an orthonormal basis by
``Q (Qᵀ v)``, and the Dom-GD step on a 2-D quadratic from the eigendecomposition of its matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import as_array, check_function

__all__ = ["project_onto_subspace", "dom_step"]


def _basis(n: int, k: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, k)))
    return q


def project_onto_subspace(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(v, Q)`` returns ``(P v, v − P v)`` for an orthonormal basis ``Q`` (n x k)."""
    __tracebackhide__ = True

    def reference(v: np.ndarray, Q: np.ndarray) -> np.ndarray:
        dom = Q @ (Q.T @ v)
        return np.stack([dom, v - dom])

    rng = np.random.default_rng(3)
    cases = [
        (np.array([3.0, 4.0]), np.array([[1.0], [0.0]])),      # onto the first axis: (3, 0) and (0, 4)
        (rng.standard_normal(6), _basis(6, 2, 1)),
        (rng.standard_normal(50), _basis(50, 10, 2)),
        (np.zeros(4), _basis(4, 3, 4)),                           # the zero vector stays zero
        (rng.standard_normal(5), np.eye(5)),                      # the whole space: nothing left over
    ]
    check_function(lambda v, Q: np.stack([as_array(t) for t in fn(v, Q)]), reference=reference, cases=cases,
                   name="project", rtol=1e-9, atol=1e-12,
                   hint="with orthonormal columns, P = Q Qᵀ: compute the coordinates Qᵀv first (k numbers), "
                        "then Q times them; the bulk part is what is left, v − P v")


def dom_step(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(theta, A, lr)`` is one Dom-GD step (k = 1) on L(θ) = ½ θᵀAθ for a symmetric 2 x 2 A."""
    __tracebackhide__ = True

    def reference(theta: np.ndarray, A: np.ndarray, lr: float) -> np.ndarray:
        lam, U = np.linalg.eigh(A)
        u = U[:, -1]                                              # eigenvector of the largest eigenvalue
        return theta - lr * u * (u @ (A @ theta))

    rot = lambda a: np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])  # noqa: E731
    valley = lambda a, big, small: rot(a) @ np.diag([big, small]) @ rot(a).T  # noqa: E731
    cases = [
        (np.array([1.0, 1.0]), np.diag([10.0, 0.1]), 0.15),      # the paper's picture: a steep wall, a flat floor
        (np.array([0.3, -2.0]), valley(0.4, 8.0, 0.5), 0.2),
        (np.array([2.0, 1.0]), valley(-1.1, 1.0, 3.0), 0.5),     # the top eigenvector is the second axis here
        (np.array([-1.0, 0.5]), valley(0.7, 5.0, -1.0), 0.1),    # indefinite: a saddle
    ]
    check_function(lambda theta, A, lr: as_array(fn(theta, A, lr)), reference=reference, cases=cases,
                   name="dom_step", rtol=1e-9, atol=1e-12,
                   hint="the gradient is A θ; keep only its component along the eigenvector u of A's LARGEST "
                        "eigenvalue (np.linalg.eigh sorts eigenvalues in ascending order), u (uᵀ A θ)")
