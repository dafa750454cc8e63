"""Fit a classifier on tensors: the training loop the data chapters share.

:func:`fit` trains with cross-entropy on epochs of shuffled mini-batches (through
:func:`hild.train.train`, so ``HILD_MAX_STEPS`` caps it), calls back after every epoch (and stops
early when the callback says so: "train until 99.9% training accuracy"), and can augment each
batch; :func:`predict_probs` and :func:`accuracy` evaluate in eval mode and in batches, so they
are right for BatchNorm networks and for data sets too large for one forward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import config, train

__all__ = ["fit", "predict_probs", "accuracy"]


@torch.no_grad()
def predict_probs(model: nn.Module, x: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
    """Softmax outputs on ``x`` (n, C), in eval mode (BatchNorm uses its running statistics) and in
    batches; the model's train/eval mode is restored afterwards."""
    was = model.training
    model.eval()
    try:
        return torch.cat([F.softmax(model(x[i : i + batch_size]), dim=1) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 4096) -> float:
    """Fraction of ``x`` whose most probable class is the label ``y`` (eval mode, in batches)."""
    return float((predict_probs(model, x, batch_size=batch_size).argmax(dim=1) == y).float().mean())


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int = 32, lr: float = 1e-3,
        seed: int = 0, on_epoch: Callable[[int], bool | None] | None = None,
        optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        scheduler: Callable[[torch.optim.Optimizer, int], Any] | None = None) -> int:
    """Train ``model`` with cross-entropy on ``(x, y)`` for ``epochs`` epochs of shuffled
    mini-batches (:func:`hild.train.batches`; the last incomplete batch of an epoch is dropped).

    Both the number of epochs and the steps per epoch go through :func:`hild.steps`, so
    ``HILD_MAX_STEPS=2`` runs two epochs of two steps (smoke tests).

    Args:
        on_epoch: called as ``on_epoch(t)`` after epoch t = 1, 2, ...; training stops when it
            returns True.
        optimizer: ``optimizer(model)`` → a torch optimizer; Adam with learning rate ``lr`` by default.
        transform: applied to each batch of inputs before the forward pass (data augmentation).
        scheduler: ``scheduler(optimizer, total_steps)`` → a learning-rate scheduler stepped after
            every optimizer step (e.g. a cosine decay over the run).

    Returns:
        The number of optimizer steps taken.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be positive, got {epochs}")
    batch_size = min(batch_size, len(x))
    per_epoch = len(x) // batch_size
    opt = optimizer(model) if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    sched = scheduler(opt, epochs * per_epoch) if scheduler is not None else None
    batches = train.batches(x, y, batch_size=batch_size, seed=seed)

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        xb, yb = batch
        return F.cross_entropy(model(transform(xb) if transform is not None else xb), yb)

    model.train()
    taken = 0
    for epoch in range(config.steps(epochs)):
        history = train.train(model, loss_fn, lambda step, e=epoch: batches(e * per_epoch + step), optimizer=opt,
                              steps=per_epoch, every=per_epoch, scheduler=sched)
        taken += history.steps[-1] if history.steps else 0
        if on_epoch is not None and on_epoch(epoch + 1):
            break
    return taken
