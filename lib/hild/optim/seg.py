"""Stochastic extragradient (SEG) on finite-sum games: sampling schemes and anchoring.

Chae, Yun and Kim, *Stochastic Extragradient with Flip-Flop Shuffling & Anchoring: Provable
Improvements* (NeurIPS 2024; official code github jsch8q/SEG-FFA). The game's operator is a mean
of n components, F = (1/n) Σᵢ Fᵢ with Fᵢ(z) = (∇ₓfᵢ, −∇ᵧfᵢ). One extragradient step on component i
with extrapolation step α and update step β is

    w = z − α Fᵢ(z),    z ← z − β Fᵢ(w).

The variants differ only in which components a pass visits, and whether the pass ends with an
anchoring step:

* ``sampling="us"``: uniform sampling, 2n indices drawn with replacement;
* ``sampling="rr"``: random reshuffling, two fresh permutations of the n components;
* ``sampling="ff"``: flip-flop, one permutation τ and then the same permutation reversed
  (τ₁ … τₙ τₙ … τ₁, a palindrome);
* ``anchor=True``: at the end of every epoch (n steps for "us"/"rr", the 2n steps of a flip-flop
  epoch for "ff") the iterate is averaged with the epoch's starting point, z ← (z + z_start) / 2.

SEG-FFA is ``sampling="ff", anchor=True`` with α = β/2 (the default ``extra_ratio`` when anchoring
flip-flop); the other variants default to α = β, as in the official code. Every variant does 2n
component steps (4n operator evaluations) per pass, so passes compare equal work.

Two forms: :class:`SEG`, a torch optimizer over a min player's and a max player's parameters whose
``step(closure)`` is one component step (``closure(i)`` computes fᵢ and calls ``backward()``), and
:func:`run_seg` on a :class:`hild.data.FiniteSumGame`, which runs whole passes with NumPy (the
within-pass map of a quadratic component is affine, z ← Mᵢz + cᵢ, so a step is one mat-vec).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from .gda import _GDA

__all__ = ["SEG", "SEGRun", "flip_flop", "pass_order", "run_seg", "SAMPLINGS"]

Sampling = Literal["us", "rr", "ff"]
SAMPLINGS: tuple[str, ...] = ("us", "rr", "ff")


def flip_flop(perm: Iterable[int]) -> np.ndarray:
    """τ followed by τ reversed: the flip-flop order of one epoch, shape (2n,)."""
    p = np.asarray(list(perm), dtype=np.int64)
    return np.concatenate([p, p[::-1]])


def pass_order(sampling: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """The 2n component indices one pass of ``sampling`` visits, in order."""
    if sampling == "us":
        return rng.integers(0, n, size=2 * n)
    if sampling == "rr":
        return np.concatenate([rng.permutation(n), rng.permutation(n)])
    if sampling == "ff":
        return flip_flop(rng.permutation(n))
    raise ValueError(f"unknown sampling {sampling!r}: use one of {SAMPLINGS}")


def _check(sampling: str, n: int, extra_ratio: float | None, anchor: bool) -> float:
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}: use one of {SAMPLINGS}")
    if n < 1:
        raise ValueError(f"need at least one component, got n_components={n}")
    ratio = (0.5 if (anchor and sampling == "ff") else 1.0) if extra_ratio is None else float(extra_ratio)
    if ratio < 0:
        raise ValueError(f"extra_ratio (α/β) must be non-negative, got {ratio}")
    return ratio


def _epoch(sampling: str, n: int) -> int:
    return 2 * n if sampling == "ff" else n


class SEG(_GDA):
    """Stochastic extragradient over two players with a sampling scheme and optional anchoring.

    ``step(closure)`` performs ONE component extragradient step; the optimizer chooses the
    component i and calls ``closure(i)`` twice (at z and at the extrapolated point w). A pass is
    2n steps; :attr:`pass_length` says so. Change the step size between passes through
    ``param_groups`` (both groups share it), as a scheduler would.

    Args:
        min_params, max_params: the two players' parameters.
        lr: the update step β.
        n_components: n, the number of components of the finite sum.
        sampling: ``"us"``, ``"rr"`` or ``"ff"`` (see the module docstring).
        anchor: average each epoch's end point with its start point.
        extra_ratio: α/β; default 1/2 for ``sampling="ff", anchor=True`` (SEG-FFA), else 1.
        seed: seeds the component orders (default: drawn from torch's global generator, so
            ``hild.seed_everything`` makes a run reproducible).
    """

    def __init__(self, min_params: Iterable[torch.Tensor], max_params: Iterable[torch.Tensor], *, lr: float,
                 n_components: int, sampling: Sampling = "ff", anchor: bool = False,
                 extra_ratio: float | None = None, seed: int | None = None):
        ratio = _check(sampling, n_components, extra_ratio, anchor)
        super().__init__(min_params, max_params, lr_min=lr, lr_max=lr)
        self.n, self.sampling, self.anchor, self.extra_ratio = int(n_components), sampling, bool(anchor), ratio
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.rng = np.random.default_rng(seed)
        self._order: np.ndarray = np.empty(0, dtype=np.int64)
        self._pos = 0
        self._start: list[torch.Tensor] = []

    @property
    def pass_length(self) -> int:
        """Component steps per pass: 2n for every sampling scheme."""
        return 2 * self.n

    @property
    def _params(self) -> list[torch.Tensor]:
        return self._xs + self._ys

    @torch.no_grad()
    def step(self, closure: Callable[[int], Any]) -> Any:  # type: ignore[override]
        """One component extragradient step; returns fᵢ at the step's starting point."""
        if self._pos == 0:
            self._order = pass_order(self.sampling, self.n, self.rng)
        if self.anchor and self._pos % _epoch(self.sampling, self.n) == 0:
            self._start = [p.detach().clone() for p in self._params]
        i = int(self._order[self._pos])
        beta = self.param_groups[0]["lr"]
        alpha = self.extra_ratio * beta
        z = [p.detach().clone() for p in self._params]
        loss, g = self._field(closure, i)
        for p, gi in zip(self._params, g):
            p.sub_(alpha * gi)  # the extrapolated point w = z − αFᵢ(z)
        _, g = self._field(closure, i)
        for p, z0, gi in zip(self._params, z, g):
            p.copy_(z0 - beta * gi)  # z ← z − βFᵢ(w)
        self._pos += 1
        if self.anchor and self._pos % _epoch(self.sampling, self.n) == 0:
            for p, s in zip(self._params, self._start):
                p.add_(s).mul_(0.5)
        if self._pos == self.pass_length:
            self._pos = 0
        return loss

    def _field(self, closure: Callable[[int], Any], i: int) -> tuple[Any, list[torch.Tensor]]:
        """Fᵢ at the current parameters, as one list over (min params, max params): (∇ₓfᵢ, −∇ᵧfᵢ)."""
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure(i)
        nx = len(self._xs)
        out = []
        for k, p in enumerate(self._params):
            g = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            out.append(g if k < nx else -g)
        return loss, out


# ----------------------------------------------------------------------------------- arrays
@dataclass(frozen=True)
class SEGRun:
    """A run of one SEG variant on a :class:`hild.data.FiniteSumGame`.

    Attributes:
        residual2: ‖F(z_k)‖² after k = 0, 1, ..., K passes, shape (K+1,).
        distance2: ‖z_k − z*‖² after each pass, shape (K+1,).
        z: the last iterate, shape (d,).
    """

    residual2: np.ndarray
    distance2: np.ndarray
    z: np.ndarray


def run_seg(
    game: Any,
    *,
    sampling: Sampling,
    anchor: bool = False,
    lr: float | Callable[[int], float],
    passes: int,
    extra_ratio: float | None = None,
    seed: int = 0,
    z0: np.ndarray | None = None,
) -> SEGRun:
    """Run one SEG variant for ``passes`` passes (2n component steps each) from the game's z0.

    Args:
        game: a :class:`hild.data.FiniteSumGame`.
        lr: the update step β, a number or a function of the pass index k = 0, 1, ... (the step
            is constant within a pass, as in the official code).
        extra_ratio: α/β (default as in :class:`SEG`).
        seed: seeds the component orders (the same orders as :class:`SEG` with this seed).
    """
    n = game.n
    ratio = _check(sampling, n, extra_ratio, anchor)
    rng = np.random.default_rng(seed)
    step = lr if callable(lr) else (lambda k, v=float(lr): v)
    J = game.jacobians                       # (n, d, d): Fᵢ(z) = Jᵢz − bᵢ
    b = game.signs * game.t                  # (n, d)
    J2 = J @ J                               # for the affine form of one step
    Jb = np.einsum("nij,nj->ni", J, b)
    M, tmp = np.empty_like(J), np.empty_like(J)   # reused buffers: assembling M in place is 4x faster
    diagonal = M.reshape(n, -1)[:, :: game.d + 1]
    z_star = game.solution()
    Jm, bm = J.mean(0), b.mean(0)

    def residual2(z: np.ndarray) -> float:  # ‖F(z)‖², with the mean operator formed once
        r = Jm @ z - bm
        return float(r @ r)
    z = np.array(game.z0 if z0 is None else z0, dtype=np.float64)
    epoch = _epoch(sampling, n)
    res, dist = [residual2(z)], [float((z - z_star) @ (z - z_star))]
    for k in range(passes):
        beta = float(step(k))
        alpha = ratio * beta
        # w = z − α(Jz − b); z' = z − β(Jw − b) = (I − βJ + αβJ²) z + β b − αβ J b
        np.multiply(J2, alpha * beta, out=M)
        M += np.multiply(J, -beta, out=tmp)
        diagonal += 1.0
        c = beta * b - (alpha * beta) * Jb
        Ms, cs = list(M), list(c)
        order = pass_order(sampling, n, rng)
        start = z
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is cut off below
            for pos, i in enumerate(order.tolist(), start=1):
                z = Ms[i] @ z + cs[i]
                if anchor and pos % epoch == 0:
                    z = 0.5 * (z + start)
                    start = z
        if not np.all(np.isfinite(z)) or np.abs(z).max() > 1e100:
            res.extend([np.inf] * (passes - k))
            dist.extend([np.inf] * (passes - k))
            break
        res.append(residual2(z))
        dist.append(float((z - z_star) @ (z - z_star)))
    return SEGRun(np.asarray(res), np.asarray(dist), z)
