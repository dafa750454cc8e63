"""Gradient descent-ascent for min_x max_y f(x, y): simultaneous, alternating, alternating-extrapolation.

Lee, Cho and Yun, *Fundamental Benefit of Alternating Updates in Minimax Optimization* (ICML 2024),
write all three as one framework (their official ``quadratic-extensive/algo.py``). With step sizes
α, β and extrapolation parameters γ, δ, starting from ỹ₀ = y₀:

    g_x = ∇_x f(x_t, ỹ_t);      x_{t+1} = x_t − α g_x;    x̃_{t+1} = x_t − γα g_x
    g_y = ∇_y f(x̃_{t+1}, y_t);  y_{t+1} = y_t + β g_y;    ỹ_{t+1} = y_t + δβ g_y

(γ, δ) = (1, 1) is Alt-GDA; (1, 0) is Sim-GDA with y's index shifted by one; anything else is
Alex-GDA. :class:`SimGDA` is the textbook simultaneous method (both gradients at (x_t, y_t)).

Two forms: torch optimizers over a min player's and a max player's parameters (each step calls
the closure once for Sim-GDA and twice for the others, as each player's gradient is taken at a
different point), and :func:`gda_step` / :func:`run_gda` on NumPy arrays for closed-form games.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["SimGDA", "AltGDA", "AlexGDA", "gda_step", "run_gda", "GDARun"]

Params = Iterable[torch.Tensor]


class _GDA(torch.optim.Optimizer):
    """Two parameter groups: the min player's (descends) and the max player's (ascends)."""

    def __init__(self, min_params: Params, max_params: Params, *, lr_min: float, lr_max: float, **extra: float):
        if lr_min <= 0 or lr_max <= 0:
            raise ValueError(f"step sizes must be positive, got lr_min={lr_min}, lr_max={lr_max}")
        groups = [
            {"params": list(min_params), "lr": lr_min, "role": "min"},
            {"params": list(max_params), "lr": lr_max, "role": "max"},
        ]
        if not groups[0]["params"] or not groups[1]["params"]:
            raise ValueError("both players need parameters: pass the min player's and the max player's")
        shared = {id(p) for p in groups[0]["params"]} & {id(p) for p in groups[1]["params"]}
        if shared:
            raise ValueError("a parameter cannot belong to both players")
        super().__init__(groups, defaults=dict(lr=lr_min, **extra))

    @property
    def _xs(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    @property
    def _ys(self) -> list[torch.Tensor]:
        return self.param_groups[1]["params"]

    def _grads(self, closure: Callable[[], torch.Tensor], params: list[torch.Tensor]) -> tuple[Any, list[torch.Tensor]]:
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        return loss, [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]


class SimGDA(_GDA):
    """Textbook simultaneous GDA: x ← x − α∇_x f(x, y) and y ← y + β∇_y f(x, y) from the same point.

    Args:
        min_params, max_params: the two players' parameters.
        lr_min, lr_max: step sizes α and β.
    """

    def __init__(self, min_params: Params, max_params: Params, *, lr_min: float, lr_max: float):
        super().__init__(min_params, max_params, lr_min=lr_min, lr_max=lr_max)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> Any:  # type: ignore[override]
        """One step; ``closure`` computes f and calls ``backward()`` (it is called once)."""
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        alpha, beta = self.param_groups[0]["lr"], self.param_groups[1]["lr"]
        for x in self._xs:
            if x.grad is not None:
                x.add_(x.grad, alpha=-alpha)
        for y in self._ys:
            if y.grad is not None:
                y.add_(y.grad, alpha=beta)
        return loss


class AlexGDA(_GDA):
    """Alternating-extrapolation GDA (Lee, Cho and Yun, 2024); Alt-GDA at γ = δ = 1.

    Args:
        min_params, max_params: the two players' parameters.
        lr_min, lr_max: step sizes α and β.
        gamma, delta: extrapolation parameters γ and δ (see the module docstring).
    """

    def __init__(
        self, min_params: Params, max_params: Params, *, lr_min: float, lr_max: float, gamma: float = 1.0, delta: float = 1.0
    ):
        super().__init__(min_params, max_params, lr_min=lr_min, lr_max=lr_max, gamma=gamma, delta=delta)
        self.gamma, self.delta = float(gamma), float(delta)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> Any:  # type: ignore[override]
        """One step; ``closure`` computes f and calls ``backward()`` (called twice per step).

        Returns:
            The closure's value at (x_t, ỹ_t).
        """
        xs, ys = self._xs, self._ys
        alpha, beta = self.param_groups[0]["lr"], self.param_groups[1]["lr"]
        y_tilde = [self.state[y].setdefault("extrapolated", y.detach().clone()) for y in ys]
        y_now = [y.detach().clone() for y in ys]
        for y, yt in zip(ys, y_tilde):  # the min player looks at the extrapolated max player
            y.copy_(yt)
        loss, gx = self._grads(closure, xs)
        for y, yn in zip(ys, y_now):
            y.copy_(yn)
        x_new = [x - alpha * g for x, g in zip(xs, gx)]
        for x, g in zip(xs, gx):  # the max player looks at the extrapolated min player
            x.sub_(self.gamma * alpha * g)
        _, gy = self._grads(closure, ys)
        for x, xn in zip(xs, x_new):
            x.copy_(xn)
        for y, yt, g in zip(ys, y_tilde, gy):
            yt.copy_(y + self.delta * beta * g)
            y.add_(g, alpha=beta)
        return loss


class AltGDA(AlexGDA):
    """Alternating GDA: the min player steps, then the max player steps at the new x."""

    def __init__(self, min_params: Params, max_params: Params, *, lr_min: float, lr_max: float):
        super().__init__(min_params, max_params, lr_min=lr_min, lr_max=lr_max, gamma=1.0, delta=1.0)


# ----------------------------------------------------------------------------------- arrays
State = tuple[np.ndarray, np.ndarray, np.ndarray]


def gda_step(
    grad_x: Callable[[np.ndarray, np.ndarray], np.ndarray],
    grad_y: Callable[[np.ndarray, np.ndarray], np.ndarray],
    state: State,
    *,
    alpha: float,
    beta: float,
    gamma: float = 1.0,
    delta: float = 1.0,
) -> State:
    """One step of the Alex-GDA framework on arrays; ``state`` is (x, y, ỹ). Returns the new state."""
    x, y, y_tld = state
    gx = grad_x(x, y_tld)
    x_new, x_tld = x - alpha * gx, x - gamma * alpha * gx
    gy = grad_y(x_tld, y)
    return x_new, y + beta * gy, y + delta * beta * gy


@dataclass(frozen=True)
class GDARun:
    """A run of a GDA method on a game.

    Attributes:
        distance2: ‖x_t‖² + ‖y_t‖² (squared distance to a saddle at 0) for t = 0, 1, ..., shape (T+1,).
        iterations: the first t with distance2 ≤ tol (None if never reached or no tol was given).
        diverged: True if distance2 exceeded ``diverge_at`` (the run stopped there).
        path: with ``keep_path=True``, the iterates z_t = (x_t, y_t), shape (T+1, dx + dy).
    """

    distance2: np.ndarray
    iterations: int | None
    diverged: bool
    path: np.ndarray | None = None

    @property
    def converged(self) -> bool:
        return self.iterations is not None


def run_gda(
    game: Any,
    method: str,
    *,
    alpha: float,
    beta: float,
    gamma: float = 1.0,
    delta: float = 1.0,
    steps: int,
    tol: float | None = None,
    diverge_at: float = 1e12,
    keep_path: bool = False,
    warn_unstable: bool = True,
) -> GDARun:
    """Run ``method`` ("sim", "alt" or "alex") from the game's (x0, y0), stopping at ``tol`` or ``diverge_at``.

    Args:
        game: anything with ``grad_x(x, y)``, ``grad_y(x, y)``, ``x0`` and ``y0`` (e.g. a
            :class:`hild.data.QuadraticGame`).
        steps: the iteration cap.
        tol: stop at the first t with ‖z_t‖² ≤ tol (absolute).
        keep_path: also return every iterate (for plotting trajectories).
        warn_unstable: if ``game`` can compute its update matrix (a QuadraticGame), warn when the
            steps make the method diverge, naming the stable range; pass False where divergence is
            the point of the experiment.
    """
    if method not in ("sim", "alt", "alex"):
        raise ValueError(f"unknown method {method!r}: use 'sim', 'alt' or 'alex'")
    if method == "alt":
        gamma = delta = 1.0
    if warn_unstable and hasattr(game, "check_step"):
        game.check_step(method, alpha=alpha, beta=beta, gamma=gamma, delta=delta)  # type: ignore[arg-type]
    x, y = np.array(game.x0, dtype=np.float64), np.array(game.y0, dtype=np.float64)
    state: State = (x, y, y.copy())
    out = [float(x @ x + y @ y)]
    path = [np.concatenate([x, y])] if keep_path else None
    hit: int | None = 0 if tol is not None and out[0] <= tol else None
    diverged = False
    t = 0
    while hit is None and t < steps:
        if method == "sim":
            x, y = state[0], state[1]
            gx, gy = game.grad_x(x, y), game.grad_y(x, y)
            x, y = x - alpha * gx, y + beta * gy
            state = (x, y, y)
        else:
            state = gda_step(game.grad_x, game.grad_y, state, alpha=alpha, beta=beta, gamma=gamma, delta=delta)
        t += 1
        d2 = float(state[0] @ state[0] + state[1] @ state[1])
        out.append(d2)
        if path is not None:
            path.append(np.concatenate([state[0], state[1]]))
        if tol is not None and d2 <= tol:
            hit = t
        elif not np.isfinite(d2) or d2 > diverge_at:
            diverged = True
            break
    return GDARun(np.asarray(out), hit, diverged, None if path is None else np.asarray(path))
