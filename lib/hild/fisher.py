"""The neural Fisher kernel (NFK) of a classifier, and its low-rank approximation.

For a classifier with softmax outputs p_c(x) = p_θ(c | x), the Fisher score of a label c is
∇θ log p_c(x), and the Fisher information is F = E_x E_{c∼p(·|x)}[∇θ log p_c ∇θ log p_cᵀ]. The
Fisher kernel (Jaakkola and Haussler) with the labels drawn from the model itself is

    K(x, z) = Σ_c √(p_c(x) p_c(z)) ∇θ log p_c(x)ᵀ F⁻¹ ∇θ log p_c(z)
            = Σ_c φ_c(x)ᵀ φ_c(z),       φ_c(x) = F^(-1/2) √p_c(x) ∇θ log p_c(x),

with F replaced by its diagonal (the paper's choice for large networks). On N points the kernel
is K = Σ_c Φ_c Φ_cᵀ with Φ_c the (N, P) matrix of rows φ_c(x): a sum of C Gram matrices, of rank
at most min(N, C·P). :func:`kernel_operator` multiplies by K through Φ without forming the
(N, N) kernel, so :func:`hild.hessian.top_eigs` (block Lanczos) finds its top-k eigenpairs
(U_k, Λ_k); :func:`low_rank_features` maps any point to the k-dimensional features

    e(x) = Λ_k^(-1/2) U_kᵀ K(X, x) = V_kᵀ φ(x),       V_k = Φᵀ U_k Λ_k^(-1/2)  (orthonormal, C·P × k),

for which e(X) = U_k Λ_k^(1/2) on the training points, and e(x)ᵀ e(z) is the rank-k
approximation of K (Nyström). :func:`probe_accuracy` fits the logistic-regression probe the
chapter uses to compare representations.

Shapes: scores (N, C, P); kernels (N, N); features (N, k). Everything runs in the scores' dtype
and device (float64 for exact comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from . import hessian, ntk

__all__ = ["class_scores", "diagonal_fisher", "fisher_features", "kernel", "kernel_operator",
           "LowRankNFK", "low_rank", "low_rank_features", "trace_fraction", "probe_accuracy"]


def class_scores(model: nn.Module, x: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Per-class Fisher scores weighted by the model's probabilities: s_c(x) = √p_c(x) ∇θ log p_c(x).

    Args:
        model: a classifier mapping (N, ...) to logits (N, C) (in eval mode if it has BatchNorm).
        x: inputs (N, ...) on the model's device.
        chunk_size: examples per vectorised Jacobian call (see :func:`hild.ntk.jacobian`).

    Returns:
        (N, C, P): row (n, c) is √p_c(x_n) ∇θ log p_c(x_n), parameters in ``named_parameters``
        order. Σ_c s_c s_cᵀ is the example's Fisher information E_{c∼p}[∇ log p_c ∇ log p_cᵀ].
    """
    log_softmax = nn.Sequential(model, nn.LogSoftmax(dim=-1))
    jac = ntk.jacobian(log_softmax, x, chunk_size=chunk_size)          # (N, C, P)
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=-1)
    return jac * probs.sqrt().unsqueeze(-1).to(jac.dtype)


def diagonal_fisher(scores: Tensor) -> Tensor:
    """The diagonal of the Fisher information on these points: F_jj = mean_n Σ_c s_{n,c,j}² (P,)."""
    return scores.pow(2).sum(dim=1).mean(dim=0)


def fisher_features(scores: Tensor, fisher_diag: Tensor, *, damping: float = 0.0) -> Tensor:
    """φ_c(x) = s_c(x) / √(F_jj + damping · mean(F)): the scores whitened by the diagonal Fisher.

    Parameters whose Fisher entry is exactly zero (e.g. weights of a constant input pixel) have
    zero scores and are left at zero. Returns (N, C, P) like ``scores``.
    """
    scale = fisher_diag + damping * fisher_diag.mean()
    inv = torch.where(scale > 0, scale.clamp_min(torch.finfo(scale.dtype).tiny).rsqrt(),
                      torch.zeros_like(scale))
    return scores * inv


def kernel(phi: Tensor, phi2: Tensor | None = None) -> Tensor:
    """The dense kernel K(x, z) = Σ_c φ_c(x)ᵀ φ_c(z): (N1, N2) from features (N1, C, P), (N2, C, P).

    For checks on small problems; the chapter's algorithm uses :func:`kernel_operator`.
    """
    phi2 = phi if phi2 is None else phi2
    return torch.einsum("ncp,mcp->nm", phi, phi2)


def kernel_operator(phi: Tensor) -> hessian.SymmetricOperator:
    """K = Σ_c Φ_c Φ_cᵀ as a symmetric operator of size N that never forms K.

    A block V (N, b) costs two products with the (N, C·P) matrix Φ: K V = Φ (Φᵀ V).
    """
    flat = phi.reshape(len(phi), -1)

    def matmat(v: Tensor) -> Tensor:
        return flat @ (flat.T @ v)

    return hessian.as_operator(matmat, size=len(phi), dtype=phi.dtype, device=phi.device, block=True)


@dataclass(frozen=True)
class LowRankNFK:
    """The top-k eigenpairs of the NFK on the training points and the feature map they define.

    Attributes:
        values: (k,) eigenvalues Λ_k, largest first (float64, CPU).
        vectors: (N, k) orthonormal eigenvectors U_k (the features' dtype and device).
        trace: trace of K (= Σ_n ‖φ(x_n)‖², computed without forming K).
        products: kernel-vector products the Lanczos solve used.
        converged: whether every Ritz residual met the tolerance.
    """

    values: torch.Tensor
    vectors: Tensor
    trace: float
    products: int
    converged: bool

    @property
    def rank(self) -> int:
        return len(self.values)


def low_rank(phi: Tensor, k: int, *, tol: float | None = None, seed: int = 0,
             block_size: int | None = None) -> LowRankNFK:
    """Top-k eigenpairs of K = Σ_c Φ_c Φ_cᵀ by block Lanczos (:func:`hild.hessian.top_eigs`)."""
    if not 1 <= k < len(phi):
        raise ValueError(f"k must be between 1 and N - 1 = {len(phi) - 1}, got {k}")
    eigs = hessian.top_eigs(kernel_operator(phi), k, tol=tol, seed=seed, block_size=block_size, warn=False)
    return LowRankNFK(eigs.values, eigs.vectors, float(phi.pow(2).sum()), eigs.hvps, eigs.converged)


def low_rank_features(phi_train: Tensor, nfk: LowRankNFK, phi: Tensor | None = None, *,
                      k: int | None = None) -> Tensor:
    """Rank-k NFK features e(x) = Λ_k^(-1/2) U_kᵀ K(X, x), (M, k), for ``phi`` (default: the
    training points, where e(X) = U_k Λ_k^(1/2)). ``k`` ≤ ``nfk.rank`` uses the top k pairs only.

    Computed as φ(x)ᵀ V_k with V_k = Φᵀ U_k Λ_k^(-1/2), so K(X, x) is never formed either.
    """
    k = nfk.rank if k is None else k
    if not 1 <= k <= nfk.rank:
        raise ValueError(f"k must be between 1 and {nfk.rank}, got {k}")
    u = nfk.vectors[:, :k]
    lam = nfk.values[:k].to(u.dtype).to(u.device)
    flat_train = phi_train.reshape(len(phi_train), -1)
    basis = (flat_train.T @ u) / lam.sqrt()                            # V_k: (C·P, k), orthonormal
    target = phi_train if phi is None else phi
    return target.reshape(len(target), -1) @ basis


def trace_fraction(values: Tensor | np.ndarray, trace: float) -> np.ndarray:
    """Cumulative fraction of the trace held by the top 1, 2, ..., k eigenvalues: (k,)."""
    return np.cumsum(np.asarray(values, dtype=np.float64)) / float(trace)


def probe_accuracy(train_features: Tensor | np.ndarray, y_train: Tensor | np.ndarray,
                   test_features: Tensor | np.ndarray, y_test: Tensor | np.ndarray, *,
                   C: float = 1.0, max_iter: int = 2000) -> float:
    """Test accuracy of a linear probe: multinomial logistic regression (L2, inverse strength
    ``C``, scikit-learn's L-BFGS) on features standardised with the training statistics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    as_np = lambda a: a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)  # noqa: E731
    xtr, xte = as_np(train_features).astype(np.float64), as_np(test_features).astype(np.float64)
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=C, max_iter=max_iter)
    clf.fit(scaler.transform(xtr), as_np(y_train))
    return float((clf.predict(scaler.transform(xte)) == as_np(y_test)).mean())
