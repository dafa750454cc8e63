"""How simple is a learned representation? Feature rank, active units, vanished and duplicated neurons.

* :func:`feature_rank`: the number of principal components that explain a fraction of the
  features' variance (Andriushchenko et al., NeurIPS 2023: 99% for deep nets, 99.99% in their
  two-layer notebook); :func:`explained_variance` is the whole cumulative curve.
* :func:`active_units`: how many units are non-zero on at least one input (ReLU units that SAM
  prunes are zero on every input).
* :func:`ridge_path`: how good the features are for a linear read-out: the test error of ridge
  regression on them along a grid of penalties (one SVD for the whole grid).
* :func:`neuron_collapse`: how many neurons of a layer vanished (their weights went to zero) and
  how many are duplicates of another (identical incoming and outgoing weights): the two invariant
  sets that stochastic collapse attracts SGD to (Chen et al., NeurIPS 2023).

All take NumPy arrays or torch tensors and compute in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["explained_variance", "feature_rank", "active_units", "ridge_path", "NeuronCollapse",
           "neuron_collapse"]


def _np(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def explained_variance(features: Any, *, center: bool = True) -> np.ndarray:
    """Cumulative fraction of variance explained by the first k principal components, k = 1, 2, ...

    Args:
        features: (n, m) one row per input.
        center: subtract the mean feature first (principal components); ``False`` uses the raw
            second moment, as the SAM paper's two-layer notebook does.

    Returns:
        (min(n, m),) non-decreasing, ending at 1 (all zeros for all-zero features).
    """
    F = _np(features)
    if F.ndim != 2:
        raise ValueError(f"features must be (n, m), got shape {F.shape}")
    if center:
        F = F - F.mean(0)
    s2 = np.linalg.svd(F, compute_uv=False) ** 2
    total = s2.sum()
    return np.cumsum(s2) / total if total > 0 else np.zeros_like(s2)


def feature_rank(features: Any, fraction: float = 0.99, *, center: bool = True) -> int:
    """The number of principal components needed to explain ``fraction`` of the features' variance.

    The smallest k with ``(σ₁² + ... + σ_k²) ≥ fraction · Σ σ_i²``, where σ_i are the singular values
    of the (centred) feature matrix; 0 for features without variance.

    Args:
        features: (n, m) one row per input (e.g. penultimate activations on held-out data).
        fraction: in (0, 1]; 0.99 in the paper's deep-network experiments.
        center: see :func:`explained_variance`.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    cum = explained_variance(features, center=center)
    if cum.size == 0 or cum[-1] == 0:
        return 0
    # a relative tolerance so that fraction = 1 counts only components with non-zero variance
    return int(np.searchsorted(cum, fraction * (1 - 1e-12)) + 1)


def active_units(features: Any, *, tol: float = 0.0) -> int:
    """How many units (columns) exceed ``tol`` in absolute value on at least one input (row)."""
    F = _np(features)
    if F.ndim != 2:
        raise ValueError(f"features must be (n, m), got shape {F.shape}")
    return int(np.sum(np.abs(F).max(0) > tol)) if F.shape[0] else 0


def ridge_path(F_train: Any, y_train: Any, F_test: Any, y_test: Any, lambdas: Any) -> np.ndarray:
    """Test mean squared error of ridge regression on features, for each penalty λ.

    For each λ the read-out ``c`` minimises ``(1/n)‖F_train c − y_train‖² + λ‖c‖²``, i.e.
    ``c = (FᵀF + nλI)⁻¹Fᵀy``, computed for the whole grid from one SVD ``F_train = U S Vᵀ``:
    ``c = V diag(s/(s² + nλ)) Uᵀy``.

    Args:
        F_train: (n, m) training features.  y_train: (n,) targets.
        F_test: (n_test, m) test features.  y_test: (n_test,) targets.
        lambdas: penalties λ > 0 (or 0 for the minimum-norm least-squares fit).

    Returns:
        (len(lambdas),) the test errors ``mean((F_test c − y_test)²)``.
    """
    F, y, Ft, yt = _np(F_train), _np(y_train), _np(F_test), _np(y_test)
    lam = np.atleast_1d(_np(lambdas))
    if np.any(lam < 0):
        raise ValueError(f"ridge penalties must be non-negative, got {lam[lam < 0][:3]}")
    U, s, Vt = np.linalg.svd(F, full_matrices=False)
    keep = s > s.max() * max(F.shape) * np.finfo(np.float64).eps if s.size else s > 0
    U, s, Vt = U[:, keep], s[keep], Vt[keep]
    proj_train = U.T @ y                  # (k,)
    proj_test = Ft @ Vt.T                 # (n_test, k)
    shrink = s[None, :] / (s[None, :] ** 2 + len(F) * lam[:, None])  # (L, k)
    pred = (shrink * proj_train[None, :]) @ proj_test.T             # (L, n_test)
    return np.mean((pred - yt[None, :]) ** 2, axis=1)


@dataclass(frozen=True)
class NeuronCollapse:
    """Neurons of one layer sorted into vanished, duplicated and distinct.

    Attributes:
        width: the number of neurons.
        alive: neurons whose parameter norm exceeds ``tol`` times the largest.
        vanished: ``width − alive``.
        duplicates: alive neurons within ``tol`` (relative to the largest norm) of an earlier alive
            neuron: copies that add nothing a single neuron could not.
        distinct: ``alive − duplicates``, the effective width.
    """

    width: int
    alive: int
    vanished: int
    duplicates: int
    distinct: int


def neuron_collapse(W: Any, a: Any, b: Any = None, *, tol: float = 0.05) -> NeuronCollapse:
    """Count vanished and duplicated neurons of ``x ↦ Σ_j a_j σ(w_jᵀx + b_j)``.

    Neuron j is the vector ``θ_j = (w_j, b_j, a_j)``. It has vanished when ``‖θ_j‖ ≤ tol·max_k ‖θ_k‖``
    (the sign-invariant set ``θ_j = 0``), and it duplicates an earlier alive neuron k when
    ``‖θ_j − θ_k‖ ≤ tol·max_k ‖θ_k‖`` (the permutation-invariant set ``θ_j = θ_k``). Duplicates are
    found greedily in neuron order, so each group of copies counts once as distinct.

    Args:
        W: (m, d) incoming weights.  a: (m,) or (m, k) outgoing weights.  b: (m,) biases or None.
        tol: the relative tolerance (0.05: 5% of the largest neuron).
    """
    parts = [_np(W).reshape(len(_np(W)), -1), _np(a).reshape(len(_np(W)), -1)]
    if b is not None:
        parts.append(_np(b).reshape(-1, 1))
    theta = np.concatenate(parts, axis=1)
    m = len(theta)
    norms = np.linalg.norm(theta, axis=1)
    scale = float(norms.max()) if m else 0.0
    if scale == 0.0:
        return NeuronCollapse(width=m, alive=0, vanished=m, duplicates=0, distinct=0)
    alive = np.flatnonzero(norms > tol * scale)
    representatives: list[int] = []
    for j in alive:
        if not any(np.linalg.norm(theta[j] - theta[k]) <= tol * scale for k in representatives):
            representatives.append(int(j))
    n_alive = len(alive)
    return NeuronCollapse(width=m, alive=n_alive, vanished=m - n_alive,
                          duplicates=n_alive - len(representatives), distinct=len(representatives))
