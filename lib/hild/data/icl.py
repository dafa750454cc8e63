"""In-context linear regression: prompts of (x, y) pairs and a query, for linear transformers.

Each prompt draws its own task vector ``w ~ N(0, I_d)``, ``N`` context covariates ``x_i`` and one
query ``x_q``, with labels ``y_i = wᵀx_i`` (plus optional noise). A prompt is one matrix of
``N + 1`` tokens, one per row (the layout of the official code of Ahn et al., ICLR 2024,
``github.com/chengxiang/LinearTransformer``; the papers write the transpose)::

    Z = [[x_1ᵀ, y_1],
         ...
         [x_Nᵀ, y_N],
         [x_qᵀ, 0  ]]        shape (N + 1, d + 1)

The query's label slot is zero: its label ``y_q = wᵀx_q`` is the target and never enters ``Z``.

Covariates:

* ``"gaussian"``: ``x ~ N(0, I_d)`` (the code's ``mode='normal'``);
* ``"heavy"``: ``x = r·u``, ``u`` uniform on the unit sphere, ``r² ~ Gamma(k, √(2d/k))`` (the code's
  ``mode='gamma'``, written for any ``d``: at ``k = d/2`` this is exactly ``N(0, I_d)``; the
  papers' ``k = 0.1`` makes ``‖x‖²`` heavy-tailed, with excess kurtosis ``6/k = 60``);
* ``"sphere"``: ``x = u`` (the code's ``mode='sphere'``).

Also here: the exact in-context predictors a linear transformer is compared with, ``L`` steps of
preconditioned gradient descent on the prompt's least-squares loss (what the construction of
Ahn, Cheng, Daneshmand and Sra, NeurIPS 2023, computes) and least squares itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["COVARIATES", "icl_regression", "split_prompts", "in_context_loss", "preconditioned_gd",
           "least_squares"]

COVARIATES: tuple[str, ...] = ("gaussian", "heavy", "sphere")


def _covariates(rng: np.random.Generator, shape: tuple[int, ...], d: int, kind: str, k: float) -> np.ndarray:
    X = rng.standard_normal((*shape, d))
    if kind == "gaussian":
        return X
    X /= np.linalg.norm(X, axis=-1, keepdims=True)
    if kind == "sphere":
        return X
    r2 = rng.gamma(shape=k, scale=np.sqrt(2 * d / k), size=shape)
    return X * np.sqrt(r2)[..., None]


def icl_regression(
    n_prompts: int,
    *,
    n_context: int = 20,
    d: int = 5,
    covariates: str = "gaussian",
    shape_k: float = 0.1,
    noise: float = 0.0,
    rng: np.random.Generator | int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of in-context linear-regression prompts.

    Args:
        n_prompts: ``B``, the number of prompts.
        n_context: ``N``, labelled examples per prompt (the paper: 20).
        d: covariate dimension (the paper: 5).
        covariates: ``"gaussian"``, ``"heavy"`` (the gamma-scaled variant) or ``"sphere"``.
        shape_k: the gamma shape ``k`` of ``"heavy"`` (smaller is heavier; the paper: 0.1).
        noise: standard deviation of label noise added to every label, query included (default 0).
        rng: a NumPy generator or a seed.
        dtype, device: of the returned tensors.

    Returns:
        ``(Z, y)``: prompts ``Z`` of shape ``(B, N + 1, d + 1)`` with the query's label slot zero,
        and the query labels ``y`` of shape ``(B,)``.
    """
    if covariates not in COVARIATES:
        raise ValueError(f"covariates must be one of {COVARIATES}, got {covariates!r}")
    if n_prompts < 1 or n_context < 1 or d < 1:
        raise ValueError(f"need n_prompts, n_context, d ≥ 1, got {n_prompts}, {n_context}, {d}")
    if covariates == "heavy" and not shape_k > 0:
        raise ValueError(f"shape_k must be positive, got {shape_k}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    w = rng.standard_normal((n_prompts, d))
    X = _covariates(rng, (n_prompts, n_context + 1), d, covariates, shape_k)
    labels = np.einsum("bnd,bd->bn", X, w)
    if noise:
        labels = labels + noise * rng.standard_normal(labels.shape)
    Z = np.concatenate([X, labels[..., None]], axis=-1)
    y = Z[:, -1, -1].copy()
    Z[:, -1, -1] = 0.0
    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return as_t(Z), as_t(y)


def split_prompts(Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(X, y, x_q)``: context covariates ``(B, N, d)``, context labels ``(B, N)``, queries ``(B, d)``.

    Also takes one prompt ``(N + 1, d + 1)`` (then without the batch dimension).
    """
    return Z[..., :-1, :-1], Z[..., :-1, -1], Z[..., -1, :-1]


def in_context_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean squared error of ``model.predict(Z)`` against the query labels ``y`` (as the official code:
    no factor ½). ``batch = (Z, y)``; the ``loss_fn(model, batch)`` signature of ``hild.train``."""
    Z, y = batch
    return ((model.predict(Z) - y) ** 2).mean()


def preconditioned_gd(Z: torch.Tensor, preconditioners: Sequence[torch.Tensor]) -> torch.Tensor:
    """The query predictions ``x_qᵀ w_L`` of ``L`` steps of preconditioned GD from ``w_0 = 0``.

    On each prompt's least-squares loss ``R(w) = (1/2N) Σ_i (wᵀx_i − y_i)²`` the steps are
    ``w_{ℓ+1} = w_ℓ − Γ_ℓ ∇R(w_ℓ)``, one ``(d, d)`` preconditioner ``Γ_ℓ`` per step.

    Args:
        Z: prompts ``(B, N + 1, d + 1)``.
        preconditioners: ``Γ_0, ..., Γ_{L−1}``.

    Returns:
        ``(B,)`` predictions.
    """
    X, y, xq = split_prompts(Z)
    N = X.shape[-2]
    w = torch.zeros_like(xq)
    for G in preconditioners:
        grad = torch.einsum("bnd,bn->bd", X, torch.einsum("bnd,bd->bn", X, w) - y) / N
        w = w - grad @ G.to(Z.dtype).T
    return (w * xq).sum(-1)


def least_squares(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The minimum-norm least-squares solution ``argmin_w ‖X w − y‖`` per prompt.

    Args:
        X: ``(B, N, d)`` or ``(N, d)``; y: ``(B, N)`` or ``(N,)``.

    Returns:
        ``w``: ``(B, d)`` or ``(d,)`` (the pseudo-inverse solution, also for ``N < d``).
    """
    return (torch.linalg.pinv(X) @ y[..., None])[..., 0]
