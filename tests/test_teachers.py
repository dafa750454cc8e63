"""hild.data.teachers: exact properties of the generated teachers and inputs."""

import numpy as np
import pytest

from hild.data import gaussian_inputs, single_index, sphere, teacher_network
from hild.data.teachers import LINKS, SingleIndex


def test_spiked_inputs_scale_only_the_spike_direction():
    d, kappa = 6, 3.0
    u = np.eye(d)[2]
    G = gaussian_inputs(7, d, rng=np.random.default_rng(0))
    X = gaussian_inputs(7, d, rng=np.random.default_rng(0), spike=kappa, direction=u)
    np.testing.assert_allclose(X @ u, np.sqrt(1 + kappa) * (G @ u), rtol=1e-14)
    P = np.eye(d) - np.outer(u, u)
    np.testing.assert_allclose(X @ P, G @ P, atol=1e-14)


def test_single_index_target_and_alignment():
    rng = np.random.default_rng(1)
    t = single_index(8, link="tanh", gain=2.0, spike=4.0, alignment=0.6, rng=rng)
    assert np.linalg.norm(t.beta) == pytest.approx(1.0)
    assert t.beta @ t.spike_direction == pytest.approx(0.6)
    assert np.linalg.norm(t.spike_direction) == pytest.approx(1.0)
    assert t.z_std == pytest.approx(np.sqrt(1 + 4.0 * 0.36))
    X = rng.standard_normal((5, 8))
    np.testing.assert_allclose(t.target(X), np.tanh(2.0 * (X @ t.beta) / t.z_std), rtol=1e-14)
    X, y = t.sample(20000, rng=rng)
    z = X @ t.beta / t.z_std
    assert abs(z.std() - 1.0) < 0.02  # standardised projection


def test_hermite_links_have_no_linear_part():
    z = np.polynomial.hermite_e.hermegauss(40)
    nodes, weights = z[0], z[1] / np.sqrt(2 * np.pi)  # Gauss-Hermite quadrature for N(0, 1)
    for name in ("he2", "he3"):
        g = LINKS[name](nodes)
        assert abs(weights @ (g * nodes)) < 1e-12          # E[g(z) z] = 0
        assert weights @ g**2 == pytest.approx(1.0)        # unit variance


def test_teacher_network_and_sphere():
    rng = np.random.default_rng(2)
    net = teacher_network(3, 4, rng=rng)
    np.testing.assert_allclose(np.linalg.norm(net.W, axis=1), 1.0)
    assert set(np.abs(net.a)) == {1.0} and net.b is not None and net.c is not None
    tanh = teacher_network(5, 2, activation="tanh", bias=False, signs=False, rng=rng)
    assert np.array_equal(tanh.a, np.ones(2)) and tanh.b is None and tanh.c is None
    np.testing.assert_allclose(np.linalg.norm(sphere(10, 3, rng=rng), axis=1), 1.0)


def test_errors():
    with pytest.raises(ValueError, match="unit vector"):
        SingleIndex(np.ones(3))
    with pytest.raises(ValueError, match="link"):
        SingleIndex(np.eye(3)[0], link="sin")
    with pytest.raises(ValueError, match="alignment"):
        single_index(3, alignment=2.0, rng=np.random.default_rng(0))
