"""hild.optim.streaming_pca and hild.data.groups against exact answers.

Exact answers: the fair PCA solution by eigendecomposition of PΣP (P projects out the unfair
subspace, itself an eigendecomposition of the known moments); principal angles of known
subspaces; the state's size, which must not depend on how long the stream runs.
"""

import numpy as np
import pytest

from hild.data import TwoGroupGaussian, two_group_gaussian
from hild.optim import fair_noisy_power_method, fair_pca, noisy_power_method, principal_angles
from hild.optim import streaming_pca as sp


def _spiked(d=12, p=0.4):
    """Two groups with clear eigengaps: Σ's top eigenvalues 8.8, 5, 2.6; PΣP's 5, 4.25, 2.6."""
    base = np.diag(np.concatenate([[8.0, 5.0, 1.0], np.full(d - 3, 0.5)]))
    u = np.zeros(d)
    u[[0, 3]] = 1 / np.sqrt(2)  # the mean gap mixes a top direction with a weak one
    mu1 = 1.5 * u
    gap = np.zeros((d, d))
    gap[2, 2] = 4.0  # group 1 has extra variance along e₃ (the covariance gap)
    return TwoGroupGaussian(mu0=mu1 * p / (p - 1), mu1=mu1, Sigma0=base, Sigma1=base + gap, p=p)


def _last(gen):
    """Run a streaming generator to its end; return its final state."""
    final = None
    for final in gen:  # noqa: B007 (the loop variable is the result)
        pass
    return final


def test_moments_of_the_distribution():
    dist = two_group_gaussian(8, r=4, seed=0)
    assert np.allclose(dist.mean, 0, atol=1e-12)
    x, s = dist.sample(200_000, np.random.default_rng(0))
    assert abs(s.mean() - dist.p) < 0.01
    assert np.allclose(np.cov(x.T), dist.covariance, atol=0.03)
    assert np.allclose(x[s == 1].mean(0) - x[s == 0].mean(0), dist.mean_gap, atol=0.03)
    assert np.linalg.matrix_rank(dist.covariance_gap, tol=1e-9) == 4


def test_fair_solution_is_an_eigendecomposition():
    dist = _spiked()
    N = sp.unfair_subspace(dist.mean_gap)
    V, vals = fair_pca(dist.covariance, N, 2)
    P = np.eye(dist.d) - N @ N.T
    assert np.allclose(P @ dist.covariance @ P @ V, V * vals)
    assert sp.mean_gap(V, dist.mean_gap) < 1e-12
    plain, _ = fair_pca(dist.covariance, None, 2)
    assert sp.explained_variance_ratio(plain, dist.covariance) == pytest.approx(1.0)
    assert sp.explained_variance_ratio(V, dist.covariance) < 1.0
    none, _ = fair_pca(dist.covariance, N, 2, tradeoff=0.0)  # λ = 0: no projection, plain PCA
    assert np.allclose(principal_angles(none, plain), 0, atol=1e-6)


def test_principal_angles_of_known_subspaces():
    e = np.eye(4)
    assert np.allclose(principal_angles(e[:, :2], e[:, [1, 0]]), 0, atol=1e-7)
    assert np.allclose(principal_angles(e[:, :2], e[:, 2:]), np.pi / 2)
    tilted = np.column_stack([e[:, 0], np.cos(0.3) * e[:, 1] + np.sin(0.3) * e[:, 2]])
    assert np.allclose(principal_angles(e[:, :2], tilted), [0, 0.3], atol=1e-7)


def test_noisy_power_method_finds_the_top_eigenvectors():
    dist = _spiked()
    state = _last(noisy_power_method(dist.stream(500, np.random.default_rng(1)), 2, blocks=40,
                                     block_size=2000, d=dist.d, seed=0))
    top, _ = fair_pca(dist.covariance, None, 2)
    assert principal_angles(state.V, top).max() < np.radians(3)


@pytest.mark.parametrize("mode,rank", [("mean", 0), ("all", 1)])
def test_fnpm_reaches_the_exact_fair_solution(mode, rank):
    dist = _spiked()
    N = sp.unfair_subspace(dist.mean_gap, dist.second_moment_gap, rank)
    exact, _ = fair_pca(dist.covariance, N, 2)
    state = _last(fair_noisy_power_method(dist.stream(1000, np.random.default_rng(2)), 2, d=dist.d,
                                          gap_blocks=10, gap_block_size=10_000, blocks=40, block_size=2000,
                                          mode=mode, rank=rank, seed=0))
    assert principal_angles(state.N, N).max() < np.radians(3)
    assert principal_angles(state.V, exact).max() < np.radians(3)
    assert sp.mean_gap(state.V, dist.mean_gap) < 0.05
    if mode == "all":  # the covariance gap's direction e₃ is in the unfair subspace, and removed
        assert abs(np.linalg.norm(state.N.T @ np.eye(dist.d)[2]) - 1) < 0.01
        assert sp.covariance_gap(state.V, dist.covariance_gap) < 0.05


def test_memory_does_not_grow_with_the_stream():
    dist = two_group_gaussian(30, r=4, seed=0)
    sizes = {}
    for blocks in (20, 200):
        states = fair_noisy_power_method(dist.stream(100, np.random.default_rng(0)), 3, d=30, gap_blocks=5,
                                         gap_block_size=100, blocks=blocks, block_size=100, mode="all", rank=4)
        sizes[blocks] = [st.nbytes for st in states]
    assert len(set(sizes[20] + sizes[200])) == 1
    # V, its accumulator, N (f and W), the group means and counts, W and its two accumulators
    d, k, r = 30, 3, 4
    assert sizes[20][0] == 8 * (2 * d * k + d * (r + 1) + 2 * d + 2 + d * r + 2 * d * r)


def test_chunking_of_the_stream_does_not_matter():
    dist = two_group_gaussian(10, r=2, seed=3)
    x, s = dist.sample(7000, np.random.default_rng(0))

    def chunks(m):
        return ((x[i : i + m], s[i : i + m]) for i in range(0, len(x), m))

    runs = [_last(fair_noisy_power_method(chunks(m), 2, d=10, gap_blocks=3, gap_block_size=500, blocks=5,
                                          block_size=1000, mode="all", rank=2)) for m in (7, 500, 1300)]
    for r in runs[1:]:
        assert np.allclose(r.V, runs[0].V, atol=1e-10) and np.allclose(r.N, runs[0].N, atol=1e-10)
        assert r.samples == runs[0].samples == 6500


def test_bad_input():
    dist = two_group_gaussian(6, r=2, seed=0)
    with pytest.raises(ValueError, match="unknown mode"):
        next(fair_noisy_power_method(dist.stream(10, np.random.default_rng(0)), 2, d=6, gap_blocks=1,
                                     gap_block_size=10, blocks=1, block_size=10, mode="cov"))
    with pytest.raises(ValueError, match="ended"):
        _last(noisy_power_method(iter([dist.sample(5, np.random.default_rng(0))]), 2, blocks=2, block_size=5, d=6))
    with pytest.raises(ValueError, match="shape"):
        next(noisy_power_method(iter([(np.zeros((3, 5)), np.zeros(3))]), 2, blocks=1, block_size=3, d=6))
    with pytest.raises(ValueError, match="p must be"):
        TwoGroupGaussian(mu0=np.zeros(2), mu1=np.zeros(2), Sigma0=np.eye(2), Sigma1=np.eye(2), p=1.0)
