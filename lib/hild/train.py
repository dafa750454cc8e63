"""One small training loop with callbacks: metric tracking, checkpoint/resume, progress bars.

Chapters that need something unusual (two players, projected steps, a sampler) write their own
loop with the same pieces; everything else calls :func:`train`::

    history = train.train(model, train.supervised(F.cross_entropy), (x, y), optimizer=opt, steps=300,
                          track={"test_acc": lambda s: accuracy(s.model, x_test, y_test)}, every=10)
    history["loss"], history["test_acc"], history.steps

``data`` is a full batch (a tuple of tensors), a function of the step returning a batch
(deterministic, so a resumed run sees the same batches), or an iterable of batches (cycled).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import config

__all__ = ["TrainState", "History", "Callback", "train", "supervised", "progress", "batches"]

Batch = Any
LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]


@dataclass
class TrainState:
    """What a callback sees after each step.

    Attributes:
        step: steps done so far (1 after the first step).
        model, optimizer: the objects being trained.
        loss: the training loss of the step's batch (a float, before the update).
        batch: the step's batch.
        history: the run's history so far.
    """

    step: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss: float
    batch: Batch
    history: "History"
    stop: bool = False  # a callback may set it to end training early


@dataclass
class History:
    """Metrics recorded along a run: ``history["loss"]`` is an array, ``history.steps`` its steps.

    Every metric is recorded at the same steps (``every`` steps and the last), so they share one
    x axis.
    """

    steps: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def record(self, step: int, values: Mapping[str, float]) -> None:
        self.steps.append(step)
        for k, v in values.items():
            self.metrics.setdefault(k, []).append(float(v))

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "step" or name == "steps":
            return np.asarray(self.steps)
        if name not in self.metrics:
            raise KeyError(f"no metric {name!r}: recorded {sorted(self.metrics)}")
        return np.asarray(self.metrics[name])

    def __contains__(self, name: str) -> bool:
        return name in self.metrics

    def last(self, name: str) -> float:
        return self.metrics[name][-1]

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "metrics": {k: list(v) for k, v in self.metrics.items()}}

    @classmethod
    def from_state_dict(cls, d: Mapping[str, Any]) -> "History":
        return cls(list(d["steps"]), {k: list(v) for k, v in d["metrics"].items()})


class Callback:
    """Hooks into :func:`train`. Return a dict from ``on_step`` to record metrics at that step."""

    def on_train_begin(self, state: TrainState) -> None:  # noqa: B027 (optional hook)
        pass

    def on_step(self, state: TrainState) -> Mapping[str, float] | None:
        return None

    def on_train_end(self, state: TrainState) -> None:  # noqa: B027 (optional hook)
        pass


def supervised(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LossFn:
    """``loss_fn(model, (x, y)) = criterion(model(x), y)``."""

    def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return criterion(model(x), y)

    return loss_fn


def batches(x: torch.Tensor, y: torch.Tensor, *, batch_size: int, seed: int | None = None) -> Callable[[int], Batch]:
    """Mini-batches by epoch-wise random reshuffling, as a function of the step (replayable).

    ``batches(x, y, batch_size=64)(step)`` is the same batch for the same step and seed, so a
    resumed run and a branch from a checkpoint see identical data.
    """
    n = len(x)
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size must be in 1..{n}, got {batch_size}")
    per_epoch = n // batch_size
    base = config.SEED if seed is None else seed
    cache: dict[int, torch.Tensor] = {}

    def get(step: int) -> Batch:
        epoch, k = divmod(step, per_epoch)
        if epoch not in cache:
            cache.clear()
            g = torch.Generator().manual_seed(base * 1_000_003 + epoch)
            cache[epoch] = torch.randperm(n, generator=g)
        idx = cache[epoch][k * batch_size : (k + 1) * batch_size].to(x.device)
        return x[idx], y[idx]

    return get


def progress(iterable: Iterable[Any], *, total: int | None = None, desc: str = "", enabled: bool | None = None):
    """A tqdm progress bar when progress bars are on (full scale, or HILD_PROGRESS=1), else the iterable."""
    if enabled is None:
        enabled = config.progress_enabled()
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


def _batch_source(data: Any) -> Callable[[int], Batch]:
    if callable(data):
        return data
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        fixed = tuple(data)
        return lambda step: fixed
    if isinstance(data, Iterable):
        it = itertools.cycle(data)
        return lambda step: next(it)
    raise TypeError(
        "data must be a full batch (a tuple of tensors), a function step -> batch, or an iterable of batches; "
        f"got {type(data).__name__}"
    )


def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    optimizer: torch.optim.Optimizer,
    steps: int,
    track: Mapping[str, Callable[[TrainState], float]] | None = None,
    every: int = 1,
    callbacks: Sequence[Callback] = (),
    scheduler: Any = None,
    clip_grad_norm: float | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 500,
    desc: str = "training",
    stop_on_nan: bool = True,
) -> History:
    """Train ``model`` for ``steps`` steps (capped by ``HILD_MAX_STEPS``) and return its history.

    Args:
        loss_fn: ``loss_fn(model, batch)`` → scalar loss (see :func:`supervised`).
        data: a full batch, a function step → batch, or an iterable of batches.
        track: name → function of the :class:`TrainState`, recorded every ``every`` steps together
            with the batch loss (``"loss"``).
        callbacks: :class:`Callback` objects (their ``on_step`` dicts are recorded too).
        scheduler: stepped after each optimizer step.
        clip_grad_norm: clip the gradient's global norm to this value.
        checkpoint: a file; saved every ``checkpoint_every`` steps and at the end, and, if it
            exists when training starts, training resumes from it.
        stop_on_nan: stop (and record the step) when the loss becomes NaN or infinite.
    """
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    steps = config.steps(steps)
    get_batch = _batch_source(data)
    history = History()
    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved.get("scheduler") is not None:
            scheduler.load_state_dict(saved["scheduler"])
        history = History.from_state_dict(saved["history"])
        start = int(saved["step"])
    state = TrainState(step=start, model=model, optimizer=optimizer, loss=float("nan"), batch=None, history=history)

    def save() -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "history": history.state_dict(), "step": state.step}, tmp)
        os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint

    for cb in callbacks:
        cb.on_train_begin(state)
    bar = progress(range(start, steps), total=steps - start, desc=desc)
    for step in bar:
        batch = get_batch(step)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        if loss.ndim != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        loss.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        state.step, state.loss, state.batch = step + 1, float(loss.detach()), batch
        bad = stop_on_nan and not np.isfinite(state.loss)
        record = state.step % every == 0 or state.step == steps or bad
        values: dict[str, float] = {}
        for cb in callbacks:
            got = cb.on_step(state)
            if got and record:
                values.update(got)
        if record:
            values = {"loss": state.loss, **values}
            for name, fn in (track or {}).items():
                values[name] = float(fn(state))
            history.record(state.step, values)
        if path is not None and state.step % checkpoint_every == 0:
            save()
        if bad or state.stop:
            break
    for cb in callbacks:
        cb.on_train_end(state)
    save()
    return history
