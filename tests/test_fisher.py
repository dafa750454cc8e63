"""hild.fisher against exact answers.

The exact answers: the Fisher scores of softmax regression written by hand (∇_W log p_c(x) =
(e_c − p(x)) xᵀ), the closed-form Fisher kernel of binary logistic regression, the trace identity
tr K = N · (number of parameters with nonzero Fisher) for an undamped diagonal Fisher on the same
points, eigh of the dense kernel, and Nyström's identity e(x)ᵀ e(z) = rank-k part of K.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from hild import fisher

f64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _softmax_regression(d, c, seed):
    model = nn.Linear(d, c, dtype=f64)
    with torch.no_grad():
        model.weight.copy_(torch.randn(c, d, dtype=f64, generator=_gen(seed)))
        model.bias.copy_(torch.randn(c, dtype=f64, generator=_gen(seed + 1)))
    return model


def test_class_scores_of_softmax_regression_by_hand():
    model = _softmax_regression(4, 3, 0)
    x = torch.randn(5, 4, dtype=f64, generator=_gen(2))
    s = fisher.class_scores(model, x)
    assert s.shape == (5, 3, 3 * 4 + 3)
    p = torch.softmax(model(x), -1).detach()
    eye = torch.eye(3, dtype=f64)
    for n in range(5):
        for c in range(3):
            dlogit = eye[c] - p[n]                                  # ∂ log p_c / ∂ logits
            expected = torch.cat([torch.outer(dlogit, x[n]).reshape(-1), dlogit]) * p[n, c].sqrt()
            torch.testing.assert_close(s[n, c], expected, rtol=1e-12, atol=1e-12)


def test_diagonal_fisher_is_the_mean_of_the_expected_squared_scores():
    model = _softmax_regression(3, 4, 3)
    x = torch.randn(6, 3, dtype=f64, generator=_gen(4))
    s = fisher.class_scores(model, x)
    p = torch.softmax(model(x), -1).detach()
    logp = torch.log_softmax(model(x), -1)
    expected = torch.zeros(sum(q.numel() for q in model.parameters()), dtype=f64)
    for n in range(6):
        for c in range(4):
            g = torch.autograd.grad(logp[n, c], list(model.parameters()), retain_graph=True)
            expected += p[n, c] * torch.cat([t.reshape(-1) for t in g]) ** 2 / 6
    torch.testing.assert_close(fisher.diagonal_fisher(s), expected, rtol=1e-12, atol=1e-14)


def _logistic_closed_form(x, w, z, f_diag):
    """Binary logistic regression p_1 = σ(wᵀx) (no bias): ∇ log p_1 = (1 − p) x, ∇ log p_0 = −p x."""
    px, pz = torch.sigmoid(x @ w), torch.sigmoid(z @ w)
    weight = (px.sqrt()[:, None] * pz.sqrt()[None] * (1 - px)[:, None] * (1 - pz)[None]
              + (1 - px).sqrt()[:, None] * (1 - pz).sqrt()[None] * px[:, None] * pz[None])
    return weight * ((x / f_diag) @ z.T)


def test_fisher_kernel_of_logistic_regression_in_closed_form():
    d = 5
    w = torch.randn(d, dtype=f64, generator=_gen(5))
    model = nn.Linear(d, 2, bias=False, dtype=f64)                  # logits (0, wᵀx): p_1 = σ(wᵀx)
    with torch.no_grad():
        model.weight.copy_(torch.stack([torch.zeros(d, dtype=f64), w]))
    x = torch.randn(7, d, dtype=f64, generator=_gen(6))
    z = torch.randn(3, d, dtype=f64, generator=_gen(7))
    sx, sz = fisher.class_scores(model, x), fisher.class_scores(model, z)
    f_full = fisher.diagonal_fisher(sx)
    # only the second row of the weight matters: its Fisher entries are mean p(1 − p) x_j²
    p = torch.sigmoid(x @ w)
    torch.testing.assert_close(f_full[d:], (p * (1 - p)) @ x**2 / 7, rtol=1e-12, atol=0)
    # the first row's score is (δ_c0 − p_0) x = −(that of the second row): restrict to the second
    phi_x = fisher.fisher_features(sx[:, :, d:], f_full[d:])
    phi_z = fisher.fisher_features(sz[:, :, d:], f_full[d:])
    expected = _logistic_closed_form(x, w, z, f_full[d:])
    torch.testing.assert_close(fisher.kernel(phi_x, phi_z), expected, rtol=1e-12, atol=1e-12)


def test_trace_is_n_times_the_number_of_parameters_with_nonzero_fisher():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(20, 4, dtype=f64, generator=_gen(8))
    x[:, 0] = 0.0                                                   # a dead input: zero Fisher
    s = fisher.class_scores(model, x)
    fd = fisher.diagonal_fisher(s)
    phi = fisher.fisher_features(s, fd)
    nonzero = int((fd > 0).sum())
    assert nonzero == sum(q.numel() for q in model.parameters()) - 6
    assert math.isclose(float(torch.trace(fisher.kernel(phi))), 20 * nonzero, rel_tol=1e-12)
    assert math.isclose(fisher.low_rank(phi, 3).trace, 20 * nonzero, rel_tol=1e-12)


def test_damping_adds_a_fraction_of_the_mean_fisher():
    s = torch.randn(5, 2, 4, dtype=f64, generator=_gen(9))
    fd = fisher.diagonal_fisher(s)
    phi = fisher.fisher_features(s, fd, damping=0.5)
    torch.testing.assert_close(phi, s / (fd + 0.5 * fd.mean()).sqrt(), rtol=1e-14, atol=0)


def _random_phi(n, c, p, seed):
    return torch.randn(n, c, p, dtype=f64, generator=_gen(seed)) * torch.linspace(0.1, 2, p, dtype=f64)


def test_operator_matches_the_dense_kernel():
    phi = _random_phi(30, 3, 8, 10)
    op = fisher.kernel_operator(phi)
    v = torch.randn(30, 4, dtype=f64, generator=_gen(11))
    torch.testing.assert_close(op @ v, fisher.kernel(phi) @ v, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op @ v[:, 0], fisher.kernel(phi) @ v[:, 0], rtol=1e-12, atol=1e-12)


def test_low_rank_matches_eigh():
    phi = _random_phi(60, 4, 12, 12)
    nfk = fisher.low_rank(phi, 10)
    lam, u = torch.linalg.eigh(fisher.kernel(phi))
    lam, u = lam.flip(0)[:10], u.flip(1)[:, :10]
    assert nfk.converged
    np.testing.assert_allclose(nfk.values.numpy(), lam.numpy(), rtol=1e-9)
    # eigenvectors up to sign
    overlaps = (nfk.vectors * u).sum(0).abs()
    torch.testing.assert_close(overlaps, torch.ones(10, dtype=f64), rtol=0, atol=1e-8)
    frac = fisher.trace_fraction(nfk.values, nfk.trace)
    np.testing.assert_allclose(frac, (lam.cumsum(0) / torch.trace(fisher.kernel(phi))).numpy(), rtol=1e-9)


def test_low_rank_features_are_nystrom():
    phi = _random_phi(40, 2, 10, 13)
    test = _random_phi(7, 2, 10, 14)
    nfk = fisher.low_rank(phi, 6)
    lam, u = torch.linalg.eigh(fisher.kernel(phi))
    lam, u = lam.flip(0)[:6], u.flip(1)[:, :6]
    e_train = fisher.low_rank_features(phi, nfk)
    e_test = fisher.low_rank_features(phi, nfk, test)
    # training features: U Λ^(1/2), so E Eᵀ is the best rank-6 approximation of K
    torch.testing.assert_close(e_train @ e_train.T, u @ torch.diag(lam) @ u.T, rtol=1e-9, atol=1e-9)
    # test features: Λ^(-1/2) Uᵀ K(X, x)
    expected = fisher.kernel(test, phi) @ u / lam.sqrt()
    torch.testing.assert_close((e_test @ e_train.T).abs(), (expected @ (u * lam.sqrt()).T).abs(),
                               rtol=1e-9, atol=1e-9)
    # a prefix k uses the top k pairs only
    torch.testing.assert_close(fisher.low_rank_features(phi, nfk, test, k=2), e_test[:, :2])
    with pytest.raises(ValueError, match="between 1 and 6"):
        fisher.low_rank_features(phi, nfk, k=7)
    with pytest.raises(ValueError, match="between 1 and N - 1"):
        fisher.low_rank(phi, 40)


def test_probe_separates_separable_classes():
    g = np.random.default_rng(0)
    x = np.concatenate([g.normal(-3, 1, (40, 2)), g.normal(3, 1, (40, 2))])
    y = np.repeat([0, 1], 40)
    assert fisher.probe_accuracy(x, y, x, y) == 1.0
    assert fisher.probe_accuracy(torch.as_tensor(x), torch.as_tensor(y), -x, y) == 0.0
