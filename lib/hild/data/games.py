"""Quadratic and bilinear minimax games with a known saddle point.

    f(x, y) = ½ xᵀAx + xᵀBy − ½ yᵀCy,    x ∈ ℝ^dx (min player), y ∈ ℝ^dy (max player).

With A ⪰ μ_x I and C ⪰ μ_y I the game is strongly-convex-strongly-concave with its unique saddle
point at (0, 0); with A = C = 0 it is bilinear. Every gradient-descent-ascent method of the
Alex-GDA family is then a *linear* map of a fixed state, so its speed is known exactly: the
spectral radius ρ(M) of its update matrix. :meth:`QuadraticGame.update_matrix` forms M, and the
chapters compare ρ(M)ᵗ with the measured contraction.

The random instance follows Lee, Cho and Yun (ICML 2024, official code ``quadratic-extensive``):
A = U diag(μ_x, L_x, u₃..u_d) Uᵀ, C = V diag(μ_y, L_y, u'₃..u'_d) Vᵀ, B = U diag(L_xy, μ_xy, w₃..w_d) Vᵀ
with U, V Haar-orthogonal and the middle values uniform between the extremes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Method = Literal["sim", "alt", "alex"]
METHODS: tuple[str, ...] = ("sim", "alt", "alex")

__all__ = ["QuadraticGame", "quadratic_game", "bilinear_game", "METHODS", "iterations_to", "count_iterations"]


def _haar(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))  # sign fix makes the distribution exactly Haar


@dataclass(frozen=True, eq=False)
class QuadraticGame:
    """f(x, y) = ½ xᵀAx + xᵀBy − ½ yᵀCy with its constants and a starting point.

    Attributes:
        A: (dx, dx) symmetric, the min player's curvature.
        B: (dx, dy) the coupling.
        C: (dy, dy) symmetric, the max player's curvature (f is concave in y when C ⪰ 0).
        x0, y0: the starting point, shapes (dx,) and (dy,).
        mu_x, L_x, mu_y, L_y: extreme eigenvalues of A and C (0 for a bilinear game).
        mu_xy, L_xy: smallest and largest singular values of B.
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    mu_x: float = field(init=False)
    L_x: float = field(init=False)
    mu_y: float = field(init=False)
    L_y: float = field(init=False)
    mu_xy: float = field(init=False)
    L_xy: float = field(init=False)

    def __post_init__(self) -> None:
        A, B, C = (np.asarray(m, dtype=np.float64) for m in (self.A, self.B, self.C))
        x0, y0 = np.asarray(self.x0, dtype=np.float64), np.asarray(self.y0, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be square (dx, dx), got shape {A.shape}")
        if C.ndim != 2 or C.shape[0] != C.shape[1]:
            raise ValueError(f"C must be square (dy, dy), got shape {C.shape}")
        dx, dy = A.shape[0], C.shape[0]
        if B.shape != (dx, dy):
            raise ValueError(f"B must have shape (dx, dy) = ({dx}, {dy}) to match A and C, got {B.shape}")
        if x0.shape != (dx,) or y0.shape != (dy,):
            raise ValueError(f"x0 and y0 must have shapes ({dx},) and ({dy},), got {x0.shape} and {y0.shape}")
        for name, m in (("A", A), ("C", C)):
            if not np.allclose(m, m.T, atol=1e-12 * (1 + np.abs(m).max())):
                raise ValueError(f"{name} must be symmetric")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        for k, v in (("A", A), ("B", B), ("C", C), ("x0", x0), ("y0", y0)):
            set_(k, v)
        ea, ec = np.linalg.eigvalsh(A), np.linalg.eigvalsh(C)
        sb = np.linalg.svd(B, compute_uv=False)
        set_("mu_x", float(ea[0]))
        set_("L_x", float(ea[-1]))
        set_("mu_y", float(ec[0]))
        set_("L_y", float(ec[-1]))
        set_("mu_xy", float(sb[-1]) if min(dx, dy) > 0 else 0.0)
        set_("L_xy", float(sb[0]) if min(dx, dy) > 0 else 0.0)

    # ----------------------------------------------------------------------------- basics
    @property
    def dx(self) -> int:
        return self.A.shape[0]

    @property
    def dy(self) -> int:
        return self.C.shape[0]

    @property
    def is_bilinear(self) -> bool:
        return not (self.A.any() or self.C.any())

    @property
    def kappa_x(self) -> float:
        return self.L_x / self.mu_x if self.mu_x > 0 else float("inf")

    @property
    def kappa_y(self) -> float:
        return self.L_y / self.mu_y if self.mu_y > 0 else float("inf")

    @property
    def kappa_xy(self) -> float:
        """L_xy / √(μ_x μ_y), the coupling's condition number in the paper's notation."""
        return self.L_xy / np.sqrt(self.mu_x * self.mu_y) if self.mu_x * self.mu_y > 0 else float("inf")

    def value(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(0.5 * x @ self.A @ x + x @ self.B @ y - 0.5 * y @ self.C @ y)

    def grad_x(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.A @ x + self.B @ y

    def grad_y(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.B.T @ x - self.C @ y

    def saddle(self) -> tuple[np.ndarray, np.ndarray]:
        """The saddle point (0, 0) (for a bilinear game with singular B, the one nearest the origin)."""
        return np.zeros(self.dx), np.zeros(self.dy)

    def distance2(self, x: np.ndarray, y: np.ndarray) -> float:
        """‖x‖² + ‖y‖², the squared distance to the saddle point."""
        return float(x @ x + y @ y)

    # ------------------------------------------------------------------- exact linear theory
    def update_matrix(
        self, method: Method, *, alpha: float, beta: float, gamma: float = 1.0, delta: float = 1.0
    ) -> np.ndarray:
        """The matrix M of one step of ``method`` acting on its state.

        * ``"sim"`` (textbook simultaneous GDA) and ``"alt"`` act on z = (x, y);
        * ``"alex"`` acts on (x, y, ỹ): x_{t+1} = x_t − α g_x, x̃_{t+1} = x_t − γα g_x with
          g_x = ∇_x f(x_t, ỹ_t), then y_{t+1} = y_t + β g_y, ỹ_{t+1} = y_t + δβ g_y with
          g_y = ∇_y f(x̃_{t+1}, y_t). (γ, δ) = (1, 1) is Alt-GDA, (1, 0) is Sim-GDA shifted by
          one index.
        """
        A, B, C = self.A, self.B, self.C
        dx, dy = self.dx, self.dy
        Ix, Iy = np.eye(dx), np.eye(dy)
        if method == "sim":
            return np.block([[Ix - alpha * A, -alpha * B], [beta * B.T, Iy - beta * C]])
        if method == "alt":
            top = np.hstack([Ix - alpha * A, -alpha * B])
            # y_{t+1} = y + β(Bᵀx_{t+1} − Cy) with x_{t+1} from the row above
            bottom = beta * B.T @ top + np.hstack([np.zeros((dy, dx)), Iy - beta * C])
            return np.vstack([top, bottom])
        if method == "alex":
            zxy = np.zeros((dx, dy))
            # rows act on s = (x, y, ỹ)
            gx = np.hstack([A, zxy, B])  # g_x = A x + B ỹ
            x_new = np.hstack([Ix, zxy, zxy]) - alpha * gx
            x_tld = np.hstack([Ix, zxy, zxy]) - gamma * alpha * gx
            gy = B.T @ x_tld - np.hstack([np.zeros((dy, dx)), C, np.zeros((dy, dy))])
            y_sel = np.hstack([np.zeros((dy, dx)), Iy, np.zeros((dy, dy))])
            y_new = y_sel + beta * gy
            y_tld = y_sel + delta * beta * gy
            return np.vstack([x_new, y_new, y_tld])
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")

    def spectral_radius(self, method: Method, **steps: float) -> float:
        """ρ(M) of :meth:`update_matrix`: the method's asymptotic contraction per step."""
        return float(np.max(np.abs(np.linalg.eigvals(self.update_matrix(method, **steps)))))

    def stable_step(self, method: Method, *, gamma: float = 1.0, delta: float = 1.0, hi: float = 1e3) -> float:
        """The largest equal step α = β with ρ(M) < 1, found by scanning then bisection (0 if none)."""
        grid = np.geomspace(1e-6, hi, 400)
        rho = np.array([self.spectral_radius(method, alpha=a, beta=a, gamma=gamma, delta=delta) for a in grid])
        ok = rho < 1
        if not ok.any():
            return 0.0
        i = int(np.flatnonzero(ok)[-1])
        if i == len(grid) - 1:
            return float(grid[-1])
        lo, up = grid[i], grid[i + 1]
        for _ in range(60):
            mid = 0.5 * (lo + up)
            if self.spectral_radius(method, alpha=mid, beta=mid, gamma=gamma, delta=delta) < 1:
                lo = mid
            else:
                up = mid
        return float(lo)

    def check_step(self, method: Method, *, alpha: float, beta: float, gamma: float = 1.0, delta: float = 1.0) -> float:
        """Return ρ(M); warn, naming the stable range, when the steps make ``method`` diverge."""
        if alpha <= 0 or beta <= 0:
            raise ValueError(f"step sizes must be positive, got alpha={alpha}, beta={beta}")
        rho = self.spectral_radius(method, alpha=alpha, beta=beta, gamma=gamma, delta=delta)
        if rho > 1 + 1e-12:
            bound = self.stable_step(method, gamma=gamma, delta=delta)
            what = f"{method}-GDA" + (f" (γ={gamma:g}, δ={delta:g})" if method == "alex" else "")
            hint = (
                f"with equal steps it is stable for α = β < {bound:.4g}"
                if bound > 0
                else "no equal step size makes it converge on this game"
            )
            warnings.warn(
                f"{what} with α={alpha:.4g}, β={beta:.4g} diverges on this game: ρ(M) = {rho:.4f} > 1; {hint}.",
                RuntimeWarning,
                stacklevel=2,
            )
        return rho


def quadratic_game(
    d: int,
    *,
    mu: float,
    L: float,
    mu_xy: float,
    L_xy: float,
    seed: int = 0,
    bilinear: bool = False,
) -> QuadraticGame:
    """A random SC-SC quadratic game (or, with ``bilinear=True``, a bilinear one) in dx = dy = d.

    Args:
        d: dimension of each player (≥ 2).
        mu, L: extreme eigenvalues of A and of C (ignored for a bilinear game).
        mu_xy, L_xy: extreme singular values of B.
        seed: seeds the instance and the start z₀ ~ N(0, I).
    """
    if d < 2:
        raise ValueError(f"d must be at least 2 to hold both extreme eigenvalues, got {d}")
    if not bilinear and not (0 < mu <= L):
        raise ValueError(f"need 0 < mu <= L for a strongly-convex-strongly-concave game, got mu={mu}, L={L}")
    if not (0 < mu_xy <= L_xy):
        raise ValueError(f"need 0 < mu_xy <= L_xy, got mu_xy={mu_xy}, L_xy={L_xy}")
    rng = np.random.default_rng(seed)
    U, V = _haar(d, rng), _haar(d, rng)
    a = np.concatenate([[mu, L], rng.uniform(mu, L, d - 2)])
    c = np.concatenate([[mu, L], rng.uniform(mu, L, d - 2)])
    w = np.concatenate([[L_xy, mu_xy], rng.uniform(mu_xy, L_xy, d - 2)])
    A = (U * a) @ U.T
    C = (V * c) @ V.T
    A, C = 0.5 * (A + A.T), 0.5 * (C + C.T)
    B = (U * w) @ V.T
    if bilinear:
        A, C = np.zeros_like(A), np.zeros_like(C)
    x0, y0 = rng.standard_normal(d), rng.standard_normal(d)
    return QuadraticGame(A=A, B=B, C=C, x0=x0, y0=y0)


def bilinear_game(d: int, *, mu_xy: float, L_xy: float, seed: int = 0) -> QuadraticGame:
    """f(x, y) = xᵀBy with B's singular values between mu_xy and L_xy."""
    return quadratic_game(d, mu=0.0, L=0.0, mu_xy=mu_xy, L_xy=L_xy, seed=seed, bilinear=True)


def iterations_to(rho: float, eps: float) -> float:
    """Steps for ρᵗ to fall below √eps, i.e. for ‖z_t‖² ≤ eps·‖z₀‖²: log(1/eps) / (2 log(1/ρ))."""
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    if rho >= 1:
        return float("inf")
    if rho <= 0:
        return 0.0
    return float(np.log(1 / eps) / (2 * np.log(1 / rho)))


def count_iterations(
    M: np.ndarray, s0: np.ndarray, *, tol: float, cap: int, n_xy: int | None = None, block: int = 128,
    device: str | None = None,
) -> int | None:
    """First t ≤ cap with ‖(M^t s0)[:n_xy]‖² ≤ tol, iterating the linear map in blocks of matrix powers.

    This is the same iteration as running the optimizer (the tests check that one step of each
    optimizer is M), but a block of ``block`` steps costs one batched matrix product, so the
    million-step runs of badly conditioned games at full scale take seconds.

    Args:
        M: (n, n) update matrix; s0: (n,) initial state.
        n_xy: how many leading state entries form z = (x, y) (the rest, e.g. Alex's ỹ, is not
            part of the distance); default all.
    Returns:
        The iteration count, or None if ``tol`` is not reached within ``cap`` steps.
    """
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    Mt = torch.as_tensor(M, dtype=torch.float64, device=dev)
    s = torch.as_tensor(s0, dtype=torch.float64, device=dev)
    n = Mt.shape[0]
    k = n if n_xy is None else n_xy
    if float(s[:k] @ s[:k]) <= tol:
        return 0
    powers = [Mt]
    for _ in range(block - 1):
        powers.append(Mt @ powers[-1])
    P = torch.stack(powers)  # (block, n, n): M^1 .. M^block
    Mblock = powers[-1]
    t = 0
    while t < cap:
        Z = P @ s  # (block, n): states t+1 .. t+block
        d2 = (Z[:, :k] ** 2).sum(1)
        hit = torch.nonzero(d2 <= tol)
        if len(hit):
            found = t + int(hit[0]) + 1
            return found if found <= cap else None
        if not torch.isfinite(d2[-1]) or float(d2[-1]) > 1e200:
            return None
        s = Mblock @ s
        t += block
    return None


# ============================================================================ finite-sum games
# Chae, Yun and Kim, *Stochastic Extragradient with Flip-Flop Shuffling & Anchoring* (NeurIPS 2024),
# official code ``SEG-monotone.py`` and ``SEG-strongly_monotone.py``: n quadratic components whose
# average is a (strongly) monotone game, while single components need not be monotone at all.

from typing import Any  # noqa: E402

__all__ += ["FiniteSumGame", "finite_sum_game"]


@dataclass(frozen=True, eq=False)
class FiniteSumGame:
    """A finite-sum quadratic game min_x max_y (1/n) Σᵢ fᵢ(x, y), fᵢ(z) = ½ zᵀQᵢz − tᵢᵀz, z = (x, y).

    The saddle operator of component i is Fᵢ(z) = S(Qᵢz − tᵢ) with S = diag(1_dx, −1_dy): descent on x,
    ascent on y. The game's operator is their mean F(z) = S(Q̄z − t̄), zero at the saddle point z*.

    Attributes:
        Q: (n, d, d) symmetric component Hessians, d = dx + dy; Qᵢ = [[Aᵢ, Bᵢ], [Bᵢᵀ, −Cᵢ]].
        t: (n, d) component linear terms.
        dx: the min player's dimension (the max player has d − dx).
        z0: (d,) the starting point.
    """

    Q: np.ndarray
    t: np.ndarray
    dx: int
    z0: np.ndarray

    def __post_init__(self) -> None:
        Q = np.asarray(self.Q, dtype=np.float64)
        t = np.asarray(self.t, dtype=np.float64)
        z0 = np.asarray(self.z0, dtype=np.float64)
        if Q.ndim != 3 or Q.shape[1] != Q.shape[2]:
            raise ValueError(f"Q must have shape (n, d, d), got {Q.shape}")
        n, d, _ = Q.shape
        if t.shape != (n, d) or z0.shape != (d,):
            raise ValueError(f"t must have shape ({n}, {d}) and z0 ({d},), got {t.shape} and {z0.shape}")
        if not 0 < int(self.dx) < d:
            raise ValueError(f"dx must be between 1 and d − 1 = {d - 1}, got {self.dx}")
        if not np.allclose(Q, Q.transpose(0, 2, 1), atol=1e-12 * (1 + np.abs(Q).max())):
            raise ValueError("every component Hessian Q[i] must be symmetric")
        for k, v in (("Q", Q), ("t", t), ("z0", z0), ("dx", int(self.dx))):
            object.__setattr__(self, k, v)

    @property
    def n(self) -> int:
        return self.Q.shape[0]

    @property
    def d(self) -> int:
        return self.Q.shape[1]

    @property
    def signs(self) -> np.ndarray:
        """S as a vector: +1 on the min player's coordinates, −1 on the max player's."""
        return np.concatenate([np.ones(self.dx), -np.ones(self.d - self.dx)])

    @property
    def jacobians(self) -> np.ndarray:
        """(n, d, d) the components' operator Jacobians SQᵢ (Fᵢ(z) = SQᵢz − Stᵢ)."""
        return self.signs[None, :, None] * self.Q

    def loss(self, i: int, x: Any, y: Any) -> Any:
        """fᵢ(x, y) for NumPy arrays or torch tensors (a torch optimizer's closure calls this)."""
        Q, t = self.Q[i], self.t[i]
        if hasattr(x, "detach"):
            import torch

            Q, t = torch.as_tensor(Q, dtype=x.dtype), torch.as_tensor(t, dtype=x.dtype)
            z = torch.cat([x, y])
        else:
            z = np.concatenate([x, y])
        return 0.5 * z @ Q @ z - t @ z

    def operator(self, z: np.ndarray, i: int | None = None) -> np.ndarray:
        """F(z), or the component's Fᵢ(z) when ``i`` is given."""
        if i is None:
            return self.signs * (self.Q.mean(0) @ z - self.t.mean(0))
        return self.signs * (self.Q[i] @ z - self.t[i])

    def solution(self) -> np.ndarray:
        """The saddle point z*: the linear solve Q̄z = t̄ (least squares if Q̄ is singular)."""
        Qm, tm = self.Q.mean(0), self.t.mean(0)
        return np.linalg.lstsq(Qm, tm, rcond=None)[0]

    def residual2(self, z: np.ndarray) -> float:
        """‖F(z)‖², the squared norm of the game's operator (zero exactly at the saddle point)."""
        r = self.operator(z)
        return float(r @ r)

    def monotonicity(self) -> float:
        """μ = λ_min of the symmetric part of F's Jacobian: > 0 strongly monotone, 0 monotone."""
        J = self.signs[:, None] * self.Q.mean(0)
        return float(np.linalg.eigvalsh(0.5 * (J + J.T))[0])

    def component_monotonicity(self) -> np.ndarray:
        """λ_min of each component's symmetric Jacobian part (negative: that component is not monotone)."""
        J = self.jacobians
        return np.linalg.eigvalsh(0.5 * (J + J.transpose(0, 2, 1)))[:, 0]

    def lipschitz(self) -> float:
        """max over components of ‖SQᵢ‖₂, the components' Lipschitz constant."""
        return float(np.linalg.norm(self.Q, ord=2, axis=(1, 2)).max())


def finite_sum_game(
    dx: int = 20, n: int = 40, *, kind: Literal["monotone", "strongly_monotone"] = "monotone", seed: int = 0,
    min_singular: float = 0.0,
) -> FiniteSumGame:
    """A random finite-sum quadratic game of the SEG-FFA paper's experiments (dx = dy).

    * ``"monotone"`` (official ``SEG-monotone.py``): Qᵢ = [[2Dᵢ, Bᵢ], [Bᵢᵀ, −2Eᵢ]] with diagonal
      Dᵢ, Eᵢ of ±1 where, on each coordinate, exactly half the components get −1. Every component is
      indefinite (not monotone) while the average is bilinear, Q̄ = [[0, B̄], [B̄ᵀ, 0]]: monotone,
      not strongly. Start: z* + (1, ..., 1).
    * ``"strongly_monotone"`` (official ``SEG-strongly_monotone.py``): Aᵢ, Cᵢ = O diag(0.5 + 0.5u) Oᵀ
      with O Haar-orthogonal and u ~ U(0, 1), so every component is strongly monotone with μ ≥ 0.5.
      Start: z* + (1, ..., 1)/√d.

    In both, Bᵢ has entries U(0, 1) and tᵢ ~ N(0, I).

    Args:
        dx: each player's dimension; n: the number of components (even for ``"monotone"``).
        seed: seeds the instance.
        min_singular: redraw (with the next draw of the same generator) until the smallest singular
            value of Q̄ is at least this. A nearly singular Q̄ puts z* far out (‖z*‖ ∝ 1/σ_min) and
            the components' noise at z*, ‖Fᵢ(z*)‖, grows with it: about one ``"monotone"`` draw in
            five has σ_min < 1e-3 and needs many more passes for every method.
    """
    if dx < 1 or n < 1:
        raise ValueError(f"need dx ≥ 1 and n ≥ 1, got dx={dx}, n={n}")
    if kind not in ("monotone", "strongly_monotone"):
        raise ValueError(f"unknown kind {kind!r}: use 'monotone' or 'strongly_monotone'")
    if kind == "monotone" and n % 2:
        raise ValueError(f"the monotone game gives −1 to exactly half the components: n must be even, got {n}")
    rng = np.random.default_rng(seed)
    d = 2 * dx
    for _ in range(1000):
        Q = np.zeros((n, d, d))
        if kind == "monotone":
            signs = np.ones((n, d))
            for j in range(d):
                signs[rng.choice(n, size=n // 2, replace=False), j] = -1.0
            for i in range(n):
                Q[i, :dx, :dx] = np.diag(2 * signs[i, :dx])
                Q[i, dx:, dx:] = -np.diag(2 * signs[i, dx:])
        else:
            for i in range(n):
                Oa, Oc = _haar(dx, rng), _haar(dx, rng)
                Q[i, :dx, :dx] = (Oa * (0.5 + 0.5 * rng.uniform(size=dx))) @ Oa.T
                Q[i, dx:, dx:] = -(Oc * (0.5 + 0.5 * rng.uniform(size=dx))) @ Oc.T
        B = rng.uniform(size=(n, dx, dx))
        Q[:, :dx, dx:] = B
        Q[:, dx:, :dx] = B.transpose(0, 2, 1)
        Q = 0.5 * (Q + Q.transpose(0, 2, 1))
        t = rng.standard_normal((n, d))
        if np.linalg.svd(Q.mean(0), compute_uv=False)[-1] >= min_singular:
            break
    else:
        raise ValueError(f"no draw in 1000 had σ_min(Q̄) ≥ {min_singular}: lower min_singular")
    z_star = np.linalg.lstsq(Q.mean(0), t.mean(0), rcond=None)[0]
    shift = np.ones(d) if kind == "monotone" else np.ones(d) / np.sqrt(d)
    return FiniteSumGame(Q=Q, t=t, dx=dx, z0=z_star + shift)
