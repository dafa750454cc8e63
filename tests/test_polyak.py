"""hild.optim.polyak: heavy ball on a quadratic against its 2x2 map (rate, threshold 2(1+β)/η,
effective rate η/(1−β)), against torch's SGD(momentum), the warm-up ramp, catapult sizes."""

import numpy as np
import pytest
import torch

from hild.optim.momentum import effective_lr, heavy_ball_matrix, stability_limit
from hild.optim.polyak import PolyakHeavyBall, catapult, linear_warmup


def _run_quadratic(h, lr, beta, steps, x0=1.0):
    x = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
    opt = PolyakHeavyBall([x], lr=lr, beta=beta)
    path = [x0]
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * h * x**2).sum().backward()
        opt.step()
        path.append(float(x.detach()))
    return np.array(path)


@pytest.mark.parametrize("h, lr, beta", [(1.0, 0.5, 0.9), (3.0, 1.2, 0.9), (2.0, 0.3, 0.5), (1.0, 0.05, 0.9)])
def test_contracts_at_the_rate_of_its_two_by_two_map(h, lr, beta):
    """x_{t+1} = (1 + β − ηh) x_t − β x_{t−1}: the companion matrix [[1 + β − ηh, −β], [1, 0]];
    its eigenvalues equal those of heavy_ball_matrix (the same iteration in (x, m) coordinates)."""
    companion = np.array([[1 + beta - lr * h, -beta], [1.0, 0.0]])
    np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(companion)),
                               np.sort_complex(np.linalg.eigvals(heavy_ball_matrix(h, lr, beta))), atol=1e-12)
    path = _run_quadratic(h, lr, beta, 200)
    state = np.array([path[1], path[0]])  # the first step is a plain gradient step (no velocity yet)
    for t in range(1, 200):  # the optimizer follows the map exactly
        state = companion @ state
        assert path[t + 1] == pytest.approx(state[0], rel=1e-9, abs=1e-300)
    rho = max(abs(np.linalg.eigvals(companion)))
    # ‖(x_t, x_{t−1})‖ shrinks like ρ^t (up to the polynomial factor of a repeated root)
    norms = np.hypot(path[1:], path[:-1])
    measured = (norms[190] / norms[90]) ** (1 / 100)
    assert measured == pytest.approx(rho, rel=0.02)


def test_stability_threshold_is_two_one_plus_beta_over_eta():
    h, beta = 2.0, 0.9
    limit = stability_limit(h, beta)  # the largest η: 2(1 + β)/h
    assert limit == pytest.approx(2 * (1 + beta) / h)
    for lr, stable in ((limit * (1 - 1e-2), True), (limit * (1 + 1e-2), False)):
        path = _run_quadratic(h, lr, beta, 2_000)
        assert bool(abs(path[-1]) < 1) is stable
    companion = lambda lr: np.array([[1 + beta - lr * h, -beta], [1.0, 0.0]])  # noqa: E731
    assert np.min(np.abs(np.linalg.eigvals(companion(limit)) + 1)) < 1e-12  # an eigenvalue −1 at the edge


def test_effective_rate_under_a_constant_gradient():
    """On L = gᵀw the step tends to −η g/(1 − β): the effective learning rate."""
    g = torch.tensor([0.3, -1.2], dtype=torch.float64)
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = PolyakHeavyBall([w], lr=0.1, beta=0.9)
    for _ in range(600):
        before = w.detach().clone()
        opt.zero_grad()
        (g @ w).backward()
        opt.step()
    torch.testing.assert_close((w.detach() - before) / -g, torch.full((2,), effective_lr(0.1, 0.9), dtype=torch.float64))


def test_equals_torch_sgd_momentum_at_constant_rate_and_differs_under_warmup():
    def trajectory(opt_cls, warm):
        torch.manual_seed(0)
        A = torch.randn(6, 6, dtype=torch.float64)
        A = A @ A.T / 6
        w = torch.ones(6, dtype=torch.float64, requires_grad=True)
        opt = opt_cls([w])
        sched = linear_warmup(opt, warm)
        out = []
        for _ in range(30):
            opt.zero_grad()
            (0.5 * w @ A @ w).backward()
            opt.step()
            sched.step()
            out.append(w.detach().clone())
        return torch.stack(out)

    ours = lambda p: PolyakHeavyBall(p, lr=0.2, beta=0.8)  # noqa: E731
    theirs = lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.8)  # noqa: E731
    torch.testing.assert_close(trajectory(ours, 0), trajectory(theirs, 0), rtol=1e-12, atol=1e-14)
    assert not torch.allclose(trajectory(ours, 10), trajectory(theirs, 10))


def test_linear_warmup_ramp():
    w = torch.zeros(1, requires_grad=True)
    opt = PolyakHeavyBall([w], lr=0.5, beta=0.0)
    sched = linear_warmup(opt, 4)
    rates = []
    for _ in range(6):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(rates, [0.125, 0.25, 0.375, 0.5, 0.5, 0.5])
    with pytest.raises(ValueError):
        PolyakHeavyBall([w], lr=0.1, beta=1.0)


def test_catapult_finds_the_largest_rise():
    L = [1.0, 0.1, 0.01, 5.0, 0.001, 0.002, 1e-9, 1e-12]
    c = catapult(L)
    assert (c.rise, c.peak_step, c.low_step) == (pytest.approx(500.0), 3, 2)
    assert catapult(L, floor=1e-6).rise == pytest.approx(500.0)
    assert catapult([3.0, 2.0, 1.0]).rise == 1.0
    with pytest.raises(ValueError, match="diverged"):
        catapult([1.0, float("nan")])
