"""hild.optim.sgmcmc: samplers against a Gaussian posterior in closed form; the expanded layer.

Exact answers: Bayesian linear regression's posterior N(m, S), S = (XᵀX/σ² + I/τ²)⁻¹,
m = S Xᵀy/σ²; a layer with W = P V Q (and bias P b) against the plain linear layer.
"""

import numpy as np
import pytest
import torch

from hild import models
from hild.optim import SGHMC, SGLD, ExpandedLinear, expand_linears
from hild.optim.sgmcmc import linear_regression_posterior


def _regression(seed=0, n=20):
    """Orthogonal columns with XᵀX = n·diag(1, 0.6): the posterior precision is diag(81, 49)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, 2)))
    X = Q * np.sqrt(n * np.array([1.0, 0.6]))
    y = X @ np.array([0.7, -1.2]) + 0.5 * rng.standard_normal(n)
    return X, y


def _sample(make_opt, X, y, *, chains=2000, burn=800, keep=800, every=20, seed=0):
    """Run `chains` independent chains at once (the energy is a sum over chains); return samples."""
    torch.manual_seed(seed)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    theta = torch.zeros(chains, X.shape[1], dtype=torch.float64, requires_grad=True)
    opt = make_opt([theta])
    out = []
    for t in range(burn + keep):
        opt.zero_grad()
        resid = yt - theta @ Xt.T  # (chains, n)
        U = (resid**2).sum() / (2 * 0.25) + (theta**2).sum() / (2 * 1.0)  # σ² = 0.25, τ² = 1
        U.backward()
        opt.step()
        if t >= burn and (t - burn) % every == 0:
            out.append(theta.detach().clone())
    return torch.cat(out).numpy()


@pytest.mark.parametrize("name", ["sgld", "sghmc"])
def test_sampler_matches_the_gaussian_posterior(name):
    X, y = _regression()
    mean, cov = linear_regression_posterior(X, y, prior_var=1.0, noise_var=0.25)
    lam_max = np.linalg.eigvalsh(np.linalg.inv(cov)).max()
    if name == "sgld":  # the step's bias on the variance is about ε·λ/2: keep it near 1%
        make = lambda p: SGLD(p, lr=0.02 / lam_max)  # noqa: E731
    else:
        make = lambda p: SGHMC(p, lr=0.1 / np.sqrt(lam_max), friction=3.0 * np.sqrt(lam_max))  # noqa: E731
    samples = _sample(make, X, y)
    assert np.all(np.abs(samples.mean(0) - mean) < 0.05 * np.sqrt(np.diag(cov)))
    scale = np.sqrt(np.diag(cov)).max() ** 2
    assert np.allclose(np.cov(samples.T), cov, rtol=0.05, atol=0.03 * scale)


def test_posterior_formula_on_a_conjugate_example():
    X = np.array([[1.0], [1.0], [1.0]])  # three observations of one number
    m, S = linear_regression_posterior(X, np.array([1.0, 2.0, 3.0]), prior_var=1.0, noise_var=1.0)
    assert S[0, 0] == pytest.approx(1 / 4) and m[0] == pytest.approx(6 / 4)


def test_zero_temperature_sgld_is_gradient_descent():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = SGLD([w], lr=0.1, temperature=0.0)
    (w**2).sum().backward()
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([0.8, -1.6]))


def test_expanded_layer_computes_the_plain_function():
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 3, dtype=torch.float64)
    ex = ExpandedLinear(lin)
    x = torch.randn(7, 5, dtype=torch.float64)
    assert torch.allclose(ex(x), lin(x))  # P = Q = I at the start
    with torch.no_grad():  # any P, V, Q: the layer is the plain layer with W = PVQ, b = Pb
        for p in (ex.P, ex.V, ex.Q, ex.bias):
            p.copy_(torch.randn_like(p))
    W = ex.P @ ex.V @ ex.Q
    assert torch.allclose(ex(x), torch.nn.functional.linear(x, W, ex.P @ ex.bias))
    assert ex.P.shape == (3, 3) and ex.Q.shape == (5, 5) and len(ex.expansion_parameters()) == 2


def test_expanding_a_model_keeps_its_function_and_adds_square_factors():
    torch.manual_seed(1)
    model = models.MLP([6, 8, 4], activation="tanh", dtype=torch.float64)
    x = torch.randn(10, 6, dtype=torch.float64)
    before = model(x)
    n_before = sum(p.numel() for p in model.parameters())
    expand_linears(model)
    assert torch.allclose(model(x), before)
    assert sum(p.numel() for p in model.parameters()) == n_before + (6**2 + 8**2) + (8**2 + 4**2)
    only_out = expand_linears(models.MLP([6, 8, 4]), expand_in=False)
    assert all(m.Q is None and m.P is not None for m in only_out.modules() if isinstance(m, ExpandedLinear))


def test_gradient_on_factors_is_a_preconditioned_step():
    """To first order a step on (P, V, Q) moves W by −ε[(PV)(PV)ᵀG + PPᵀGQᵀQ + G(VQ)ᵀ(VQ)]."""
    torch.manual_seed(2)
    ex = ExpandedLinear(torch.nn.Linear(4, 3, dtype=torch.float64))
    with torch.no_grad():
        ex.P.add_(0.1 * torch.randn(3, 3, dtype=torch.float64))
        ex.Q.add_(0.1 * torch.randn(4, 4, dtype=torch.float64))
    G = torch.randn(3, 4, dtype=torch.float64)
    W0 = ex.effective()[0].detach()
    (ex.effective()[0] * G).sum().backward()  # U = ⟨W, G⟩, so ∂U/∂W = G
    eps = 1e-6
    with torch.no_grad():
        P, V, Q = ex.P.clone(), ex.V.clone(), ex.Q.clone()
        for p in (ex.P, ex.V, ex.Q):
            p.sub_(eps * p.grad)
        dW = (ex.effective()[0] - W0) / eps
    predicted = -((P @ V) @ (P @ V).T @ G + P @ P.T @ G @ Q.T @ Q + G @ (V @ Q).T @ (V @ Q))
    assert torch.allclose(dW, predicted, atol=1e-4)


def test_bad_input():
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        SGLD([w], lr=0.0)
    with pytest.raises(ValueError, match="flip sign"):
        SGHMC([w], lr=0.5, friction=4.0)
