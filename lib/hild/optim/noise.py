"""Stochastic gradient noise: many mini-batch gradients at once, and how heavy their tails are.

SGD's step is the full gradient plus noise, ``g_B = ∇L + ξ_B``. Whether ``ξ`` is close to Gaussian
or heavy-tailed matters for which optimizer trains well (Zhang et al., *Why are adaptive methods
good for attention models?*, NeurIPS 2020; Ahn et al., ICLR 2024, for linear transformers). The
papers look at the distribution of the noise norms ``‖g_B − ∇L‖`` over many mini-batches::

    groups = (Z.reshape(G, B, ...), y.reshape(G, B))      # G mini-batches of B examples
    noise = optim.gradient_noise(model, loss_fn, groups)
    noise.norms, noise.excess_kurtosis, noise.tail_mass()

:func:`minibatch_gradients` computes the ``G`` gradients in one vectorised pass
(``torch.func.vmap`` over ``torch.func.grad``) instead of ``G`` backward passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["GradientNoise", "minibatch_gradients", "gradient_noise", "excess_kurtosis"]


class _Loss(nn.Module):
    """``loss_fn(model, batch)`` as a module, so ``torch.func.functional_call`` can swap parameters."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor]):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.model, tuple(batch))


def minibatch_gradients(model: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor],
                        groups: tuple[torch.Tensor, ...], *, chunk: int | None = None) -> torch.Tensor:
    """The gradient of ``loss_fn`` on each of ``G`` mini-batches, flattened: ``(G, n_params)``.

    Args:
        model: the network (its parameters that require grad, in ``model.parameters()`` order).
        loss_fn: ``loss_fn(model, batch)`` → scalar, with ``batch`` a tuple of tensors.
        groups: a tuple of tensors whose first dimension indexes the mini-batches: ``(G, B, ...)``.
        chunk: mini-batches per vectorised pass (bounds memory; default all at once).
    """
    from torch.func import functional_call, grad, vmap

    if not groups or any(t.shape[0] != groups[0].shape[0] for t in groups):
        raise ValueError("groups must be a tuple of tensors sharing their first dimension (the G mini-batches)")
    wrapper = _Loss(model, loss_fn)
    names = [n for n, p in wrapper.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in wrapper.named_parameters() if p.requires_grad}

    def loss_at(theta: dict[str, torch.Tensor], *batch: torch.Tensor) -> torch.Tensor:
        return functional_call(wrapper, theta, batch)

    per_group = vmap(grad(loss_at), in_dims=(None, *[0] * len(groups)))
    G = groups[0].shape[0]
    step = G if chunk is None else max(1, int(chunk))
    out = []
    for i in range(0, G, step):
        grads = per_group(params, *[t[i : i + step] for t in groups])
        out.append(torch.cat([grads[n].reshape(grads[n].shape[0], -1) for n in names], dim=1))
    return torch.cat(out)


def excess_kurtosis(x: Any) -> float:
    """``E[(x − μ)⁴] / Var(x)² − 3`` of a sample (0 for a Gaussian; larger means heavier tails)."""
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).ravel()
    c = a - a.mean()
    var = float(np.mean(c**2))
    if var == 0:
        raise ValueError("the sample is constant: its kurtosis is undefined")
    return float(np.mean(c**4) / var**2 - 3.0)


@dataclass(frozen=True)
class GradientNoise:
    """Mini-batch gradient noise ``ξ_j = g_j − ḡ`` over ``G`` mini-batches.

    Attributes:
        noise: ``(G, n_params)`` the deviations ``ξ_j``.
        norms: ``(G,)`` NumPy array of ``‖ξ_j‖``.
        mean_gradient: ``ḡ``, the mean of the ``G`` mini-batch gradients (the gradient on all
            ``G·B`` examples for a mean-reduced loss), ``(n_params,)``.
        batch_size: ``B``.
    """

    noise: torch.Tensor
    norms: np.ndarray
    mean_gradient: torch.Tensor
    batch_size: int

    @property
    def excess_kurtosis(self) -> float:
        """Excess kurtosis of the noise norms."""
        return excess_kurtosis(self.norms)

    def gaussian_norms(self, n_samples: int = 20_000, *, seed: int = 0) -> np.ndarray:
        """Norms of ``n_samples`` Gaussian vectors with the noise's sample covariance: the reference a
        Gaussian noise model predicts for :attr:`norms` (same covariance, no heavy tails).

        The norm of ``N(0, Σ)`` has the law of ``√(Σ_i λ_i z_i²)``, ``λ`` the eigenvalues of ``Σ`` and
        ``z`` standard normal; the nonzero eigenvalues of ``Σ = ξᵀξ/G`` are those of the ``G x G`` Gram
        matrix ``ξξᵀ/G``, so the smaller of the two is diagonalised.
        """
        xi = self.noise.double().cpu()
        G, n = xi.shape
        gram = xi.T @ xi if n <= G else xi @ xi.T
        lam = torch.linalg.eigvalsh(gram / G).clamp(min=0.0)
        g = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n_samples, lam.shape[0], generator=g, dtype=torch.float64)
        return torch.sqrt(z.square() @ lam).numpy()

    def tail_mass(self, q: float = 0.99, *, n_samples: int = 20_000, seed: int = 0) -> float:
        """The fraction of noise norms beyond the Gaussian reference's ``q``-quantile, both relative to
        their medians: ``≈ 1 − q`` for Gaussian noise, larger for heavy tails.

        A tail statistic that, unlike the kurtosis, is not dominated by the few largest norms: its
        sampling error is binomial, ``√(p(1 − p)/G)``.
        """
        if not 0 < q < 1:
            raise ValueError(f"q must lie in (0, 1), got {q}")
        ref = self.gaussian_norms(n_samples, seed=seed)
        threshold = np.quantile(ref, q) / np.median(ref)
        return float(np.mean(self.norms / np.median(self.norms) > threshold))

    @property
    def tail_ratio(self) -> float:
        """The largest norm over the median: how far the worst mini-batch is from a typical one."""
        return float(self.norms.max() / np.median(self.norms))


def gradient_noise(model: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor],
                   groups: tuple[torch.Tensor, ...], *, chunk: int | None = None) -> GradientNoise:
    """The norms of ``G`` mini-batch gradients' deviations from their mean (see :func:`minibatch_gradients`)."""
    g = minibatch_gradients(model, loss_fn, groups, chunk=chunk)
    mean = g.mean(0)
    norms = torch.linalg.vector_norm(g - mean, dim=1).double().cpu().numpy()
    return GradientNoise(noise=g - mean, norms=norms, mean_gradient=mean, batch_size=int(groups[0].shape[1]))
