"""SGD with each step projected onto, or out of, a subspace: Dom-SGD and Bulk-SGD.

Song, Ahn and Yun (*Does SGD really happen in tiny subspaces?*, ICLR 2025) split every SGD step
``g`` (the mini-batch gradient) with the projection ``P_k`` onto the span of the top ``k``
eigenvectors of the training loss Hessian, the *dominant subspace*::

    SGD        θ ← θ − η g
    Dom-SGD    θ ← θ − η P_k g            (mode="dom")
    Bulk-SGD   θ ← θ − η (I − P_k) g      (mode="bulk")

:class:`ProjectedSGD` is that optimizer. The subspace comes from :mod:`hild.hessian`: a fixed
:class:`~hild.hessian.Subspace` (or an :class:`~hild.hessian.Eigs`), or a source that is refreshed
along training, typically a :class:`~hild.hessian.SharpnessCallback` with ``k`` eigenpairs, whose
warm-started :func:`~hild.hessian.top_eigs` runs every ``every`` steps::

    dominant = hessian.SharpnessCallback(loss_fn, (x, y), k=10, every=10)
    opt = optim.ProjectedSGD(model.parameters(), dominant, lr=0.1, mode="bulk")
    train.train(model, loss_fn, batches, optimizer=opt, steps=300, callbacks=[dominant])
    opt.overlaps            # ‖P_k g‖ / ‖g‖ of every step's gradient

``mode="none"`` takes the plain SGD step through the same code and records the same overlaps, so
the three arms of an experiment differ in one argument only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch

from ..hessian import Eigs, Subspace
from ..hessian.operator import flatten, unflatten

__all__ = ["ProjectedSGD", "MODES"]

Mode = Literal["dom", "bulk", "none"]
MODES: tuple[str, ...] = ("dom", "bulk", "none")
SubspaceLike = Any  # Subspace | Eigs | (n, k) tensor | an object with `.last` | a callable returning one


def _as_subspace(value: Any) -> Subspace | None:
    if value is None or isinstance(value, Subspace):
        return value
    if isinstance(value, Eigs):
        return Subspace(value, orthonormalize=False)  # top_eigs returns orthonormal vectors
    if isinstance(value, torch.Tensor):
        return Subspace(value)
    raise TypeError(f"cannot use a {type(value).__name__} as a subspace: pass a hessian.Subspace, a "
                    "hessian.Eigs, an (n, k) tensor, a SharpnessCallback, or a function returning one of these")


class ProjectedSGD(torch.optim.Optimizer):
    """SGD whose step is projected onto (``"dom"``) or out of (``"bulk"``) a subspace.

    Args:
        params: the parameters, in the same order as the subspace's coordinates (for a subspace
            from ``hessian.HessianOperator(model, ...)``: ``model.parameters()``).
        subspace: where the projection comes from, read again at every step:

            * a :class:`~hild.hessian.Subspace`, an :class:`~hild.hessian.Eigs` or an ``(n, k)``
              tensor of basis vectors (a fixed subspace);
            * an object with a ``last`` attribute holding an ``Eigs``, e.g. a
              :class:`~hild.hessian.SharpnessCallback` (refreshed by it along training);
            * a function of no arguments returning any of the above.
        lr: the step size η.
        mode: ``"dom"`` (θ ← θ − η P g), ``"bulk"`` (θ ← θ − η (g − P g)) or ``"none"`` (θ ← θ − η g).

    Attributes:
        overlaps: ``‖P g‖ / ‖g‖`` of each step's gradient ``g``, measured before projecting (a list
            of floats, one per step, in every mode).
        last_overlap: the latest of them (``nan`` before the first step).

    Raises:
        ValueError: an unknown mode, a non-positive lr, or a subspace of the wrong dimension (at
            the first step).
    """

    def __init__(self, params: Iterable[torch.Tensor], subspace: SubspaceLike, *, lr: float, mode: Mode = "dom"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} ('dom': onto the subspace, 'bulk': out of it, "
                             f"'none': plain SGD), got {mode!r}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        super().__init__(params, {"lr": float(lr)})
        if len(self.param_groups) != 1:
            raise ValueError("ProjectedSGD takes one parameter group: the projection acts on all parameters at once")
        self.mode = mode
        self.source = subspace
        self.overlaps: list[float] = []
        self._cache: tuple[Any, Subspace] | None = None

    @property
    def params(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    @property
    def subspace(self) -> Subspace:
        """The subspace the next step projects with (read from the source)."""
        value = self.source
        if hasattr(value, "last"):
            value = value.last
        elif callable(value) and not isinstance(value, (Subspace, Eigs, torch.Tensor)):
            value = value()
        if value is None:
            raise ValueError("the subspace source has no subspace yet: a SharpnessCallback needs data= and "
                             "must be passed to train(callbacks=[...]) (it measures at the start of training)")
        if self._cache is not None and self._cache[0] is value:
            return self._cache[1]
        sub = _as_subspace(value)
        n = sum(p.numel() for p in self.params)
        if sub.size != n:
            raise ValueError(f"the subspace lives in {sub.size} dimensions, the parameters have {n} entries: "
                             "build it from the same parameters, in the same order")
        self._cache = (value, sub)  # holding `value` keeps its identity unique
        return sub

    @property
    def last_overlap(self) -> float:
        return self.overlaps[-1] if self.overlaps else float("nan")

    def direction(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """The step's direction for gradients ``grads`` (before the factor −η), in parameter shapes."""
        sub = self.subspace
        g = flatten(grads).to(sub.Q.dtype)
        coords = sub.Q.T @ g
        norm = float(torch.linalg.vector_norm(g))
        self.overlaps.append(float(torch.linalg.vector_norm(coords)) / norm if norm > 0 else 0.0)
        if self.mode == "none":
            return grads
        dom = sub.Q @ coords
        d = dom if self.mode == "dom" else g - dom
        return [t.to(p.dtype) for t, p in zip(unflatten(d, grads), grads)]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self.params
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        lr = self.param_groups[0]["lr"]
        for p, d in zip(params, self.direction(grads)):
            p.add_(d, alpha=-lr)
        return loss
