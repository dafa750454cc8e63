"""hild.checks.rank: every check passes the right answer, fails a wrong one, and its reference is exact."""

import math

import numpy as np
import pytest
import torch

from hild import rank
from hild.checks import CheckFailed
from hild.checks import rank as rank_checks
from hild.models import SigmaReparam
from hild.models.attention import attention_entropy, extremal_logits


def test_numerical_rank_check():
    rank_checks.numerical_rank(lambda s, r: int(np.sum(s > r * np.max(s))))
    with pytest.raises(CheckFailed):
        rank_checks.numerical_rank(lambda s, r: int(np.sum(s > r * s[0])))  # assumes sorted input


def test_half_time_reference_is_the_gradient_flow():
    """Integrate u' = −(uv − w*)v, v' = −(uv − w*)u with a fine RK4 and compare with the closed form."""
    alpha, w_star, dt = 1e-2, 2.0, 1e-4
    t_closed = math.log(w_star / alpha**2 - 1) / (2 * w_star)
    u = v = alpha
    t = 0.0

    def f(u, v):
        r = u * v - w_star
        return -r * v, -r * u

    while u * v < w_star / 2:
        k1 = f(u, v)
        k2 = f(u + dt / 2 * k1[0], v + dt / 2 * k1[1])
        k3 = f(u + dt / 2 * k2[0], v + dt / 2 * k2[1])
        k4 = f(u + dt * k3[0], v + dt * k3[1])
        u = u + dt / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        v = v + dt / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        t += dt
    assert t == pytest.approx(t_closed, abs=2 * dt)
    rank_checks.half_time(lambda a, w: math.log(w / a**2 - 1) / (2 * w))
    with pytest.raises(CheckFailed):
        rank_checks.half_time(lambda a, w: math.log(1 / a) / w)  # only the small-α asymptote


def test_power_iteration_reference_matches_sigma_reparam():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 6, dtype=torch.float64)
    layer = SigmaReparam(lin)
    u0 = torch.randn(4, dtype=torch.float64)
    layer.u.copy_(u0 / u0.norm())
    layer.power_iteration(3)
    W = lin.weight.detach().numpy()
    sigma = float(layer.v @ lin.weight.detach() @ layer.u)
    assert rank_checks._power_sigma(W, u0.numpy(), 3) == pytest.approx(sigma, rel=1e-12)

    def solution(W, u0, steps):
        u = u0 / np.linalg.norm(u0)
        v = W @ u / np.linalg.norm(W @ u)
        for _ in range(steps):
            v = W @ u / np.linalg.norm(W @ u)
            u = W.T @ v / np.linalg.norm(W.T @ v)
        return v @ W @ u

    rank_checks.power_iteration_sigma(solution)
    with pytest.raises(CheckFailed):
        rank_checks.power_iteration_sigma(lambda W, u0, k: np.linalg.norm(W, 2))  # exact, not k steps


def test_extremal_entropy_check():
    def solution(T, r):
        p = torch.softmax(extremal_logits(T, r), 0)
        return float(attention_entropy(p))

    rank_checks.extremal_entropy(solution)
    with pytest.raises(CheckFailed):
        rank_checks.extremal_entropy(lambda T, r: math.log(T) * math.exp(-r))


def test_adam_update_check():
    def solution(grads, lr, b1, b2, eps):
        m = v = 0.0
        for t, g in enumerate(grads, start=1):
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            step = -lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        return step

    rank_checks.adam_update(solution)
    with pytest.raises(CheckFailed):
        rank_checks.adam_update(lambda grads, lr, *rest: -lr * grads[-1])  # plain SGD


def test_count_slingshots_check():
    rank_checks.count_slingshots(lambda s, l, n, w: len(rank.slingshot_events(s, l, n, window=w)))
    with pytest.raises(CheckFailed):
        rank_checks.count_slingshots(lambda s, l, n, w: int(np.sum(l[1:] > 10 * l[:-1])))
