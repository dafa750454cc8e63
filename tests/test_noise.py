"""Mini-batch gradient noise, against exact answers: the vectorised per-batch gradients equal one
backward pass per batch, and the excess kurtosis of known distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hild import train
from hild.optim import GradientNoise, excess_kurtosis, gradient_noise, minibatch_gradients


def test_minibatch_gradients_equal_one_backward_per_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    x = torch.randn(6, 4, 3, dtype=torch.float64)          # 6 mini-batches of 4
    y = torch.randint(0, 2, (6, 4))
    loss_fn = train.supervised(F.cross_entropy)
    G = minibatch_gradients(model, loss_fn, (x, y), chunk=4)
    assert G.shape == (6, sum(p.numel() for p in model.parameters()))
    for j in range(6):
        model.zero_grad()
        loss_fn(model, (x[j], y[j])).backward()
        ref = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(G[j], ref, rtol=1e-12, atol=1e-14)
    noise = gradient_noise(model, loss_fn, (x, y))
    torch.testing.assert_close(noise.mean_gradient, G.mean(0))
    np.testing.assert_allclose(noise.norms, torch.linalg.norm(G - G.mean(0), dim=1).numpy(), rtol=1e-12)
    assert noise.batch_size == 4 and noise.noise.shape == G.shape


def test_excess_kurtosis_of_known_distributions():
    assert excess_kurtosis([1.0, -1.0] * 50) == pytest.approx(-2.0)           # two-point: −2 exactly
    rng = np.random.default_rng(0)
    assert abs(excess_kurtosis(rng.standard_normal(400_000))) < 0.05          # Gaussian: 0
    assert excess_kurtosis(rng.laplace(size=400_000)) == pytest.approx(3.0, abs=0.15)   # Laplace: 3
    assert excess_kurtosis(torch.tensor(rng.uniform(size=400_000))) == pytest.approx(-1.2, abs=0.02)
    with pytest.raises(ValueError, match="constant"):
        excess_kurtosis(np.ones(5))


def test_gaussian_reference_has_the_noise_covariance():
    torch.manual_seed(1)
    model = nn.Linear(3, 1, bias=False).double()
    x = torch.randn(400, 8, 3, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)

    def loss_fn(m, batch):
        inputs, targets = batch
        return ((m(inputs)[..., 0] - targets) ** 2).mean()

    noise = gradient_noise(model, loss_fn, (x, y))
    ref = noise.gaussian_norms(200_000, seed=0)
    # E‖ξ‖² = tr Σ for the Gaussian with the sample covariance Σ = ξᵀξ/G
    assert float(np.mean(ref**2)) == pytest.approx(float(np.mean(noise.norms**2)), rel=0.01)


def _noise(xi: torch.Tensor) -> GradientNoise:
    norms = torch.linalg.vector_norm(xi, dim=1).numpy()
    return GradientNoise(noise=xi, norms=norms, mean_gradient=xi.mean(0), batch_size=1)


def test_gaussian_reference_of_rank_one_noise_is_half_normal():
    """All noise along one vector u: Σ = λ uuᵀ/‖u‖², so the reference norms are √λ |z|, whose median is
    √λ Φ⁻¹(3/4). Both routes (G < n: the Gram matrix; G ≥ n: the covariance) give that law."""
    g = torch.Generator().manual_seed(0)
    for G, n in ((30, 40), (60, 8)):
        u = torch.randn(n, dtype=torch.float64, generator=g)
        coef = torch.randn(G, dtype=torch.float64, generator=g)
        xi = coef[:, None] * u[None, :]
        lam = float((coef**2).mean() * (u @ u))
        ref = _noise(xi).gaussian_norms(200_000, seed=1)
        assert ref.shape == (200_000,)
        assert np.median(ref) == pytest.approx(np.sqrt(lam) * 0.6744897501960817, rel=0.01)


def test_tail_mass_of_gaussian_and_heavy_noise():
    rng = np.random.default_rng(0)
    scales = np.array([3.0, 1.0, 0.5, 0.2])
    xi = torch.tensor(rng.standard_normal((40_000, 4)) * scales)
    gauss = _noise(xi)
    for q in (0.9, 0.99):
        assert gauss.tail_mass(q, n_samples=100_000) == pytest.approx(1 - q, abs=0.2 * (1 - q))
    heavy = xi.clone()
    heavy[:2000] *= 50.0                                      # 5% of the mini-batches are huge
    assert _noise(heavy).tail_mass(0.99) >= 0.05
    with pytest.raises(ValueError, match="q must lie"):
        gauss.tail_mass(1.0)
