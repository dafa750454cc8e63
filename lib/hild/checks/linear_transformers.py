"""Checks for the exercises of the linear-transformers chapter (Part "Training transformers").

The exact answers come from :class:`hild.models.LinearTransformer` (itself tested against the
written-out matrix expression) and from least squares by the pseudo-inverse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..data.icl import icl_regression, least_squares, split_prompts
from ..models.linear_transformer import LinearTransformer
from . import as_array, check_function

__all__ = ["attention_layer", "least_squares_prediction"]


def _prompt(n_context: int, d: int, seed: int, noise: float = 0.0) -> torch.Tensor:
    Z, _ = icl_regression(1, n_context=n_context, d=d, rng=seed, noise=noise, dtype=torch.float64)
    return Z[0]


def attention_layer(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(Z, P, Q)`` is one residual layer of linear attention on one prompt ``(N + 1, d + 1)``."""
    __tracebackhide__ = True

    def reference(Z: torch.Tensor, P: torch.Tensor, Q: torch.Tensor) -> np.ndarray:
        model = LinearTransformer(P.shape[0], n_layers=1, init_std=0.0, dtype=torch.float64)
        with torch.no_grad():
            model.P[0, 0], model.Q[0, 0] = P, Q
            return model(Z[None])[0].numpy()

    g = torch.Generator().manual_seed(0)
    rand = lambda d: torch.randn(d, d, generator=g, dtype=torch.float64)  # noqa: E731
    cases = [
        (_prompt(4, 2, 0), torch.zeros(2, 2, dtype=torch.float64), -torch.eye(2, dtype=torch.float64)),
        (_prompt(20, 5, 1), rand(5), rand(5)),
        (_prompt(3, 4, 2, noise=0.5), rand(4), rand(4)),
        (_prompt(1, 1, 3), rand(1), rand(1)),
    ]
    check_function(lambda Z, P, Q: as_array(fn(Z, P, Q)), reference=reference, cases=cases,
                   name="attention_layer", rtol=1e-9, atol=1e-12,
                   hint="embed P as [[P, 0], [0, 1]] and Q as [[Q, 0], [0, 0]]; the mask M = diag(1, ..., 1, 0) "
                        "drops the query (the last row) as a key and value; divide by N (not N + 1); and keep "
                        "the residual: the layer returns Z + the attention update")


def least_squares_prediction(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(Z)`` is the query prediction ``x_qᵀ w`` of minimum-norm least squares on one prompt."""
    __tracebackhide__ = True

    def reference(Z: torch.Tensor) -> float:
        X, y, xq = split_prompts(Z)
        return float(xq @ least_squares(X, y))

    cases = [
        (_prompt(20, 5, 0),),                 # noiseless: least squares recovers w, the prediction is exact
        (_prompt(20, 5, 1, noise=1.0),),      # noisy labels
        (_prompt(3, 5, 2),),                  # fewer examples than dimensions: the minimum-norm solution
        (_prompt(8, 1, 3, noise=0.3),),
    ]
    check_function(lambda Z: as_array(fn(Z)), reference=reference, cases=cases, name="least_squares_prediction",
                   rtol=1e-8, atol=1e-10,
                   hint="the context is every row but the last: X = Z[:-1, :-1], y = Z[:-1, -1], x_q = Z[-1, :-1]; "
                        "w = pinv(X) @ y also covers N < d (np.linalg.lstsq does too)")
