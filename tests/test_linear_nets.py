"""hild.models.linear_nets and hild.data.sparse: closed-form sharpness and Hessians against the
dense float64 Hessian (hild.hessian.dense_hessian), the exact (f, λ) map against autograd GD."""

import numpy as np
import pytest
import torch

from hild import hessian
from hild.data.sparse import sparse_regression
from hild.models.linear_nets import (DiagonalLinear, TwoLayerLinear, half_mse, log_cosh, two_layer_gd_map,
                                     two_layer_sharpness)


def _two_layer_loss(y, loss):
    def fn(model, batch):
        r = model(batch).sum() - y
        return log_cosh(r) if loss == "log_cosh" else 0.5 * r**2
    return fn


def _x(d, rho, seed=0):
    x = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return rho * x / x.norm()


def test_log_cosh_is_stable_and_exact():
    r = torch.tensor([-800.0, -3.0, 0.0, 1e-3, 2.5, 900.0], dtype=torch.float64)
    expected = torch.tensor([800 - np.log(2), np.log(np.cosh(3.0)), 0.0, np.log(np.cosh(1e-3)),
                             np.log(np.cosh(2.5)), 900 - np.log(2)], dtype=torch.float64)
    torch.testing.assert_close(log_cosh(r), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("loss", ["log_cosh", "squared"])
@pytest.mark.parametrize("rho, width, d", [(1.0, 5, 5), (1.7, 3, 4), (0.6, 1, 2)])
def test_two_layer_sharpness_equals_dense_hessian(loss, rho, width, d):
    """Anywhere (not only at minima): the closed form against eigvalsh of the dense Hessian."""
    x = _x(d, rho)
    y = 2.5
    for seed in range(4):
        net = TwoLayerLinear(d, width, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            net.U.mul_(1.5 + seed)
        H = hessian.dense_hessian(net, _two_layer_loss(y, loss), x[None], dtype=torch.float64)
        top = float(torch.linalg.eigvalsh(H)[-1])
        f = float(net(x[None]).sum().detach())
        lam = float(net.grad_norm2(x)[0])
        assert two_layer_sharpness(f, lam, y=y, rho=rho, loss=loss) == pytest.approx(top, rel=1e-10, abs=1e-12)


def test_place_sets_output_and_curvature_and_sharpness_at_a_minimum_is_lambda():
    x = _x(4, 1.3, seed=2)
    net = TwoLayerLinear(4, 6, copies=3, generator=torch.Generator().manual_seed(1))
    lam = torch.tensor([6.0, 9.0, 12.0], dtype=torch.float64)
    net.place(x, output=2.0, grad_norm2=lam, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(net(x[None])[:, 0], torch.full((3,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(net.grad_norm2(x), lam)
    for c in range(3):  # at f = y the Hessian is ∇f∇fᵀ: sharpness λ
        one = TwoLayerLinear(4, 6)
        with torch.no_grad():
            one.U.copy_(net.U[c : c + 1])
            one.v.copy_(net.v[c : c + 1])
        H = hessian.dense_hessian(one, _two_layer_loss(2.0, "log_cosh"), x[None], dtype=torch.float64)
        assert float(torch.linalg.eigvalsh(H)[-1]) == pytest.approx(float(lam[c]), rel=1e-12)
    with pytest.raises(ValueError, match="grad_norm2"):
        net.place(x, output=5.0, grad_norm2=1.0)


@pytest.mark.parametrize("loss", ["log_cosh", "squared"])
def test_gd_on_the_network_is_the_exact_two_number_map(loss):
    """GD on U, v (autograd, several copies at once) follows (f, λ) ↦ two_layer_gd_map(f, λ)."""
    x, y, lr, rho = _x(5, 1.0, seed=4), 8.0, 0.1, 1.0
    net = TwoLayerLinear(5, 5, copies=4, generator=torch.Generator().manual_seed(0))
    net.place(x, output=0.0, grad_norm2=torch.tensor([13.0, 15.0, 17.0, 19.0], dtype=torch.float64))
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    f, lam = np.zeros(4), net.grad_norm2(x).numpy().copy()
    ell = log_cosh if loss == "log_cosh" else (lambda r: 0.5 * r**2)
    for _ in range(60):
        opt.zero_grad()
        ell(net(x[None])[:, 0] - y).sum().backward()  # summed over copies: independent GD
        opt.step()
        f, lam = two_layer_gd_map(f, lam, lr=lr, y=y, rho=rho, loss=loss)
        np.testing.assert_allclose(net(x[None])[:, 0].detach().numpy(), f, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(net.grad_norm2(x).numpy(), lam, rtol=1e-9)


def test_diagonal_hessian_and_minimum_sharpness_are_exact():
    task = sparse_regression(7, 5, s=2, seed=3)
    g = torch.Generator().manual_seed(0)
    net = DiagonalLinear(5, init=(torch.rand(5, generator=g, dtype=torch.float64) + 0.3,
                                  torch.rand(5, generator=g, dtype=torch.float64) + 0.3))
    dense = hessian.dense_hessian(net, half_mse, task.batch, dtype=torch.float64)
    torch.testing.assert_close(net.hessian(*task.batch), dense, rtol=1e-12, atol=1e-12)
    # an interpolating minimum (n < d): u = sqrt(w⁺ + c), v = sqrt(w⁻ + c) with w the min-norm solution
    task = sparse_regression(4, 9, s=2, seed=5)
    w = torch.linalg.lstsq(task.x, task.y[:, None]).solution[:, 0]
    c = 0.3
    net = DiagonalLinear(9, init=(torch.sqrt(w.clamp(min=0) + c), torch.sqrt((-w).clamp(min=0) + c)))
    assert float(half_mse(net, task.batch).detach()) < 1e-25
    top = float(torch.linalg.eigvalsh(hessian.dense_hessian(net, half_mse, task.batch, dtype=torch.float64))[-1])
    assert net.minimum_sharpness(task.x) == pytest.approx(top, rel=1e-11)


def test_diagonal_network_shapes_and_scale_init():
    net = DiagonalLinear(6, init=0.5)
    assert torch.equal(net.w, torch.zeros(6, dtype=torch.float64))
    assert net(torch.ones(3, 6)).shape == (3,)
    with pytest.raises(ValueError, match="shape"):
        DiagonalLinear(6, init=(torch.ones(5), torch.ones(6)))


def test_sparse_regression_is_reproducible_and_sparse():
    a, b = sparse_regression(10, 30, s=3, seed=1), sparse_regression(10, 30, s=3, seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.w_star, b.w_star)
    assert int((a.w_star != 0).sum()) == 3 and set(a.w_star[a.w_star != 0].abs().tolist()) == {1.0}
    torch.testing.assert_close(a.y, a.x @ a.w_star)
    with pytest.raises(ValueError):
        sparse_regression(10, 30, s=0)
