"""Warm-starting without loss of plasticity: Direction-Aware SHrinking and shrink-and-perturb.

**DASH** (Shin, Oh, Cho and Yun, NeurIPS 2024; the rule of the official code,
``utils/train_utils.py``, function ``dash``). Before training on the data seen so far, estimate the
negative gradient on it, ĝ, as an exponential moving average over its mini-batches,

    ĝ ← (1 − α)·ĝ + α·(−∇L(batch)),    starting from ĝ = 0,

then shrink every neuron's incoming weights by how well they align with it:

    w_i ← w_i · clamp(cos(w_i, ĝ_i), λ, 1).

A neuron is a row of a Linear weight, or one (output, input) channel pair of a convolution (its
kernel's spatial positions form the vector); each bias vector is scaled by the clamp of one cosine
for the whole vector. A weight that points along −∇L (a feature the new data still supports)
keeps its length; one that is orthogonal or opposed (memorised noise) shrinks to λ times its length.

**Shrink-and-perturb** (Ash and Adams, NeurIPS 2020): w ← λ·w + σ·N(0, I) for every Linear and
convolution weight and bias; with σ = 0 it is a uniform shrink, the control that shows whether
DASH's *direction* matters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ShrinkReport", "neuron_cosines", "dash_shrink", "shrink_perturb", "SHRINKABLE"]

# The layers whose weights DASH and shrink-and-perturb act on (as in the official code: not norms).
SHRINKABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class ShrinkReport:
    """What :func:`dash_shrink` did.

    Attributes:
        factors: layer name → the factor each neuron's weights were multiplied by, shape (out,) for a
            Linear layer and (out, in) for a convolution; every factor lies in [λ, 1].
        bias_factors: layer name → the factor its bias vector was multiplied by (absent when
            biases were kept).
        batches: number of mini-batches in the gradient estimate.
        cosines: layer name → the cosines cos(w_i, ĝ_i) before clamping (same shapes as
            ``factors``), so the factors for any other λ are ``cosines.clamp(λ, 1)``.
    """

    factors: dict[str, torch.Tensor]
    bias_factors: dict[str, float]
    batches: int
    cosines: dict[str, torch.Tensor]

    def all_cosines(self) -> torch.Tensor:
        """Every neuron's cosine, all layers together (1-D)."""
        return torch.cat([c.flatten() for c in self.cosines.values()])

    def all_factors(self) -> torch.Tensor:
        """Every neuron's factor, all layers together (1-D)."""
        return torch.cat([f.flatten() for f in self.factors.values()])

    def mean_factor(self) -> float:
        return float(self.all_factors().mean())


def neuron_cosines(weight: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """cos(w_i, g_i) per neuron: rows of a 2-D weight (out, in) → (out,); for a convolution weight
    (out, in, *kernel) → (out, in), each over the kernel's spatial positions. A zero vector has
    cosine 0."""
    if weight.shape != direction.shape:
        raise ValueError(f"weight {tuple(weight.shape)} and direction {tuple(direction.shape)} differ in shape")
    if weight.ndim < 2:
        raise ValueError(f"expected a Linear or convolution weight (at least 2-D), got shape {tuple(weight.shape)}")
    if weight.ndim == 2:
        return F.cosine_similarity(weight, direction, dim=-1)
    flat = (*weight.shape[:2], -1)
    return F.cosine_similarity(weight.reshape(flat), direction.reshape(flat), dim=-1)


def _default_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def _batches(data: Any) -> Iterable[Any]:
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        return [tuple(data)]  # one batch
    if isinstance(data, Iterable):
        return data  # a DataLoader or a list of batches
    raise TypeError(f"data must be a batch (a tuple of tensors) or an iterable of batches, got {type(data).__name__}")


def dash_shrink(
    model: nn.Module,
    data: Any,
    *,
    lam: float = 0.3,
    alpha: float = 0.3,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor] = _default_loss,
    bias: str = "vector",
) -> ShrinkReport:
    """Direction-Aware SHrinking of ``model``'s weights, **in place** (module docstring).

    The gradient is taken on a copy of the model, so its ``.grad`` fields, its BatchNorm running
    statistics and its train/eval mode are left as they were.

    Args:
        model: the network to shrink (its Linear and convolution layers are shrunk).
        data: a batch ``(x, y)`` or an iterable of batches (e.g. a DataLoader) over the data the
            model is about to be trained on; the negative gradient is their exponential moving
            average with weight ``alpha`` (for one batch only its direction matters).
        lam: the floor λ of the shrink factor (0 < λ ≤ 1; the paper's default 0.3).
        alpha: the moving average's weight of the newest batch (the official default 0.3).
        loss_fn: ``loss_fn(model, batch)`` → scalar; cross-entropy on ``(x, y)`` by default.
        bias: ``"vector"`` scales each bias by clamp(cos(b, ĝ_b), λ, 1) (the official rule);
            ``"keep"`` leaves biases alone.

    Returns:
        A :class:`ShrinkReport` with every factor that was applied.
    """
    if not 0 < lam <= 1:
        raise ValueError(f"lam must be in (0, 1], got {lam}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if bias not in ("vector", "keep"):
        raise ValueError(f"bias must be 'vector' or 'keep', got {bias!r}")
    probe = copy.deepcopy(model)
    layers = {name: m for name, m in probe.named_modules() if isinstance(m, SHRINKABLE)}
    if not layers:
        raise ValueError("the model has no Linear or convolution layer for DASH to shrink")
    params = [p for m in layers.values() for p in ([m.weight] + ([m.bias] if m.bias is not None else []))]
    ema = [torch.zeros_like(p) for p in params]
    n = 0
    for batch in _batches(data):
        loss = loss_fn(probe, batch)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        for e, g in zip(ema, grads):
            if g is not None:
                e.mul_(1 - alpha).add_(g, alpha=-alpha)  # the EMA of the negative gradient
        n += 1
    if n == 0:
        raise ValueError("data yielded no batch: DASH needs the data the model will be trained on")
    neg_grad = dict(zip((id(p) for p in params), ema))
    originals = dict(model.named_modules())
    factors: dict[str, torch.Tensor] = {}
    cosines: dict[str, torch.Tensor] = {}
    bias_factors: dict[str, float] = {}
    with torch.no_grad():
        for name, m in layers.items():
            target = originals[name]
            cos = neuron_cosines(m.weight, neg_grad[id(m.weight)])
            scale = cos.clamp(lam, 1.0)
            target.weight.mul_(scale.reshape(*scale.shape, *([1] * (m.weight.ndim - scale.ndim))))
            factors[name], cosines[name] = scale.detach().cpu(), cos.detach().cpu()
            if m.bias is not None and bias == "vector":
                c = F.cosine_similarity(m.bias.reshape(1, -1), neg_grad[id(m.bias)].reshape(1, -1))
                b = float(c.clamp(lam, 1.0))
                target.bias.mul_(b)
                bias_factors[name] = b
    return ShrinkReport(factors, bias_factors, n, cosines)


def shrink_perturb(model: nn.Module, *, shrink: float = 0.3, noise_std: float = 0.01,
                   generator: torch.Generator | None = None) -> None:
    """Shrink-and-perturb, **in place**: w ← shrink·w + noise_std·N(0, I) for the weight and bias
    of every Linear and convolution layer (Ash and Adams 2020). ``noise_std=0`` is a uniform
    shrink."""
    if shrink < 0 or noise_std < 0:
        raise ValueError(f"shrink and noise_std must be non-negative, got {shrink} and {noise_std}")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SHRINKABLE):
                for p in (m.weight, m.bias):
                    if p is None:
                        continue
                    p.mul_(shrink)
                    if noise_std > 0:
                        noise = torch.randn(p.shape, generator=generator, dtype=p.dtype)
                        p.add_(noise.to(p.device), alpha=noise_std)
