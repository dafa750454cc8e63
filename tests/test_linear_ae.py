"""hild.models.linear_ae and hild.data.latent against exact answers (float64, hand-derived
gradients, closed forms)."""

import math

import numpy as np
import pytest
import torch

from hild.checks import CheckFailed
from hild.checks import greedy_rank as greedy_checks
from hild.data.latent import latent_subspace
from hild.models.linear_ae import (LinearBottleneckAE, depth_adjusted_lr, end_to_end_rate,
                                   orthogonal_factors)

F64 = torch.float64


def _model(depth, *, d=5, latent=3, scale=0.7, seed=0):
    return LinearBottleneckAE(d, latent, depth, scale=scale, dtype=F64,
                              generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_end_to_end_map_is_the_product_of_the_matrices(depth):
    m = _model(depth)
    x = torch.randn(7, 5, dtype=F64, generator=torch.Generator().manual_seed(1))
    M = m.decoder
    for w in reversed(list(m.bottleneck)):
        M = M @ w
    M = M @ m.encoder
    torch.testing.assert_close(m.end_to_end(), M, rtol=0, atol=1e-14)
    torch.testing.assert_close(m(x), x @ M.T, rtol=1e-13, atol=1e-13)
    expected_loss = ((x @ M.T - x) ** 2).sum(1).mean()
    torch.testing.assert_close(m.reconstruction_loss(x), expected_loss, rtol=1e-13, atol=0)


def test_initialisation_is_orthogonal_with_the_given_scale():
    m = _model(4, d=6, latent=4, scale=0.3)
    for w in m.bottleneck:
        torch.testing.assert_close(w @ w.T, 0.09 * torch.eye(4, dtype=F64), rtol=0, atol=1e-14)
    sv = torch.linalg.svdvals(m.product())
    torch.testing.assert_close(sv, torch.full((4,), 0.3**4, dtype=F64), rtol=1e-12, atol=0)
    torch.testing.assert_close(m.encoder @ m.encoder.T, torch.eye(4, dtype=F64), rtol=0, atol=1e-14)
    torch.testing.assert_close(m.decoder.T @ m.decoder, torch.eye(4, dtype=F64), rtol=0, atol=1e-14)
    assert len(orthogonal_factors(0, 3)) == 0
    with pytest.raises(ValueError):
        orthogonal_factors(2, 3, scale=0.0)


def test_one_gradient_step_matches_the_hand_derived_gradients():
    """Loss (1/n)Σ‖D W2 W1 E x − x‖²: with R = X̂ − X and G = (2/n) Rᵀ X (the gradient with
    respect to the end-to-end map M), ∂D = G (W2 W1 E)ᵀ, ∂W2 = Dᵀ G (W1 E)ᵀ, ∂W1 = (D W2)ᵀ G Eᵀ,
    ∂E = (D W2 W1)ᵀ G."""
    m = _model(2, d=4, latent=3, scale=0.8)
    x = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    D, W1, W2, E = (t.detach().clone() for t in (m.decoder, m.bottleneck[0], m.bottleneck[1],
                                                 m.encoder))
    R = x @ (D @ W2 @ W1 @ E).T - x
    G = 2 / len(x) * R.T @ x
    lr = 0.05
    expected = {"D": D - lr * G @ (W2 @ W1 @ E).T, "W2": W2 - lr * D.T @ G @ (W1 @ E).T,
                "W1": W1 - lr * (D @ W2).T @ G @ E.T, "E": E - lr * (D @ W2 @ W1).T @ G}
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    m.reconstruction_loss(x).backward()
    opt.step()
    got = {"D": m.decoder, "W2": m.bottleneck[1], "W1": m.bottleneck[0], "E": m.encoder}
    for k in expected:
        torch.testing.assert_close(got[k].detach(), expected[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("depth,sigma", [(1, 0.5), (2, 0.1), (4, 0.01), (6, 1.3)])
def test_end_to_end_rate_is_the_first_order_change_of_the_product(depth, sigma):
    """Balanced orthogonal factors: the linear term of P(W − η∇) is η·L·σ^(2−2/L)·G exactly."""
    measured = greedy_checks.measured_product_rate(depth, sigma, width=4, seed=depth)
    assert measured == pytest.approx(end_to_end_rate(depth, sigma), rel=1e-10)
    assert end_to_end_rate(depth, sigma) == pytest.approx(depth * sigma ** (2 - 2 / depth))


def test_depth_adjusted_lr_matches_a_single_matrix_at_the_reference():
    assert depth_adjusted_lr(0.02, 1) == 0.02
    assert depth_adjusted_lr(0.02, 0) == 0.02
    assert depth_adjusted_lr(0.02, 4) == pytest.approx(0.005)
    for L in (2, 3, 8):
        lr = depth_adjusted_lr(0.1, L, reference=0.5)
        assert lr * end_to_end_rate(L, 0.5) == pytest.approx(0.1, rel=1e-12)


def test_code_singular_values_are_the_codes_svd_over_root_n():
    m = _model(2)
    x = torch.randn(9, 5, dtype=F64, generator=torch.Generator().manual_seed(3))
    expected = torch.linalg.svdvals(m.encode(x)) / 3.0
    torch.testing.assert_close(m.code_singular_values(x), expected, rtol=1e-13, atol=0)
    torch.testing.assert_close(m.encode(x), x @ (m.product() @ m.encoder).T, rtol=1e-13,
                               atol=1e-14)


def test_latent_subspace_is_exactly_low_rank_without_noise():
    task = latent_subspace(40, 8, (3.0, 2.0, 1.0), noise=0.0, seed=4, dtype=F64)
    assert task.rank == 3
    torch.testing.assert_close(task.basis.T @ task.basis, torch.eye(3, dtype=F64), rtol=0,
                               atol=1e-14)
    torch.testing.assert_close(task.x, task.z @ task.basis.T, rtol=0, atol=1e-14)
    assert int(torch.linalg.matrix_rank(task.x)) == 3
    noisy = latent_subspace(40, 8, (3.0, 2.0, 1.0), noise=0.1, seed=4, dtype=F64)
    torch.testing.assert_close(noisy.z, task.z)  # same seed, same codes; only ε added
    pop = noisy.population_std()
    torch.testing.assert_close(pop[:3], torch.sqrt(torch.tensor([9.01, 4.01, 1.01], dtype=F64)))
    assert torch.all(pop[3:] == 0.1) and pop.shape == (8,)
    with pytest.raises(ValueError):
        latent_subspace(10, 2, (1.0, 1.0, 1.0))


def test_checks_pass_right_answers_and_fail_wrong_ones():
    greedy_checks.principal_stds(
        lambda x, k: np.linalg.svd(x, compute_uv=False)[:k] / math.sqrt(len(x)))
    with pytest.raises(CheckFailed):  # centred data: not what the codes' spectrum measures
        greedy_checks.principal_stds(
            lambda x, k: np.linalg.svd(x - x.mean(0), compute_uv=False)[:k] / math.sqrt(len(x)))
    greedy_checks.product_rate(lambda L, s: L * s ** (2 - 2 / L))
    with pytest.raises(CheckFailed):  # forgets the depth factor
        greedy_checks.product_rate(lambda L, s: s ** (2 - 2 / L))
