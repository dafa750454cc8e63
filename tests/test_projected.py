"""ProjectedSGD (Dom-SGD / Bulk-SGD), against exact answers: the SGD step split in two, and the exact
eigenspace of a quadratic whose eigendecomposition we chose."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hild import hessian, train
from hild.optim import ProjectedSGD


class Quadratic(nn.Module):
    """L(θ) = ½ θᵀ A θ with a chosen A = U diag(λ) Uᵀ; the Hessian is A everywhere."""

    def __init__(self, theta0: torch.Tensor):
        super().__init__()
        self.theta = nn.Parameter(theta0.clone())


def quadratic_problem(n: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.cat([torch.tensor([10.0, 8.0, 6.0], dtype=torch.float64),
                     torch.linspace(1.0, 0.1, n - 3, dtype=torch.float64)])
    A = U @ torch.diag(lam) @ U.T
    theta0 = torch.randn(n, generator=g, dtype=torch.float64)
    loss_fn = lambda model, batch: 0.5 * model.theta @ (batch[0] @ model.theta)  # noqa: E731
    return (A,), U, lam, theta0, loss_fn   # the batch is the tuple (A,)


def step_of(mode: str, model: nn.Module, loss_fn, batch, subspace, lr: float = 0.1) -> list[torch.Tensor]:
    """Parameter change of one ProjectedSGD step (on a copy of the model)."""
    m = copy.deepcopy(model)
    before = [p.detach().clone() for p in m.parameters()]
    opt = ProjectedSGD(m.parameters(), subspace, lr=lr, mode=mode)
    opt.zero_grad()
    loss_fn(m, batch).backward()
    opt.step()
    return [p.detach() - b for p, b in zip(m.parameters(), before)]


def test_dom_and_bulk_steps_sum_to_the_sgd_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.randint(0, 3, (20,))
    loss_fn = train.supervised(F.cross_entropy)
    n = sum(p.numel() for p in model.parameters())
    sub = hessian.Subspace(torch.randn(n, 5, dtype=torch.float64))
    dom = step_of("dom", model, loss_fn, (x, y), sub)
    bulk = step_of("bulk", model, loss_fn, (x, y), sub)
    sgd = step_of("none", model, loss_fn, (x, y), sub)
    plain = copy.deepcopy(model)
    torch.optim.SGD(plain.parameters(), lr=0.1)  # the reference: a plain SGD step
    plain.zero_grad()
    loss_fn(plain, (x, y)).backward()
    ref = [-0.1 * p.grad for p in plain.parameters()]
    for d, b, s, r in zip(dom, bulk, sgd, ref):
        torch.testing.assert_close(d + b, s, rtol=0, atol=1e-15)
        torch.testing.assert_close(s, r, rtol=0, atol=1e-15)
    # the two parts are orthogonal, and the dominant one lies in the subspace
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731
    assert abs(float(flat(dom) @ flat(bulk))) < 1e-14
    assert sub.overlap(flat(dom)) == pytest.approx(1.0, abs=1e-12)


def test_dominant_projection_is_the_exact_eigenspace_projection_on_a_quadratic():
    batch, U, lam, theta0, loss_fn = quadratic_problem()
    (A,) = batch
    model = Quadratic(theta0)
    eigs = hessian.top_eigs(hessian.HessianOperator(model, loss_fn, batch), k=3, tol=1e-13)
    torch.testing.assert_close(eigs.values, lam[:3], rtol=1e-12, atol=0)
    exact_P = U[:, :3] @ U[:, :3].T
    g = A @ theta0
    for source in (eigs, hessian.Subspace(eigs), eigs.vectors, lambda: eigs):
        (dom,) = step_of("dom", model, loss_fn, batch, source, lr=0.1)
        torch.testing.assert_close(dom, -0.1 * exact_P @ g, rtol=0, atol=1e-12)
        (bulk,) = step_of("bulk", model, loss_fn, batch, source, lr=0.1)
        torch.testing.assert_close(bulk, -0.1 * (g - exact_P @ g), rtol=0, atol=1e-12)


def test_dom_gd_with_refreshed_subspace_follows_the_closed_form():
    """On a quadratic, Dom-GD contracts the top-k coordinates by (1 − ηλ_i) per step and never moves
    the others; the subspace comes from a SharpnessCallback refreshed every 2 steps."""
    batch, U, lam, theta0, loss_fn = quadratic_problem()
    (A,) = batch
    model = Quadratic(theta0)
    k, lr, steps = 3, 0.05, 7
    tracker = hessian.SharpnessCallback(loss_fn, batch, k=k, every=2, tol=1e-10)
    opt = ProjectedSGD(model.parameters(), tracker, lr=lr, mode="dom")
    train.train(model, loss_fn, batch, optimizer=opt, steps=steps, callbacks=[tracker])
    c0 = U.T @ theta0
    factors = torch.ones_like(lam)
    factors[:k] = (1 - lr * lam[:k]) ** steps
    torch.testing.assert_close(model.theta.detach(), U @ (factors * c0), rtol=0, atol=1e-9)
    assert len(tracker.steps) == 1 + steps // 2      # step 0, then every 2 steps
    # the recorded overlaps are ‖P g‖/‖g‖ of each step's gradient, exactly
    g0 = A @ theta0
    assert opt.overlaps[0] == pytest.approx(float(torch.linalg.norm(U[:, :k].T @ g0) / torch.linalg.norm(g0)),
                                            rel=1e-9)
    assert len(opt.overlaps) == steps


def test_errors_say_what_to_do():
    batch, U, lam, theta0, loss_fn = quadratic_problem()
    model = Quadratic(theta0)
    with pytest.raises(ValueError, match="mode must be one of"):
        ProjectedSGD(model.parameters(), U[:, :2], lr=0.1, mode="top")
    with pytest.raises(ValueError, match="lr must be positive"):
        ProjectedSGD(model.parameters(), U[:, :2], lr=0.0)
    opt = ProjectedSGD(model.parameters(), torch.randn(5, 2, dtype=torch.float64), lr=0.1)
    loss_fn(model, batch).backward()
    with pytest.raises(ValueError, match="lives in 5 dimensions"):
        opt.step()
    tracker = hessian.SharpnessCallback(loss_fn, batch, k=2)
    with pytest.raises(ValueError, match="no subspace yet"):
        ProjectedSGD(model.parameters(), tracker, lr=0.1).step()
    with pytest.raises(TypeError, match="cannot use a"):
        ProjectedSGD(model.parameters(), lambda: np.eye(12)[:, :2], lr=0.1).step()
