"""Checks for the exercises of the curvature chapters ("Measuring curvature" and Part "Curvature and
the edge of stability"). Each check computes its exact answer itself, from dense float64 Hessians
built by explicit double loops of autograd or from closed forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import as_array, check_function

__all__ = ["hessian_vector_product", "rayleigh_quotient"]


def _dense_hessian(model: nn.Module, loss_fn: Callable[..., torch.Tensor], batch: Any) -> torch.Tensor:
    """The exact Hessian, one row per backward pass through the gradient."""
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss_fn(model, batch), params, create_graph=True)])
    rows = [torch.cat([t.reshape(-1) for t in torch.autograd.grad(g[i], params, retain_graph=True)])
            for i in range(g.numel())]
    return torch.stack(rows).detach()


Case = tuple[nn.Module, Callable[..., torch.Tensor], tuple[torch.Tensor, torch.Tensor], torch.Tensor]


def _hvp_cases() -> list[Case]:
    def ce(model, batch):
        x, y = batch
        return F.cross_entropy(model(x), y)

    def mse(model, batch):
        x, y = batch
        return 0.5 * ((model(x) - y) ** 2).sum(1).mean()

    cases = []
    g = torch.Generator().manual_seed(0)
    for sizes, loss, kind in (((3, 4, 2), ce, "ce"), ((4, 5, 5, 3), mse, "mse"), ((2, 3, 1), mse, "mse")):
        torch.manual_seed(len(cases))
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, dtype=torch.float64))
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        model = nn.Sequential(*layers)
        x = torch.randn(6, sizes[0], generator=g, dtype=torch.float64)
        y = (torch.randint(0, sizes[-1], (6,), generator=g) if kind == "ce"
             else torch.randn(6, sizes[-1], generator=g, dtype=torch.float64))
        n = sum(p.numel() for p in model.parameters())
        cases.append((model, loss, (x, y), torch.randn(n, generator=g, dtype=torch.float64)))
    return cases


def hessian_vector_product(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(model, loss_fn, batch, v)`` returns ``H v`` (flat) by double backward."""
    __tracebackhide__ = True
    cases = _hvp_cases()

    def reference(i: int) -> np.ndarray:
        model, loss, batch, v = cases[i]
        return as_array(_dense_hessian(model, loss, batch) @ v)

    def answer(i: int) -> Any:
        model, loss, batch, v = cases[i]
        out = fn(model, loss, batch, v.clone())
        if isinstance(out, (list, tuple)):  # parameter-shaped pieces: accept them, flattened in order
            out = torch.cat([t.reshape(-1) for t in out])
        return out

    check_function(answer, reference=reference, cases=[(i,) for i in range(len(cases))], name="hessian_vector_product",
                   rtol=1e-9, atol=1e-12,
                   hint="take the gradient with create_graph=True, flatten it, then differentiate the scalar g·v "
                        "with respect to the parameters again (the case number is the i-th model: an MLP with "
                        "cross-entropy, then two with the squared loss)")


def rayleigh_quotient(fn: Callable[..., Any]) -> None:
    """Exercise: ``fn(H, v)`` returns ``vᵀ H v / vᵀ v`` for an operator ``H`` (``H @ v`` works)."""
    __tracebackhide__ = True
    from ..hessian import DenseOperator

    rng = np.random.default_rng(0)
    cases = []
    for n, spectrum in ((5, [3.0, 1.0, 0.5, -0.2, -1.0]), (8, list(np.linspace(-2, 4, 8))), (3, [2.0, 2.0, 2.0])):
        U, _ = np.linalg.qr(rng.standard_normal((n, n)))
        A = U @ np.diag(spectrum) @ U.T
        A = torch.as_tensor((A + A.T) / 2)
        cases.append((DenseOperator(A), torch.as_tensor(rng.standard_normal(n))))
        cases.append((DenseOperator(A), torch.as_tensor(3.0 * U[:, 0])))  # an eigenvector (unnormalised): λ exactly

    def reference(i: int) -> float:
        A, v = cases[i]
        a, x = A.A.numpy(), v.numpy()
        return float(x @ a @ x / (x @ x))

    check_function(lambda i: fn(*cases[i]), reference=reference, cases=[(i,) for i in range(len(cases))],
                   name="rayleigh_quotient", rtol=1e-12, atol=1e-12,
                   hint="vᵀ(Hv) divided by vᵀv; H @ v gives the product (v need not have unit length)")
