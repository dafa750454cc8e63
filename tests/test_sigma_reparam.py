"""hild.models.sigma_reparam: σReparam's weight has spectral norm γ; with γ = σ(W) it is the plain layer."""

import pytest
import torch
from torch import nn

from hild.models import SigmaReparam, effective_weight, sigma_reparam


def _layer(out_f=7, in_f=5, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(in_f, out_f, dtype=torch.float64)


def test_spectral_norm_of_the_reparameterised_weight_is_gamma_after_convergence():
    lin = _layer()
    layer = SigmaReparam(lin, gamma_init=0.7)
    with torch.no_grad():  # move W away from where u, v were initialised
        lin.weight.add_(torch.randn_like(lin.weight))
    layer.power_iteration(500)  # converge on the new W
    w_hat = effective_weight(layer)
    assert float(torch.linalg.matrix_norm(w_hat, 2)) == pytest.approx(0.7, rel=1e-10)
    exact = float(torch.linalg.matrix_norm(lin.weight.detach(), 2))
    assert float(layer.sigma) == pytest.approx(exact, rel=1e-10)


def test_with_gamma_equal_sigma_the_forward_pass_is_the_plain_layer():
    lin = _layer(seed=1)
    x = torch.randn(4, 5, dtype=torch.float64)
    plain = lin(x).detach()
    layer = SigmaReparam(lin, gamma_init="sigma")
    assert torch.allclose(layer(x), plain, atol=1e-12)  # u, v start exact (SVD), so σ is exact
    layer.eval()
    assert torch.allclose(layer(x), plain, atol=1e-12)


def test_one_power_step_per_training_forward_tracks_a_moving_weight():
    lin = _layer(seed=2)
    layer = SigmaReparam(lin)
    x = torch.randn(3, 5, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.mul_(3.0)  # σ triples; u, v are still exact singular vectors
    layer(x)
    exact = float(torch.linalg.matrix_norm(lin.weight.detach(), 2))
    assert float(layer.sigma) == pytest.approx(exact, rel=1e-10)
    u_before = layer.u.clone()
    layer.eval()
    layer(x)  # eval mode does not iterate
    assert torch.equal(layer.u, u_before)


def test_gradients_reach_w_gamma_and_bias_and_wrapping_a_model():
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Sequential(nn.Linear(8, 3)))
    sigma_reparam(model)
    assert isinstance(model[0], SigmaReparam) and isinstance(model[2][0], SigmaReparam)
    sigma_reparam(model)  # idempotent: nothing is wrapped twice
    assert isinstance(model[0].linear, nn.Linear)
    names = {n for n, _ in model.named_parameters()}
    assert {"0.gamma", "0.linear.weight", "0.linear.bias", "2.0.gamma"} <= names
    model(torch.randn(5, 4)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    layer = SigmaReparam(_layer(seed=3))
    x = torch.randn(6, 5, dtype=torch.float64)
    layer(x).sum().backward()  # ∂/∂γ Σ x Ŵᵀ = Σ x Wᵀ / σ (σ does not depend on γ)
    w = layer.linear.weight.detach()
    expected = (x @ w.T).sum() / torch.linalg.matrix_norm(w, 2)
    assert float(layer.gamma.grad) == pytest.approx(float(expected), rel=1e-10)
    with pytest.raises(TypeError, match="nn.Linear"):
        SigmaReparam(nn.Conv1d(1, 1, 1))
    with pytest.raises(ValueError, match="gamma_init"):
        SigmaReparam(nn.Linear(2, 2), gamma_init="two")
