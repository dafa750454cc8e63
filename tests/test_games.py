"""hild.data.games: the update matrices are the methods' exact linear maps.

Exact answers: one step of each optimizer applied to a state equals M @ state to machine
precision; hand-derived spectral radii for the scalar game; ρ(M)^200 against a long run.
"""

import numpy as np
import pytest
import torch

from hild.data import QuadraticGame, bilinear_game, count_iterations, iterations_to, quadratic_game
from hild.optim import AlexGDA, SimGDA, gda_step, run_gda


@pytest.fixture(scope="module")
def game():
    return quadratic_game(6, mu=0.2, L=1.5, mu_xy=0.3, L_xy=2.0, seed=1)


def test_constants_are_the_requested_extremes(game):
    assert game.mu_x == pytest.approx(0.2) and game.L_x == pytest.approx(1.5)
    assert game.mu_y == pytest.approx(0.2) and game.L_y == pytest.approx(1.5)
    assert game.mu_xy == pytest.approx(0.3) and game.L_xy == pytest.approx(2.0)
    assert game.kappa_xy == pytest.approx(2.0 / 0.2)
    assert np.allclose(game.A, game.A.T) and np.allclose(game.C, game.C.T)


def _torch_step(game, method, state, alpha, beta, gamma=1.0, delta=1.0):
    x = torch.tensor(state[0], requires_grad=True)
    y = torch.tensor(state[1], requires_grad=True)
    A, B, C = (torch.as_tensor(m) for m in (game.A, game.B, game.C))
    if method == "sim":
        opt = SimGDA([x], [y], lr_min=alpha, lr_max=beta)
    else:
        opt = AlexGDA([x], [y], lr_min=alpha, lr_max=beta, gamma=gamma, delta=delta)
        opt.state[y]["extrapolated"] = torch.tensor(state[2])

    def closure():
        loss = 0.5 * x @ A @ x + x @ B @ y - 0.5 * y @ C @ y
        loss.backward()
        return loss

    opt.step(closure)
    parts = [x.detach().numpy(), y.detach().numpy()]
    if method == "alex":
        parts.append(opt.state[y]["extrapolated"].numpy())
    return np.concatenate(parts)


@pytest.mark.parametrize("method,gamma,delta", [("sim", 1, 1), ("alt", 1, 1), ("alex", 2.0, 1.5), ("alex", 1.0, 0.0)])
def test_update_matrix_is_one_optimizer_step(game, method, gamma, delta):
    rng = np.random.default_rng(0)
    d = game.dx
    s = rng.standard_normal(3 * d)
    if method == "alt":
        s[2 * d:] = s[d:2 * d]  # Alt-GDA's ỹ is y
    M = game.update_matrix(method, alpha=0.3, beta=0.4, gamma=gamma, delta=delta)
    n = M.shape[0]
    expected = M @ s[:n]
    got = _torch_step(game, "alex" if method == "alt" else method, (s[:d], s[d:2 * d], s[2 * d:]), 0.3, 0.4, gamma, delta)
    np.testing.assert_allclose(got[:n], expected, rtol=1e-12, atol=1e-12)
    arr = gda_step(game.grad_x, game.grad_y, (s[:d], s[d:2 * d], s[2 * d:]), alpha=0.3, beta=0.4, gamma=gamma, delta=delta)
    if method != "sim":
        np.testing.assert_allclose(np.concatenate(arr)[:n], expected, rtol=1e-12, atol=1e-12)


def test_scalar_game_radii_match_hand_derivation():
    a, b, c, al, be = 0.1, 1.0, 0.1, 0.9, 0.9
    g = QuadraticGame(A=[[a]], B=[[b]], C=[[c]], x0=[1.0], y0=[1.0])
    # Alt-GDA: det M = (1 − αa)(1 − βc); complex eigenvalues here, so ρ = √det
    assert g.spectral_radius("alt", alpha=al, beta=be) == pytest.approx(np.sqrt((1 - al * a) * (1 - be * c)), rel=1e-12)
    # Sim-GDA: det M = (1 − αa)(1 − βc) + αβb²
    assert g.spectral_radius("sim", alpha=al, beta=be) == pytest.approx(
        np.sqrt((1 - al * a) * (1 - be * c) + al * be * b * b), rel=1e-12)
    xy = QuadraticGame(A=[[0.0]], B=[[1.0]], C=[[0.0]], x0=[1.0], y0=[1.0])
    assert xy.spectral_radius("alt", alpha=0.5, beta=0.5) == pytest.approx(1.0, abs=1e-12)
    assert xy.spectral_radius("sim", alpha=0.5, beta=0.5) == pytest.approx(np.sqrt(1.25), rel=1e-12)


def test_shifted_sim_has_the_textbook_rate(game):
    textbook = game.spectral_radius("sim", alpha=0.05, beta=0.05)
    framework = game.spectral_radius("alex", alpha=0.05, beta=0.05, gamma=1.0, delta=0.0)
    assert framework == pytest.approx(textbook, rel=1e-9)


@pytest.mark.parametrize("method", ["sim", "alt", "alex"])
def test_contraction_over_200_steps_matches_rho(game, method):
    alpha = 0.05 if method == "sim" else 0.3
    kw = dict(alpha=alpha, beta=alpha, gamma=2.0, delta=1.0) if method == "alex" else dict(alpha=alpha, beta=alpha)
    rho = game.spectral_radius(method, **kw)
    run = run_gda(game, method, steps=400, **kw)
    measured = np.sqrt(run.distance2[400] / run.distance2[200])  # past the transient
    assert measured == pytest.approx(rho**200, rel=0.05)


def test_count_iterations_agrees_with_the_run(game):
    kw = dict(alpha=0.3, beta=0.3)
    run = run_gda(game, "alt", steps=10_000, tol=1e-10, **kw)
    M = game.update_matrix("alt", **kw)
    assert count_iterations(M, np.r_[game.x0, game.y0], tol=1e-10, cap=10_000, block=16) == run.iterations
    assert count_iterations(M, np.r_[game.x0, game.y0], tol=1e-10, cap=3) is None
    assert iterations_to(0.5, 1e-6) == pytest.approx(np.log(1e6) / (2 * np.log(2)))


def test_bad_input_is_refused_or_warned(game):
    with pytest.raises(ValueError, match=r"B must have shape \(dx, dy\) = \(2, 3\)"):
        QuadraticGame(A=np.eye(2), B=np.ones((3, 2)), C=np.eye(3), x0=np.zeros(2), y0=np.zeros(3))
    with pytest.raises(ValueError, match="symmetric"):
        QuadraticGame(A=[[1.0, 2.0], [0.0, 1.0]], B=np.eye(2), C=np.eye(2), x0=np.zeros(2), y0=np.zeros(2))
    with pytest.raises(ValueError, match="0 < mu <= L"):
        quadratic_game(4, mu=0.0, L=1.0, mu_xy=0.1, L_xy=1.0)
    with pytest.raises(ValueError, match="unknown method"):
        game.update_matrix("extra", alpha=0.1, beta=0.1)
    bound = game.stable_step("sim")
    assert 0 < bound < 1
    assert game.spectral_radius("sim", alpha=0.99 * bound, beta=0.99 * bound) < 1
    with pytest.warns(RuntimeWarning, match=f"stable for α = β < {bound:.4g}"):
        game.check_step("sim", alpha=1.5 * bound, beta=1.5 * bound)
    with pytest.warns(RuntimeWarning, match="no equal step size"):
        bilinear_game(3, mu_xy=0.5, L_xy=1.0).check_step("sim", alpha=0.1, beta=0.1)
