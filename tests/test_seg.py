"""hild.optim.seg and hild.data.FiniteSumGame: SEG variants against exact answers.

Exact answers: with one component (or n identical ones) every variant is deterministic
extragradient, written out by hand here; the flip-flop order is a palindrome of a permutation; on
a strongly monotone game the saddle point is the linear solve Q̄z = t̄, and SEG-FFA reaches it;
the torch optimizer and the array runner produce the same iterates.
"""

import numpy as np
import pytest
import torch

from hild.data import FiniteSumGame, finite_sum_game
from hild.optim import SEG, flip_flop, pass_order, run_seg

VARIANTS = [("us", False), ("rr", False), ("ff", False), ("us", True), ("rr", True), ("ff", True)]


def _eg(F, z, alpha, beta):
    """One deterministic extragradient step."""
    return z - beta * F(z - alpha * F(z))


def _one_component_game(seed=0, d=4):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    Q = (A + A.T)[None] / 2
    return FiniteSumGame(Q=Q, t=rng.standard_normal((1, d)), dx=d // 2, z0=rng.standard_normal(d))


@pytest.mark.parametrize("sampling,anchor", VARIANTS)
def test_one_component_is_deterministic_extragradient(sampling, anchor):
    game = _one_component_game()
    F = lambda z: game.operator(z, 0)  # noqa: E731
    lr, ratio = 0.05, 0.5
    z = game.z0.copy()
    for _ in range(3):  # a pass is two EG steps; anchoring averages each epoch's end with its start
        if anchor and sampling == "ff":
            z = 0.5 * (z + _eg(F, _eg(F, z, ratio * lr, lr), ratio * lr, lr))
        elif anchor:  # an "us"/"rr" epoch is n = 1 step
            for _ in range(2):
                z = 0.5 * (z + _eg(F, z, ratio * lr, lr))
        else:
            z = _eg(F, _eg(F, z, ratio * lr, lr), ratio * lr, lr)
    run = run_seg(game, sampling=sampling, anchor=anchor, lr=lr, extra_ratio=ratio, passes=3, seed=0)
    assert np.allclose(run.z, z, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sampling", ["us", "rr", "ff"])
def test_identical_components_are_deterministic_extragradient(sampling):
    one = _one_component_game(seed=1)
    game = FiniteSumGame(Q=np.repeat(one.Q, 5, 0), t=np.repeat(one.t, 5, 0), dx=one.dx, z0=one.z0)
    F = lambda z: one.operator(z, 0)  # noqa: E731
    z = one.z0.copy()
    for _ in range(2 * 5 * 4):
        z = _eg(F, z, 0.03, 0.03)
    run = run_seg(game, sampling=sampling, lr=0.03, passes=4, seed=3)
    assert np.allclose(run.z, z, rtol=1e-11, atol=1e-11)


def test_flip_flop_order_is_a_palindrome_of_a_permutation():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 40):
        order = pass_order("ff", n, rng)
        assert order.shape == (2 * n,)
        assert np.array_equal(order, order[::-1])
        assert sorted(order[:n].tolist()) == list(range(n))
    assert flip_flop([2, 0, 1]).tolist() == [2, 0, 1, 1, 0, 2]
    rr = pass_order("rr", 6, rng)
    assert sorted(rr[:6].tolist()) == sorted(rr[6:].tolist()) == list(range(6))
    us = pass_order("us", 6, rng)
    assert us.shape == (12,) and us.min() >= 0 and us.max() < 6


def test_seg_ffa_reaches_the_linear_solve_on_a_strongly_monotone_game():
    game = finite_sum_game(3, 6, kind="strongly_monotone", seed=2)
    assert game.monotonicity() > 0.5 and (game.component_monotonicity() > 0.49).all()
    z_star = np.linalg.solve(game.Q.mean(0), game.t.mean(0))
    assert np.allclose(game.solution(), z_star)
    assert game.residual2(z_star) < 1e-20
    run = run_seg(game, sampling="ff", anchor=True, lr=lambda k: 0.1 / (1 + k / 20), passes=3000, seed=0)
    assert np.sum((run.z - z_star) ** 2) < 1e-6 * np.sum((game.z0 - z_star) ** 2)
    assert run.distance2[-1] == pytest.approx(np.sum((run.z - z_star) ** 2))


def test_monotone_game_has_non_monotone_components():
    game = finite_sum_game(4, 8, kind="monotone", seed=0)
    assert abs(game.monotonicity()) < 1e-12  # the mean is bilinear: monotone, not strongly
    assert (game.component_monotonicity() < -1).all()  # each component has curvature −2 somewhere
    assert np.allclose(game.Q.mean(0)[:4, :4], 0) and np.allclose(game.Q.mean(0)[4:, 4:], 0)
    assert np.allclose(game.z0 - game.solution(), 1.0)
    ok = finite_sum_game(20, 40, kind="monotone", seed=4, min_singular=1e-3)
    assert np.linalg.svd(ok.Q.mean(0), compute_uv=False)[-1] >= 1e-3


@pytest.mark.parametrize("sampling,anchor", [("us", False), ("rr", True), ("ff", True)])
def test_torch_optimizer_matches_the_array_runner(sampling, anchor):
    game = finite_sum_game(2, 4, kind="monotone", seed=1)
    x = torch.tensor(game.z0[:2], requires_grad=True)
    y = torch.tensor(game.z0[2:], requires_grad=True)
    opt = SEG([x], [y], lr=0.02, n_components=4, sampling=sampling, anchor=anchor, seed=7)
    assert opt.pass_length == 8 and opt.extra_ratio == (0.5 if anchor and sampling == "ff" else 1.0)

    def closure(i):
        loss = game.loss(i, x, y)
        loss.backward()
        return loss

    for _ in range(3 * opt.pass_length):
        opt.step(closure)
    run = run_seg(game, sampling=sampling, anchor=anchor, lr=0.02, passes=3, seed=7)
    assert np.allclose(torch.cat([x, y]).detach().numpy(), run.z, rtol=1e-10, atol=1e-12)


def test_loss_gradient_is_the_operator():
    game = finite_sum_game(3, 4, kind="strongly_monotone", seed=0)
    z = torch.tensor(game.z0, requires_grad=True)
    game.loss(2, z[:3], z[3:]).backward()
    F = z.grad.numpy() * game.signs
    assert np.allclose(F, game.operator(game.z0, 2))
    assert np.isclose(game.loss(2, game.z0[:3], game.z0[3:]), game.loss(2, z[:3], z[3:]).item())


def test_bad_input():
    game = finite_sum_game(2, 4, seed=0)
    with pytest.raises(ValueError, match="unknown sampling"):
        run_seg(game, sampling="cyclic", lr=0.1, passes=1)
    with pytest.raises(ValueError, match="even"):
        finite_sum_game(2, 5)
    with pytest.raises(ValueError, match="symmetric"):
        FiniteSumGame(Q=np.arange(8.0).reshape(2, 2, 2), t=np.zeros((2, 2)), dx=1, z0=np.zeros(2))
    x, y = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="at least one component"):
        SEG([x], [y], lr=0.1, n_components=0)
    with pytest.raises(ValueError, match="positive"):
        SEG([x], [y], lr=0.0, n_components=2)
    diverged = run_seg(game, sampling="us", lr=50.0, passes=200, seed=0)
    assert np.isinf(diverged.residual2[-1]) and len(diverged.residual2) == 201
