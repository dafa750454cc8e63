"""hild.models.two_layer: closed-form gradients against autograd, the one-step update of W in
closed form, and SGD / SAM steps against torch's SGD and hild.optim.SAM."""

import numpy as np
import pytest
import torch

from hild.models.two_layer import TwoLayer, train_sgd
from hild.optim import SAM


def _net(activation="tanh", bias=True, seed=0, d=4, m=6, scale=0.7):
    rng = np.random.default_rng(seed)
    return TwoLayer.gaussian(d, m, activation=activation, w_std=0.8, a_std=0.5, b_std=0.3 if bias else None,
                             c_std=0.2 if bias else None, scale=scale, rng=rng)


def _data(seed=1, n=9, d=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal(n)


def _torch_params(net):
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in net.params.items()}


def _torch_forward(net, p, X):
    act = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda z: z}[net.activation]
    Z = torch.as_tensor(X) @ p["W"].T + (p["b"] if "b" in p else 0.0)
    out = net.scale * act(Z) @ p["a"]
    return out + p["c"] if "c" in p else out


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_match_autograd(activation, bias):
    net, (X, y) = _net(activation, bias), _data()
    p = _torch_params(net)
    loss = torch.nn.functional.mse_loss(_torch_forward(net, p, X), torch.as_tensor(y))
    loss.backward()
    assert net.loss(X, y) == pytest.approx(loss.item(), rel=1e-12)
    for name, g in net.gradients(X, y).items():
        np.testing.assert_allclose(g, p[name].grad.numpy(), rtol=1e-10, atol=1e-13)


def test_one_step_update_of_W_equals_its_closed_form():
    """Ba et al.'s step: W₁ = W₀ − η (2s/n) [(r aᵀ) ⊙ σ′(XW₀ᵀ)]ᵀ X with r = f(X) − y, a frozen."""
    rng = np.random.default_rng(3)
    d, N, n, eta = 5, 7, 11, 2.5
    W0 = rng.standard_normal((N, d)) / np.sqrt(d)
    a = rng.choice([-1.0, 1.0], N) / np.sqrt(N)
    net = TwoLayer(W0, a, activation="tanh", scale=1 / np.sqrt(N))
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    r = np.tanh(X @ W0.T) @ a / np.sqrt(N) - y
    closed = W0 - eta * (2 / (n * np.sqrt(N))) * ((r[:, None] * a[None, :]) * (1 - np.tanh(X @ W0.T) ** 2)).T @ X
    run = train_sgd(net, X, y, lr=eta, steps=1, params=("W",))
    np.testing.assert_allclose(run.net.W, closed, rtol=1e-12, atol=1e-14)
    assert np.array_equal(run.net.a, a) and np.array_equal(net.W, W0)  # a frozen, input untouched


def test_linear_network_gradient_is_exactly_rank_one():
    rng = np.random.default_rng(4)
    net = TwoLayer(rng.standard_normal((6, 5)), rng.standard_normal(6), activation="linear", scale=0.5)
    X, y = rng.standard_normal((10, 5)), rng.standard_normal(10)
    r = net(X) - y
    G = net.gradients(X, y)["W"]
    np.testing.assert_allclose(G, 0.5 * (2 / 10) * np.outer(net.a, X.T @ r), rtol=1e-12, atol=1e-14)
    s = np.linalg.svd(G, compute_uv=False)
    assert s[1] <= 1e-12 * s[0]


def test_gd_matches_torch_sgd_for_several_steps():
    net, (X, y) = _net("tanh"), _data()
    p = _torch_params(net)
    opt = torch.optim.SGD(p.values(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.mse_loss(_torch_forward(net, p, X), torch.as_tensor(y)).backward()
        opt.step()
    run = train_sgd(net, X, y, lr=0.1, steps=5)
    for k, v in run.net.params.items():
        np.testing.assert_allclose(v, p[k].detach().numpy(), rtol=1e-11, atol=1e-13)
    assert list(run.history.steps) == [0, 5] and not run.diverged


@pytest.mark.parametrize("normalize", [True, False])
def test_sam_step_matches_hild_optim_sam(normalize):
    net, (X, y) = _net("relu"), _data(n=8)
    p = _torch_params(net)
    opt = SAM(p.values(), torch.optim.SGD, rho=0.3, normalize=normalize, lr=0.05)
    run = train_sgd(net, X, y, lr=0.05, steps=3, batch_size=2, rho=0.3, normalize=normalize, seed=7)
    order = np.random.default_rng(7).permutation(8)[:6].reshape(3, 2)  # epoch-wise reshuffling
    for idx in order:
        def closure():
            loss = torch.nn.functional.mse_loss(_torch_forward(net, p, X[idx]), torch.as_tensor(y[idx]))
            loss.backward()
            return loss
        opt.step(closure)
    for k, v in run.net.params.items():
        np.testing.assert_allclose(v, p[k].detach().numpy(), rtol=1e-11, atol=1e-13)


def test_sam_switches_off_after_sam_steps():
    net, (X, y) = _net("tanh"), _data()
    a = train_sgd(net, X, y, lr=0.05, steps=4, rho=0.2, sam_steps=2)
    b = train_sgd(train_sgd(net, X, y, lr=0.05, steps=2, rho=0.2).net, X, y, lr=0.05, steps=2)
    for k in net.params:
        np.testing.assert_allclose(a.net.params[k], b.net.params[k], rtol=1e-13, atol=1e-15)


def test_records_and_divergence():
    net, (X, y) = _net("tanh"), _data()
    run = train_sgd(net, X, y, lr=0.01, steps=10, record_every=4, record=lambda n: {"w": float(n.W[0, 0])})
    assert list(run.history.steps) == [0, 4, 8, 10] and len(run.history["w"]) == 4
    blown = train_sgd(TwoLayer([[1.0]], [1.0], activation="linear"), [[10.0]], [0.0], lr=1.0, steps=50,
                      record_every=1)
    assert blown.diverged and blown.history.steps[-1] < 50


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown activation"):
        TwoLayer([[1.0]], [1.0], activation="gelu")
    with pytest.raises(ValueError, match="one entry per row"):
        TwoLayer(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="batch_size"):
        train_sgd(_net(), *_data(), lr=0.1, steps=1, batch_size=0)
    with pytest.raises(ValueError, match="no parameter"):
        _net(bias=False).gradients(*_data(), params=("b",))
