"""hild.models.ensemble against exact answers.

Each test says which exact answer it uses: the plain NTKMLP the ensemble is built from, the sum of
the members' outputs, the members' own NTKs from hild.ntk (autograd), hand counts of parameters,
and a variance model evaluated exactly.
"""

import math

import numpy as np
import pytest
import torch

from hild import ntk
from hild.models import NTKMLP
from hild.models.ensemble import (CollegialEnsemble, VarianceModel, ensemble_ntk_samples, fit_variance_model,
                                  mlp_parameter_count, primal_optimum)

f64 = torch.float64


def _members(m, sizes=(5, 7, 6, 2), seed=0, **kw):
    torch.manual_seed(seed)
    return [NTKMLP(list(sizes), sigma_w=2**0.5, dtype=f64, **kw) for _ in range(m)]


def _x(n=6, d=5, seed=1):
    return torch.randn(n, d, dtype=f64, generator=torch.Generator().manual_seed(seed))


def test_one_member_is_the_plain_model():
    """m = 1: the same outputs and the same empirical NTK as the NTKMLP it was built from."""
    (net,) = _members(1)
    ens = CollegialEnsemble.from_members([net])
    x = _x()
    torch.testing.assert_close(ens(x), net(x), rtol=0, atol=1e-14)
    torch.testing.assert_close(ntk.empirical_ntk(ens, x), ntk.empirical_ntk(net, x), rtol=0, atol=1e-13)


def test_output_is_the_scaled_sum_of_the_members():
    nets = _members(5)
    ens = CollegialEnsemble.from_members(nets)
    x = _x()
    expected = sum(net(x) for net in nets) / math.sqrt(5)
    torch.testing.assert_close(ens(x), expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(ens.member_outputs(x), torch.stack([net(x) for net in nets]), rtol=0, atol=1e-14)


@pytest.mark.parametrize("sigma_b", [0.0, 0.3])
def test_ensemble_ntk_is_the_mean_of_the_members_ntks(sigma_b):
    """Θ_F = (1/m) Σ_j Θ_j exactly (the members share no parameters), full output kernel included."""
    nets = _members(4, sigma_b=sigma_b)
    ens = CollegialEnsemble.from_members(nets)
    x, x2 = _x(), _x(3, seed=2)
    for a, b in ((x, None), (x, x2)):
        mean = torch.stack([ntk.empirical_ntk(net, a, b) for net in nets]).mean(0)
        torch.testing.assert_close(ntk.empirical_ntk(ens, a, b), mean, rtol=0, atol=1e-13)


def test_member_ntks_are_the_members_own_kernels():
    nets = _members(3, sizes=(5, 8, 1))
    ens = CollegialEnsemble.from_members(nets)
    x, x2 = _x(), _x(4, seed=3)
    own = torch.stack([ntk.empirical_ntk(net, x, x2) for net in nets])
    torch.testing.assert_close(ens.member_ntks(x, x2), own, rtol=0, atol=1e-13)
    torch.testing.assert_close(ens.member_ntks(x, x2).mean(0), ntk.empirical_ntk(ens, x, x2), rtol=0, atol=1e-13)


def test_samples_are_the_kernels_of_ensembles_of_consecutive_members():
    """ensemble_ntk_samples = empirical_ntk of the ensembles made of members 0..m−1, m..2m−1, ... of
    the one stacked draw (same RNG state), i.e. of R independent ensembles."""
    sizes, m, r = [5, 6, 6, 1], 3, 4
    x, x2 = _x(3), _x(2, seed=5)
    torch.manual_seed(7)
    got = ensemble_ntk_samples(sizes, m, r, x, x2, sigma_w=1.3)
    torch.manual_seed(7)
    big = CollegialEnsemble(sizes, m * r, sigma_w=1.3, dtype=f64)
    for i in range(r):
        ens = CollegialEnsemble.from_members([big.member(j) for j in range(i * m, (i + 1) * m)])
        torch.testing.assert_close(got[i], ntk.empirical_ntk(ens, x, x2), rtol=0, atol=1e-13)
    torch.manual_seed(7)
    small_batches = ensemble_ntk_samples(sizes, m, r, x, x2, sigma_w=1.3, max_params=1)  # one ensemble per batch
    assert small_batches.shape == got.shape == (r, 3, 2)


def test_members_round_trip():
    torch.manual_seed(4)
    ens = CollegialEnsemble([5, 6, 6, 1], 3, sigma_w=1.5, sigma_b=0.2, dtype=f64)
    back = CollegialEnsemble.from_members([ens.member(j) for j in range(3)])
    for a, b in zip(ens.parameters(), back.parameters()):
        assert torch.equal(a, b)
    x = _x()
    torch.testing.assert_close(ens.member(1)(x), ens.member_outputs(x)[1], rtol=0, atol=1e-14)


def test_parameter_counts():
    # [8, 64, 64, 64, 1] without biases: 8·64 + 64·64 + 64·64 + 64 = 8768 (the spec's 8.8k)
    assert mlp_parameter_count([8, 64, 64, 64, 1]) == 8768
    assert mlp_parameter_count([8, 16, 16, 16, 1], 16) == 16 * (128 + 256 + 256 + 16) == 10496
    assert mlp_parameter_count([3, 4, 2], bias=True) == 3 * 4 + 4 + 4 * 2 + 2
    assert CollegialEnsemble([8, 16, 16, 16, 1], 16).parameter_count == 10496


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least one member"):
        CollegialEnsemble([3, 4, 1], 0)
    with pytest.raises(ValueError, match="inputs"):
        CollegialEnsemble([3, 4, 1], 2)(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="identical"):
        CollegialEnsemble.from_members([NTKMLP([3, 4, 1]), NTKMLP([3, 5, 1])])


def test_variance_model_fit_recovers_its_constants():
    """Exact model values in, the same α and β out (up to the α grid's spacing)."""
    truth = VarianceModel(alpha=9.6, beta=1.5)
    n = np.array([16, 32, 64, 128, 256])
    fit = fit_variance_model(n, truth(n))
    assert fit.alpha == pytest.approx(9.6, rel=3e-3) and fit.beta == pytest.approx(1.5, rel=3e-3)
    assert truth(64, 4) == pytest.approx(1.5 * math.expm1(9.6 / 64) / 4, rel=1e-14)


def test_primal_optimum_by_hand():
    """Budget 100, members [1, n, 1] (2n parameters each), model β(e^{α/n} − 1)/m with α = 2, β = 1.

    n = 2: m = 25, (e − 1)/25 = 0.0687; n = 5: m = 10, (e^0.4 − 1)/10 = 0.0492; n = 10: m = 5,
    0.0443; n = 50: m = 1, e^0.04 − 1 = 0.0408, the best (m is an integer, so here one wide member
    wins); the brute force below checks every n."""
    model = VarianceModel(alpha=2.0, beta=1.0)
    n, m, v = primal_optimum(100, 1, 1, model)
    brute = min((model(k, 100 // (2 * k)), k) for k in range(1, 51))
    assert (n, m) == (brute[1], 100 // (2 * brute[1])) and v == pytest.approx(brute[0], rel=1e-14)
    n, m, v = primal_optimum(100, 1, 1, model, widths=[2, 5])
    assert (n, m) == (5, 10) and v == pytest.approx(math.expm1(0.4) / 10, rel=1e-14)
    with pytest.raises(ValueError, match="fits"):
        primal_optimum(3, 1, 1, model, widths=[5])
