"""Max-margin token selection: the Att-SVM that gradient descent on attention weights converges to.

Tarzanagh, Li, Zhang and Oymak, *Max-Margin Token Selection in Attention Mechanism* (NeurIPS 2023),
study the prefix (prompt) attention model f(X) = vᵀXᵀ softmax(XWp) on sequences X ∈ R^{T×d}. With
labels Y_i ∈ {±1} and a fixed head v, each token has a **score** γ_it = Y_i · vᵀx_it; the token
with the highest score is the sequence's **optimal token** opt_i. Gradient descent on p (with W = I)
grows ‖p‖ without bound and converges in direction to the solution of

    (Att-SVM)   p^mm = argmin_p ‖p‖   subject to   (x_{i,opt_i} − x_it)ᵀ p ≥ 1   for all i, t ≠ opt_i,

which separates every sequence's optimal token from its other tokens with the largest margin.
Training the key-query matrix W with p fixed (scores XWp) is the same problem in the variables W:

    (W-SVM)     W^mm = argmin_W ‖W‖_F   subject to   (x_{i,opt_i} − x_it)ᵀ W z_i ≥ 1,

with z_i = p for every sequence (the paper's setting; then W^mm = p^mm pᵀ/‖p‖²) or a query token
per sequence (self-attention with the query taken from the sequence, as in the follow-up
*Transformers as Support Vector Machines*).

Both are hard-margin SVMs without bias, min ½‖w‖² s.t. Aw ≥ 1, solved here by :func:`max_margin`:
feasibility by a linear program (HiGHS), the dual (a non-negative quadratic program in one variable
per constraint) by SLSQP, then an exact active-set polish: on the support S the KKT conditions
say A_S A_Sᵀ α_S = 1 and w = A_Sᵀ α_S, which a linear solve gives to machine precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SVMSolution", "max_margin", "token_scores", "optimal_tokens", "att_svm_constraints", "solve_att_svm",
           "locally_optimal", "directional_cosine"]


@dataclass(frozen=True)
class SVMSolution:
    """The solution of min ½‖w‖² s.t. A w ≥ 1.

    Attributes:
        w: (D,) the max-margin solution (reshaped to (d, d) by :func:`solve_att_svm` for W).
        alpha: (m,) the dual variables, one per constraint (zero off the support).
        support: indices of the active constraints (rows of A with a_iᵀw = 1).
        margin: 1/‖w‖, the distance from the separating hyperplane to the closest row of A.
        max_violation: max(0, max_i 1 − a_iᵀw), the largest constraint violation (≈ 1e-12).
    """

    w: np.ndarray
    alpha: np.ndarray
    support: np.ndarray
    margin: float
    max_violation: float

    @property
    def direction(self) -> np.ndarray:
        """w/‖w‖, what gradient descent converges to."""
        return self.w / np.linalg.norm(self.w)


def _check_feasible(A: np.ndarray) -> None:
    from scipy.optimize import linprog

    m, D = A.shape
    # any w with Aw ≥ 1 will do: minimise 0 subject to −Aw ≤ −1, w free
    res = linprog(np.zeros(D), A_ub=-A, b_ub=-np.ones(m), bounds=[(None, None)] * D, method="highs")
    if res.status == 2:
        raise ValueError(
            f"the SVM is infeasible: no w satisfies all {m} constraints in {D} dimensions (the optimal "
            f"tokens cannot be separated from the others by one direction). With random tokens this is "
            f"likely when the dimension is below the number of constraints: use d ≥ n(T − 1)."
        )
    if res.status != 0:
        raise RuntimeError(f"the feasibility linear program failed: {res.message}")


def _polish(A: np.ndarray, alpha: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Exact KKT solve on the support of ``alpha``; None if the support guess is inconsistent."""
    scale = max(float(alpha.max()), 1e-300)
    support = np.flatnonzero(alpha > 1e-7 * scale)
    if support.size == 0:
        return None
    As = A[support]
    # A_S A_Sᵀ α_S = 1 (active constraints hold with equality); lstsq copes with dependent rows
    a_s = np.linalg.lstsq(As @ As.T, np.ones(len(support)), rcond=None)[0]
    w = As.T @ a_s
    if np.any(a_s < -tol * max(1.0, float(np.abs(a_s).max()))) or np.any(A @ w < 1 - 1e-8):
        return None
    full = np.zeros(len(A))
    full[support] = np.clip(a_s, 0.0, None)
    return w, full


def max_margin(A: np.ndarray | Sequence[Sequence[float]], *, tol: float = 1e-10, max_iter: int = 1000) -> SVMSolution:
    """Solve the hard-margin SVM without bias: min ½‖w‖² subject to A w ≥ 1 (row-wise).

    Args:
        A: (m, D) one constraint per row (for the Att-SVM, a row is x_opt − x_t).
        tol: tolerance of the dual solver and of the KKT checks.
        max_iter: SLSQP's iteration cap.

    Returns:
        An :class:`SVMSolution`.

    Raises:
        ValueError: when no w satisfies the constraints (the message says why that happens).
    """
    from scipy.optimize import minimize

    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"A must be a non-empty (m, D) matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("A contains NaN or inf")
    _check_feasible(A)
    G = A @ A.T
    m = len(A)

    def objective(a: np.ndarray) -> tuple[float, np.ndarray]:
        Ga = G @ a
        return 0.5 * a @ Ga - a.sum(), Ga - 1.0

    # dual: min ½ αᵀ(AAᵀ)α − 1ᵀα over α ≥ 0, started from the least-squares guess
    start = np.clip(np.linalg.lstsq(G, np.ones(m), rcond=None)[0], 0.0, None)
    res = minimize(objective, start, jac=True, method="SLSQP", bounds=[(0.0, None)] * m,
                   options={"ftol": 1e-15, "maxiter": max_iter})
    alpha = np.clip(res.x, 0.0, None)
    polished = _polish(A, alpha, tol)
    if polished is None:  # the dual's support was not exact: try again from its answer with a tighter tolerance
        res = minimize(objective, alpha, jac=True, method="SLSQP", bounds=[(0.0, None)] * m,
                       options={"ftol": 1e-18, "maxiter": 10 * max_iter})
        alpha = np.clip(res.x, 0.0, None)
        polished = _polish(A, alpha, tol)
    if polished is None:
        w = A.T @ alpha
    else:
        w, alpha = polished
    viol = float(max(0.0, np.max(1.0 - A @ w)))
    if viol > 1e-6:
        raise RuntimeError(f"the SVM solver did not converge: largest constraint violation {viol:.2e}")
    return SVMSolution(w=w, alpha=alpha, support=np.flatnonzero(alpha > 0), margin=float(1 / np.linalg.norm(w)),
                       max_violation=viol)


def token_scores(X: np.ndarray, Y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """γ_it = Y_i · vᵀx_it, the score of each token: (n, T, d), (n,), (d,) → (n, T)."""
    X, Y, v = (np.asarray(a, dtype=np.float64) for a in (X, Y, v))
    if X.ndim != 3 or Y.shape != (X.shape[0],) or v.shape != (X.shape[2],):
        raise ValueError(f"expected X (n, T, d), Y (n,), v (d,); got {X.shape}, {Y.shape}, {v.shape}")
    return Y[:, None] * (X @ v)


def optimal_tokens(X: np.ndarray, Y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """opt_i = argmax_t γ_it, the index of each sequence's optimal token, (n,) int."""
    return np.argmax(token_scores(X, Y, v), axis=1)


def att_svm_constraints(X: np.ndarray, opt: Sequence[int], queries: np.ndarray | None = None) -> np.ndarray:
    """The rows of A for the Att-SVM: one row per sequence i and non-optimal token t.

    Args:
        X: (n, T, d) tokens.
        opt: (n,) index of each sequence's optimal (selected) token.
        queries: None for the p-SVM (rows x_opt − x_t, shape (n(T−1), d)); a (d,) query shared by all
            sequences or (n, d) one per sequence for the W-SVM (rows vec((x_opt − x_t) z_iᵀ), shape
            (n(T−1), d²), so that rowᵀ vec(W) = (x_opt − x_t)ᵀ W z_i).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"X must be (n, T, d), got shape {X.shape}")
    n, T, d = X.shape
    opt = np.asarray(opt, dtype=int)
    if opt.shape != (n,) or np.any(opt < 0) or np.any(opt >= T):
        raise ValueError(f"opt must hold one token index in 0..{T - 1} per sequence, got {opt}")
    rows = []
    for i in range(n):
        for t in range(T):
            if t != opt[i]:
                rows.append(X[i, opt[i]] - X[i, t])
    diffs = np.array(rows)
    if queries is None:
        return diffs
    Z = np.asarray(queries, dtype=np.float64)
    Z = np.broadcast_to(Z, (n, d)) if Z.ndim == 1 else Z
    if Z.shape != (n, d):
        raise ValueError(f"queries must be (d,) or (n, d) = ({n}, {d}), got {np.shape(queries)}")
    Zrows = np.repeat(Z, T - 1, axis=0)
    return np.einsum("ka,kb->kab", diffs, Zrows).reshape(len(diffs), d * d)


def solve_att_svm(X: np.ndarray, opt: Sequence[int], *, queries: np.ndarray | None = None,
                  tol: float = 1e-10) -> SVMSolution:
    """Solve the Att-SVM for p (``queries=None``) or the W-SVM for the key-query matrix W.

    Returns:
        An :class:`SVMSolution` whose ``w`` is p^mm, shape (d,), or W^mm, shape (d, d).
    """
    sol = max_margin(att_svm_constraints(X, opt, queries), tol=tol)
    if queries is None:
        return sol
    d = np.asarray(X).shape[2]
    return SVMSolution(w=sol.w.reshape(d, d), alpha=sol.alpha, support=sol.support, margin=sol.margin,
                       max_violation=sol.max_violation)


def locally_optimal(X: np.ndarray, Y: np.ndarray, v: np.ndarray, tokens: Sequence[int], *, tol: float = 1e-7,
                    queries: np.ndarray | None = None) -> np.ndarray:
    """Which of the selected ``tokens`` are locally optimal, in the paper's sense: (n,) bool.

    Solve the Att-SVM for the selection α = ``tokens`` (any token per sequence, not necessarily the
    highest-scoring one). The **support tokens** of sequence i are the t whose constraint is active,
    (x_{iα_i} − x_it)ᵀ p^mm(α) = 1. The selection is locally optimal for sequence i when α_i scores
    higher than each of its support tokens; gradient descent started in a cone around p^mm(α)
    converges to it in direction even if a better token exists further away. The highest-scoring
    tokens are always locally optimal.

    Raises:
        ValueError: if the Att-SVM of this selection is infeasible.
    """
    tokens = np.asarray(tokens, dtype=int)
    scores = token_scores(X, Y, v)
    n, T = scores.shape
    A = att_svm_constraints(X, tokens, queries)
    sol = max_margin(A, tol=tol)
    active = np.abs(A @ sol.w - 1.0) <= tol * max(1.0, float(np.abs(A @ sol.w).max()))
    ok = np.ones(n, dtype=bool)
    k = 0
    for i in range(n):
        for t in range(T):
            if t == tokens[i]:
                continue
            if active[k] and not scores[i, tokens[i]] > scores[i, t]:
                ok[i] = False
            k += 1
    return ok


def directional_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """⟨a, b⟩/(‖a‖‖b‖) of two arrays of the same shape (vectors or matrices, Frobenius)."""
    a, b = np.ravel(np.asarray(a, dtype=np.float64)), np.ravel(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
