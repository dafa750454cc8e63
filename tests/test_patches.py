"""hild.data.patches (the feature-noise patch model) and hild.models.patch_cnn, against exact answers
and binomial tolerances."""

import math

import pytest
import torch

from hild.data.patches import PATCH_KINDS, feature_index, feature_noise_patches, feature_vectors
from hild.models.patch_cnn import PatchCNN, smoothed_leaky_relu

RHO = (0.8, 0.15, 0.05)
GROUPS = {"common": (0,), "rare": (1,), "extremely rare": (2,)}


def binomial_ok(count: int, n: int, p: float, z: float = 5.0) -> bool:
    """|count − np| ≤ z·√(np(1 − p)): a false alarm has probability < 1e-6 at z = 5."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p))


def test_feature_frequencies_match_rho_within_binomial_tolerance():
    n = 20_000
    data = feature_noise_patches(n, d=60, rho=RHO, seed=3)
    for k, p in enumerate(RHO):
        count = int((data.k == k).sum())
        assert binomial_ok(count, n, p), f"feature {k}: {count} of {n}, expected {n * p:.0f}"
    assert binomial_ok(int((data.y > 0).sum()), n, 0.5)
    # the feature patch sits at each of the P positions equally often
    pos = (data.kinds == 0).float().argmax(dim=1)
    for p in range(data.P):
        assert binomial_ok(int((pos == p).sum()), n, 1 / data.P)


def test_patches_are_what_the_model_says():
    d, K, n = 40, 3, 500
    sigma_d, sigma_b, alpha = 0.3, 0.1, 0.2
    data = feature_noise_patches(n, d=d, rho=RHO, P=5, sigma_d=sigma_d, sigma_b=sigma_b, alpha=alpha, seed=1,
                                 dtype=torch.float64, groups=GROUPS)
    V = feature_vectors(K, d, dtype=torch.float64)
    assert sorted(data.kinds[0].tolist()) == [0, 1, 2, 3, 3]
    for i in range(n):
        s = 0 if data.y[i] > 0 else 1
        kinds = data.kinds[i]
        assert torch.equal(data.x[i, kinds == 0][0], V[s, data.k[i]])               # v_{y,k}
        assert torch.equal(data.x[i, kinds == 2][0], alpha * V[1 - s, 0])           # α·v_{−y,1}
    noise = data.x[(data.kinds == 1) | (data.kinds == 3)]
    assert torch.all(noise[:, : 2 * K] == 0), "noise must be orthogonal to every feature"
    for code, sigma in ((1, sigma_d), (3, sigma_b)):
        vals = data.x[data.kinds == code][:, 2 * K :].flatten()
        rel = 5 * math.sqrt(2 / len(vals))  # chi-square: the variance estimate's relative error
        assert abs(float(vals.var()) / sigma**2 - 1) < rel, PATCH_KINDS[code]
    assert int(data.group_of("rare").sum()) == int((data.k == 1).sum())
    assert data.features().shape == (2, K, d)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="sum"):
        feature_noise_patches(10, d=20, rho=(0.5, 0.4))
    with pytest.raises(ValueError, match="at least 3"):
        feature_noise_patches(10, d=20, rho=(1.0,), P=2)
    with pytest.raises(ValueError, match="no room"):
        feature_noise_patches(10, d=6, rho=RHO)
    with pytest.raises(ValueError, match="class"):
        feature_index(0, 0, 3)
    assert feature_index(-1, 2, 3) == 5


def test_smoothed_leaky_relu_values_and_slopes():
    beta, r = 0.1, 2.0
    z = torch.tensor([-1.0, 0.0, 0.5, 2.0, 3.0], dtype=torch.float64)
    expected = [-beta, 0.0, (1 - beta) / (2 * r) * 0.25 + beta * 0.5, r - (1 - beta) * r / 2,
                3.0 - (1 - beta) * r / 2]
    assert torch.allclose(smoothed_leaky_relu(z, beta=beta, r=r), torch.tensor(expected, dtype=torch.float64))
    for point, slope in ((0.0, beta), (r, 1.0)):  # C¹: the slope is continuous at the joints
        for side in (-1e-7, 1e-7):
            t = torch.tensor(point + side, dtype=torch.float64, requires_grad=True)
            smoothed_leaky_relu(t, beta=beta, r=r).backward()
            assert abs(float(t.grad) - slope) < 1e-6


def test_patch_cnn_is_the_sum_over_patches_and_filters():
    torch.manual_seed(0)
    model = PatchCNN(7, 3, beta=0.2, r=0.5, init_std=1.0, dtype=torch.float64)
    x = torch.randn(4, 5, 7, dtype=torch.float64)
    W = model.weight.detach()
    phi = lambda z: smoothed_leaky_relu(z, beta=0.2, r=0.5)  # noqa: E731
    with torch.no_grad():
        out = model(x)
    for b in range(4):
        F = [sum(float(phi(W[s, r] @ x[b, p])) for r in range(3) for p in range(5)) / 3 for s in (0, 1)]
        assert abs(float(out[b]) - (F[0] - F[1])) < 1e-12
    v = torch.randn(7, dtype=torch.float64)
    expected = sum(float(phi(W[1, r] @ v)) for r in range(3)) / 3
    assert abs(float(model.feature_output(v, -1)) - expected) < 1e-12
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(2, 7))
