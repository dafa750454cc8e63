"""Sharpness along training: a :class:`hild.train.Callback` that tracks the top Hessian eigenvalues.

Every ``every`` steps it builds the Hessian at the current parameters and runs
:func:`~hild.hessian.top_eigs` warm-started from the previous eigenvectors, which along a
training run costs a fraction of a cold start::

    sharp = hessian.SharpnessCallback(loss_fn, (x, y), every=5)
    history = train.train(model, loss_fn, (x, y), optimizer=opt, steps=500, every=5, callbacks=[sharp])
    history["sharpness"]            # λ₁ at steps 5, 10, ...; sharp.steps / sharp.values include step 0
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..train import Callback, TrainState
from .eigs import Eigs, top_eigs
from .operator import HessianOperator, LossFn

__all__ = ["SharpnessCallback", "sharpness"]


def sharpness(model: Any, loss_fn: LossFn, data: Any, *, tol: float | None = None, seed: int = 0,
              **operator_kwargs: Any) -> float:
    """λ₁, the largest eigenvalue of the loss Hessian at the model's current parameters.

    ``hessian.sharpness(model, loss_fn, (x, y))`` is ``top_eigs(HessianOperator(...), 1).values[0]``;
    for tracking along training use :class:`SharpnessCallback` (warm starts).
    """
    H = HessianOperator(model, loss_fn, data, **operator_kwargs)
    return float(top_eigs(H, 1, tol=tol, seed=seed).values[0])


class SharpnessCallback(Callback):
    """Records ``"sharpness"`` (λ₁ of the loss Hessian) every ``every`` steps, and at step 0.

    Args:
        loss_fn: ``loss_fn(model, batch)``, as for :func:`hild.train.train`.
        data: the batch (or loader) whose Hessian to track, e.g. the full training set; ``None``
            uses each step's own mini-batch.
        every: steps between measurements; give :func:`~hild.train.train` the same ``every`` (or a
            multiple) so the values land in its history.
        k: eigenvalues per measurement; with ``k > 1`` the history also gets ``"<name>_2"`` ...
        tol, max_hvps, block_size: passed to :func:`~hild.hessian.top_eigs` (a looser ``tol``
            than the default suffices for tracking: ``1e-3`` gave λ₁ to about 1e-5 relative).
        warm_start: start each solve from the previous eigenvectors (recommended).
        seed: the random start of the first solve.
        name: the metric's name.
        operator_kwargs: passed to :class:`~hild.hessian.HessianOperator` (``mode``, ``dtype``...).

    Attributes:
        steps, values, hvps: every measurement (step, λ₁ ... λ_k as a ``(k,)`` array, products).
        last: the latest :class:`~hild.hessian.Eigs`.
    """

    def __init__(self, loss_fn: LossFn, data: Any = None, *, every: int = 1, k: int = 1, tol: float = 1e-3,
                 max_hvps: int | None = None, block_size: int | None = None, warm_start: bool = True,
                 seed: int = 0, name: str = "sharpness", **operator_kwargs: Any):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.loss_fn, self.data, self.every, self.k = loss_fn, data, every, k
        self.tol, self.max_hvps, self.block_size = tol, max_hvps, block_size
        self.warm, self.seed, self.name = warm_start, seed, name
        self.operator_kwargs = operator_kwargs
        self.steps: list[int] = []
        self.values: list[np.ndarray] = []
        self.hvps: list[int] = []
        self.unconverged = 0
        self.last: Eigs | None = None

    def measure(self, model: Any, batch: Any = None) -> Eigs:
        """One warm-started solve at the model's current parameters (also usable outside training)."""
        data = self.data if self.data is not None else batch
        if data is None:
            raise ValueError("SharpnessCallback has no data: pass data=... or use it inside train()")
        H = HessianOperator(model, self.loss_fn, data, **self.operator_kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # counted below, reported once at the end
            res = top_eigs(H, self.k, tol=self.tol, max_hvps=self.max_hvps, block_size=self.block_size,
                           warm_start=self.last if self.warm else None, seed=self.seed)
        self.unconverged += not res.converged
        self.last = res
        return res

    def _record(self, step: int, res: Eigs) -> dict[str, float]:
        vals = res.values.numpy()
        self.steps.append(step)
        self.values.append(vals)
        self.hvps.append(res.hvps)
        out = {self.name: float(vals[0])}
        out.update({f"{self.name}_{i + 1}": float(v) for i, v in enumerate(vals[1:], start=1)})
        return out

    def on_train_begin(self, state: TrainState) -> None:
        if self.data is not None:  # with per-step batches there is no batch before the first step
            self._record(state.step, self.measure(state.model))

    def on_step(self, state: TrainState) -> Mapping[str, float] | None:
        if state.step % self.every:
            return None
        return self._record(state.step, self.measure(state.model, state.batch))

    def on_train_end(self, state: TrainState) -> None:
        if self.unconverged:
            warnings.warn(f"{self.unconverged} of {len(self.steps)} sharpness measurements did not converge "
                          f"to tol={self.tol:g}: raise max_hvps or tol", RuntimeWarning, stacklevel=2)

    @property
    def sharpness(self) -> np.ndarray:
        """λ₁ at each of :attr:`steps`."""
        return np.array([v[0] for v in self.values])
