"""hild.models.hypernet against exact answers.

Each test says which exact answer it uses: a per-example loop over explicit weight matrices, the
empirical NTK by autograd (hild.ntk), the ordinary ReLU kernels of hild.ntk, a hyperkernel formula
written out by hand for one hidden layer each, and the measured convergence of the empirical NTK.
"""

import math

import pytest
import torch

from hild import ntk
from hild.models.hypernet import Hypernetwork, hyperkernel, primary_correlated_ntk

f64 = torch.float64


def _inputs(n, d, seed):
    return torch.randn(n, d, dtype=f64, generator=torch.Generator().manual_seed(seed))


def test_forward_is_the_primary_network_with_the_meta_networks_weights():
    """A per-example loop: W¹ (n_g x d_z), W² (n_g x n_g), w³ (1 x n_g) read off f(x) in order."""
    torch.manual_seed(0)
    net = Hypernetwork(3, 2, 5, 4, primary_depth=2, primary_sigma=1.3, dtype=f64)
    xz = _inputs(6, 5, 1)
    out = net(xz)
    for i in range(6):
        w = net.meta(xz[i:i + 1, :3])[0]
        W1, W2, w3 = w[:8].reshape(4, 2), w[8:24].reshape(4, 4), w[24:].reshape(1, 4)
        h = torch.relu(1.3 / math.sqrt(2) * W1 @ xz[i, 3:])
        h = torch.relu(1.3 / math.sqrt(4) * W2 @ h)
        torch.testing.assert_close(out[i], 1.3 / math.sqrt(4) * w3 @ h, rtol=0, atol=1e-14)
    assert net.n_primary == 8 + 16 + 4 and net.meta.sizes == (3, 5, 28)


@pytest.mark.parametrize("meta_depth,primary_depth", [(1, 1), (2, 1), (1, 3), (3, 2)])
def test_closed_form_ntk_equals_autograd(meta_depth, primary_depth):
    """Hypernetwork.ntk (per-layer closed form) vs hild.ntk.empirical_ntk (torch.func Jacobians)."""
    torch.manual_seed(meta_depth + 10 * primary_depth)
    net = Hypernetwork(3, 2, 7, 5, meta_depth=meta_depth, primary_depth=primary_depth, meta_sigma=1.2,
                       primary_sigma=0.9, dtype=f64)
    xz, xz2 = _inputs(6, 5, 2), _inputs(4, 5, 3)
    for a, b in ((xz, None), (xz, xz2)):
        auto = ntk.empirical_ntk(net, a, b)
        torch.testing.assert_close(net.ntk(a, b), auto, rtol=0, atol=1e-13 * float(auto.abs().max()))


def test_closed_form_ntk_with_meta_biases():
    torch.manual_seed(5)
    net = Hypernetwork(3, 2, 6, 4, meta_depth=2, dtype=f64)
    for lin in net.meta.linears:  # give the meta layers biases: σ_b b added to each layer
        lin.sigma_b = 0.4
        lin.bias = torch.nn.Parameter(torch.randn(lin.out_features, dtype=f64))
    xz = _inputs(5, 5, 6)
    torch.testing.assert_close(net.ntk(xz), ntk.empirical_ntk(net, xz), rtol=0, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_uncorrelated_weights_give_the_ordinary_relu_kernels(depth):
    """With Σ^f ≡ 1 the primary recursion is hild.ntk.relu_kernels of g."""
    z1, z2 = _inputs(5, 3, 7), _inputs(4, 3, 8)
    ones = torch.ones(5, 4, dtype=f64)
    got = primary_correlated_ntk(z1, z2, ones, torch.ones(5, dtype=f64), torch.ones(4, dtype=f64), depth=depth,
                                 sigma=1.4)
    ref = ntk.relu_kernels(z1, z2, depth=depth, sigma_w=1.4)
    torch.testing.assert_close(got.ntk, ref.ntk, rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(got.nngp, ref.nngp, rtol=1e-13, atol=1e-14)


def test_hyperkernel_by_hand_for_one_hidden_layer_each():
    """Θ^h = Θ^f(x,x')·[k1(q) + Σ^f(x,x')·(zᵀz'/d_z)·k0(q)], q = Σ^f·zᵀz'/d_z (σ = 1), written out.

    Σ^f(x,x') = k1 of the inputs x (arc-cosine, degree 1) and Θ^f = k1 + (xᵀx'/d_x)·k0 for f."""
    x1, z1, x2, z2 = _inputs(5, 4, 9), _inputs(5, 3, 10), _inputs(3, 4, 11), _inputs(3, 3, 12)

    def arccos(s11, s22, s12):
        norm = torch.sqrt(s11 * s22)
        cos = (s12 / norm).clamp(-1, 1)
        phi = torch.arccos(cos)
        return norm * (torch.sin(phi) + (math.pi - phi) * cos) / (2 * math.pi), (math.pi - phi) / (2 * math.pi)

    sx1, sx2 = (x1 * x1).sum(1)[:, None] / 4, (x2 * x2).sum(1)[None, :] / 4
    k1f, k0f = arccos(sx1, sx2, x1 @ x2.T / 4)
    sigma_f, theta_f = k1f, k1f + x1 @ x2.T / 4 * k0f
    diag1, diag2 = sx1 / 2, sx2 / 2  # Σ^f(x, x) = ‖x‖²/(2 d_x)
    f0 = z1 @ z2.T / 3
    q11, q22 = diag1 * (z1 * z1).sum(1)[:, None] / 3, diag2 * (z2 * z2).sum(1)[None, :] / 3
    k1, k0 = arccos(q11, q22, sigma_f * f0)
    expected = theta_f * (k1 + sigma_f * f0 * k0)
    got = hyperkernel(x1, z1, x2, z2)
    torch.testing.assert_close(got.ntk, expected, rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(got.nngp, sigma_f * k1, rtol=1e-13, atol=1e-14)
    # the model's own method agrees with the function
    net = Hypernetwork(4, 3, 2, 2, dtype=f64)
    torch.testing.assert_close(net.hyperkernel(net.join(x1, z1), net.join(x2, z2)).ntk, expected, rtol=1e-13,
                               atol=1e-14)


def test_empirical_ntk_approaches_the_hyperkernel_and_not_the_naive_product():
    """Measured: at n_f = n_g = 1024 the empirical NTK is within 20% of the hyperkernel (RMS of two
    initialisations) and more than 25% away from Θ^f·Θ^g with independent primary weights."""
    x, z = _inputs(10, 4, 13), _inputs(10, 4, 14)
    xz = torch.cat([x, z], 1)
    theory = hyperkernel(x, z).ntk
    naive = ntk.relu_ntk(x, depth=1) * ntk.relu_ntk(z, depth=1)
    errs, naive_errs = [], []
    for r in range(2):
        torch.manual_seed(100 + r)
        k = Hypernetwork(4, 4, 1024, 1024, dtype=f64).ntk(xz)
        errs.append(float((k - theory).norm() / theory.norm()))
        naive_errs.append(float((k - naive).norm() / naive.norm()))
    rms = math.sqrt(sum(e * e for e in errs) / 2)
    assert rms < 0.2, errs
    assert min(naive_errs) > 0.25, naive_errs


def test_bad_inputs_are_refused():
    net = Hypernetwork(3, 2, 4, 4)
    with pytest.raises(ValueError, match="cat"):
        net(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="both"):
        hyperkernel(torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="positive"):
        Hypernetwork(3, 2, 0, 4)
