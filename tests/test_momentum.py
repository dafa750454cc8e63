"""hild.optim.momentum: SGDM as a linear map on a noisy quadratic (closed forms against the
Lyapunov equation), torch's SGD(momentum) against the paper's recursion, and same-stream arms."""

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from hild import train
from hild.models import MLP
from hild.optim.momentum import (effective_lr, heavy_ball, heavy_ball_matrix, momentum_warmup, relative_gap,
                                 stability_limit, stationary_variance, train_arms)


def test_torch_sgd_momentum_is_the_papers_recursion():
    """m_{k+1} = β m_k + g_k, x_{k+1} = x_k − γ m_{k+1}, on f = h x²/2: the state follows heavy_ball_matrix."""
    h, lr_eff, beta = 1.7, 0.4, 0.9
    x = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    opt = heavy_ball([x], lr_eff=lr_eff, beta=beta)
    state = np.array([2.0, 0.0])
    M = heavy_ball_matrix(h, lr_eff * (1 - beta), beta)
    for _ in range(25):
        opt.zero_grad()
        (0.5 * h * x**2).sum().backward()
        opt.step()
        state = M @ state
        assert float(x.detach()) == pytest.approx(state[0], rel=1e-12, abs=1e-15)
    assert effective_lr(0.04, 0.9) == pytest.approx(0.4)


@pytest.mark.parametrize("h, lr, beta", [(1.0, 0.1, 0.0), (2.0, 0.05, 0.9), (0.5, 1.5, 0.5), (3.0, 1.2, 0.9)])
def test_stationary_variance_solves_the_lyapunov_equation(h, lr, beta):
    """S = M S Mᵀ + b bᵀ with b = σ(−γ, 1): the noise enters m and, through it, x."""
    sigma = 0.7
    M = heavy_ball_matrix(h, lr, beta)
    b = sigma * np.array([[-lr], [1.0]])
    S = scipy.linalg.solve_discrete_lyapunov(M, b @ b.T)
    assert stationary_variance(h, sigma, lr, beta) == pytest.approx(S[0, 0], rel=1e-10)


def test_variances_agree_at_small_rates_and_stability_limits():
    h, sigma, beta = 1.0, 1.0, 0.9
    for eta in (1e-4, 1e-3, 1e-2):  # SGDM(η(1 − β), β) against SGD(η): ratio 1 − O(ηh)
        ratio = stationary_variance(h, sigma, eta * (1 - beta), beta) / stationary_variance(h, sigma, eta)
        assert ratio == pytest.approx((2 - eta * h) / (2 - eta * h * (1 - beta) / (1 + beta)), rel=1e-12)
        assert abs(ratio - 1) < eta
    assert stationary_variance(h, sigma, 0.2) == pytest.approx(0.2 / (2 - 0.2))  # SGD: ησ²/(h(2 − ηh))
    limit = stability_limit(h, beta)
    assert limit == pytest.approx(3.8)
    rho = lambda lr: np.max(np.abs(np.linalg.eigvals(heavy_ball_matrix(h, lr, beta))))  # noqa: E731
    assert rho(limit * 0.999) < 1 < rho(limit * 1.001)
    with pytest.raises(ValueError, match="unstable"):
        stationary_variance(h, sigma, limit, beta)


def test_train_arms_share_the_initialisation_and_the_batches():
    torch.manual_seed(0)
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    model = MLP([5, 8, 3], activation="tanh")
    before = [p.detach().clone() for p in model.parameters()]
    data = train.batches(x, y, batch_size=4, seed=1)
    sgd = lambda p: heavy_ball(p, lr_eff=0.1, beta=0.0)  # noqa: E731

    def warm(p):
        opt = heavy_ball(p, lr_eff=0.1, beta=0.0)
        return opt, momentum_warmup(opt, 0.9)

    arms = train_arms(model, {"a": sgd, "b": sgd, "sgdm": lambda p: heavy_ball(p, lr_eff=0.1, beta=0.9),
                              "warm": warm}, train.supervised(F.cross_entropy), data, steps=30, every=10)
    (ma, ha), (mb, hb) = arms["a"], arms["b"]
    np.testing.assert_array_equal(ha["loss"], hb["loss"])  # same init, same batches: identical runs
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(pa, pb)
    for p, p0 in zip(model.parameters(), before):  # the model passed in is untouched
        assert torch.equal(p, p0)
    assert not np.array_equal(arms["sgdm"][1]["loss"], ha["loss"])
    assert arms["warm"][1]["loss"][0] != ha["loss"][0]  # the scheduler was used
    with pytest.raises(TypeError, match="replayable"):
        train_arms(model, {"a": sgd}, train.supervised(F.cross_entropy), (x, y), steps=1)


def test_warmup_reproduces_sgdm_under_a_constant_gradient():
    """On a linear loss gᵀx, SGD with rate η(1 − β^{k+1}) and SGDM(η(1 − β), β) take identical steps."""
    g = torch.tensor([0.3, -1.2], dtype=torch.float64)
    x1 = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    x2 = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    sgdm = heavy_ball([x1], lr_eff=0.5, beta=0.9)
    sgd = heavy_ball([x2], lr_eff=0.5, beta=0.0)
    ramp = momentum_warmup(sgd, 0.9)
    for _ in range(30):
        for x, opt in ((x1, sgdm), (x2, sgd)):
            opt.zero_grad()
            (g @ x).backward()
            opt.step()
        ramp.step()
        torch.testing.assert_close(x1.detach(), x2.detach(), rtol=1e-12, atol=1e-14)


def test_relative_gap():
    np.testing.assert_allclose(relative_gap([1.0, 2.0], [1.1, 1.0]), [0.1, 1.0])
    with pytest.raises(ValueError, match="shapes"):
        relative_gap([1.0], [1.0, 2.0])
