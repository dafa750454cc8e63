"""hild.models.representation on hand-made features and weights with known answers."""

import numpy as np
import pytest
import torch

from hild.models import active_units, explained_variance, feature_rank, neuron_collapse, ridge_path


def _features_with_variances(variances, n=50, m=8, seed=0, offset=0.0):
    """n×m features whose centred principal variances are exactly ``variances`` (times n)."""
    rng = np.random.default_rng(seed)
    k = len(variances)
    U, _ = np.linalg.qr(rng.standard_normal((n, k)) - 0.0)
    U = U - U.mean(0)                                    # centre, then re-orthonormalise
    U, _ = np.linalg.qr(U)
    V, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return U @ np.diag(np.sqrt(variances)) @ V.T + offset


def test_feature_rank_counts_components_for_the_variance_fraction():
    F = _features_with_variances([4.0, 3.0, 2.0, 1.0])  # fractions 0.4, 0.7, 0.9, 1.0
    np.testing.assert_allclose(explained_variance(F), [0.4, 0.7, 0.9, 1.0] + [1.0] * 4, atol=1e-12)
    assert [feature_rank(F, f) for f in (0.3, 0.4, 0.41, 0.7, 0.71, 0.9, 0.95, 1.0)] == [1, 1, 2, 2, 3, 3, 4, 4]


def test_feature_rank_of_data_of_known_rank():
    rng = np.random.default_rng(1)
    for r in (1, 3, 7):
        F = rng.standard_normal((40, r)) @ rng.standard_normal((r, 12))
        assert feature_rank(F, 1.0) == r
        assert feature_rank(torch.as_tensor(F), 1.0) == r  # tensors are accepted
    assert feature_rank(np.zeros((5, 3))) == 0


def test_centering_removes_the_mean_direction():
    F = _features_with_variances([2.0, 1.0], offset=3.0)
    assert feature_rank(F, 1.0, center=True) == 2
    assert feature_rank(F, 1.0, center=False) == 3  # the mean is one more direction of the raw second moment


def test_active_units():
    F = np.array([[0.0, 1.0, 0.0, 0.02], [0.0, 0.0, 0.0, -0.01], [0.0, 2.0, 0.0, 0.0]])
    assert active_units(F) == 2 and active_units(F, tol=0.015) == 2 and active_units(F, tol=0.5) == 1


def test_neuron_collapse_on_hand_made_weights():
    W = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.01], [0.0, 2.0], [0.001, 0.0]])
    a = np.array([1.0, 0.0, 1.0, 0.5, 0.0])
    c = neuron_collapse(W, a, tol=0.05)  # largest norm √4.25 ≈ 2.06: tolerance 0.103
    assert (c.width, c.alive, c.vanished, c.duplicates, c.distinct) == (5, 3, 2, 1, 2)
    c = neuron_collapse(W, a, b=np.array([0.0, 0.0, 0.5, 0.0, 0.0]), tol=0.05)  # a bias separates 0 and 2
    assert (c.alive, c.duplicates, c.distinct) == (3, 0, 3)
    same = neuron_collapse(np.ones((4, 3)), np.ones(4))
    assert (same.alive, same.duplicates, same.distinct) == (4, 3, 1)
    zero = neuron_collapse(np.zeros((3, 2)), np.zeros(3))
    assert (zero.alive, zero.vanished, zero.distinct) == (0, 3, 0)


def test_ridge_path_is_the_ridge_solution_for_every_penalty():
    rng = np.random.default_rng(3)
    F, y = rng.standard_normal((30, 8)), rng.standard_normal(30)
    Ft, yt = rng.standard_normal((12, 8)), rng.standard_normal(12)
    lambdas = [1e-3, 0.1, 2.0]
    got = ridge_path(F, y, Ft, yt, lambdas)
    for g, lam in zip(got, lambdas):
        c = np.linalg.solve(F.T @ F + 30 * lam * np.eye(8), F.T @ y)
        assert g == pytest.approx(np.mean((Ft @ c - yt) ** 2), rel=1e-12)
    c0 = np.linalg.lstsq(F, y, rcond=None)[0]  # λ = 0: least squares
    assert ridge_path(F, y, Ft, yt, [0.0])[0] == pytest.approx(np.mean((Ft @ c0 - yt) ** 2), rel=1e-10)
    wide = rng.standard_normal((5, 9))  # more features than points: λ = 0 is the minimum-norm fit
    c_min = np.linalg.pinv(wide) @ y[:5]
    assert ridge_path(wide, y[:5], Ft[:, :1].repeat(9, 1), yt, [0.0])[0] == pytest.approx(
        np.mean((Ft[:, :1].repeat(9, 1) @ c_min - yt) ** 2), rel=1e-10)


def test_errors():
    with pytest.raises(ValueError, match="fraction"):
        feature_rank(np.ones((3, 3)), 1.5)
    with pytest.raises(ValueError, match=r"\(n, m\)"):
        feature_rank(np.ones(3))
