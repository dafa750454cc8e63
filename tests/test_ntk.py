"""hild.ntk and hild.models.ntk against exact answers.

Each test says which exact answer it uses: a Jacobian written by hand, an autograd loop, Gaussian
quadrature, the matrix exponential (scipy), explicit iteration of the update, and the measured
1/√width law of the analytic kernel.
"""

import copy
import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from hild import ntk
from hild.models import MLP, NTKLinear, NTKMLP, NTKRNN

f64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _psd(n, seed, rank=None):
    a = torch.randn(n, rank or n, dtype=f64, generator=_gen(seed))
    return a @ a.T / (rank or n)


# ------------------------------------------------------------------ NTK-parameterised layers


def test_ntk_linear_is_the_scaled_product():
    torch.manual_seed(0)
    layer = NTKLinear(7, 3, sigma_w=2.0, sigma_b=0.5, dtype=f64)
    x = torch.randn(4, 7, dtype=f64)
    expected = x @ layer.weight.T * 2.0 / math.sqrt(7) + 0.5 * layer.bias
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-14)
    assert isinstance(layer, nn.Linear) and NTKLinear(3, 2).bias is None  # σ_b = 0: no bias


def test_ntk_mlp_layers_and_scales():
    net = NTKMLP([5, 16, 16, 2], sigma_w=[1.0, 2**0.5, 3.0], sigma_b=0.1, dtype=f64)
    assert [type(m).__name__ for m in net] == ["NTKLinear", "ReLU", "NTKLinear", "ReLU", "NTKLinear"]
    assert [m.sigma_w for m in net.linears] == [1.0, 2**0.5, 3.0]
    assert net(torch.zeros(3, 5, dtype=f64)).shape == (3, 2)
    with pytest.raises(ValueError, match="one value per layer"):
        NTKMLP([5, 16, 2], sigma_w=[1.0])


# ------------------------------------------------------------------ Jacobians and the empirical NTK


class TinyTanh(nn.Module):
    """f(x) = vᵀ tanh(W x) + c, whose Jacobian is written by hand below."""

    def __init__(self):
        super().__init__()
        g = _gen(1)
        self.W = nn.Parameter(torch.randn(3, 2, dtype=f64, generator=g))
        self.v = nn.Parameter(torch.randn(3, dtype=f64, generator=g))
        self.c = nn.Parameter(torch.tensor(0.3, dtype=f64))

    def forward(self, x):
        return torch.tanh(x @ self.W.T) @ self.v + self.c


def test_empirical_ntk_equals_hand_written_jacobian_product():
    model = TinyTanh()
    x = torch.randn(5, 2, dtype=f64, generator=_gen(2))
    with torch.no_grad():
        h = torch.tanh(x @ model.W.T)                                  # (N, 3)
        dW = (model.v * (1 - h**2))[:, :, None] * x[:, None, :]        # ∂f/∂W_ij = v_i (1 − h_i²) x_j
        J = torch.cat([dW.reshape(5, -1), h, torch.ones(5, 1, dtype=f64)], dim=1)
    K = ntk.empirical_ntk(model, x)
    assert K.shape == (5, 5)
    torch.testing.assert_close(K, J @ J.T, rtol=0, atol=1e-13)
    torch.testing.assert_close(ntk.jacobian(model, x)[:, 0], J, rtol=0, atol=1e-14)


def _loop_jacobian(model, x):
    """The straightforward reference: one autograd.grad per example and output."""
    params = [p for p in model.parameters()]
    rows = []
    for xi in x:
        out = model(xi[None]).reshape(-1)
        rows.append(torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(o, params, retain_graph=True)])
                                 for o in out]))
    return torch.stack(rows)  # (N, O, P)


def test_full_and_mean_kernels_of_a_vector_output_model():
    torch.manual_seed(3)
    model = MLP([4, 6, 3], activation="tanh", dtype=f64)
    x1 = torch.randn(5, 4, dtype=f64)
    x2 = torch.randn(3, 4, dtype=f64)
    J1, J2 = _loop_jacobian(model, x1), _loop_jacobian(model, x2)
    full = ntk.empirical_ntk(model, x1, x2)
    torch.testing.assert_close(full, torch.einsum("aop,bqp->aboq", J1, J2), rtol=0, atol=1e-13)
    mean = ntk.empirical_ntk(model, x1, x2, output="mean")
    torch.testing.assert_close(mean, torch.einsum("aop,bop->ab", J1, J2) / 3, rtol=0, atol=1e-13)
    sub = ntk.empirical_ntk(model, x1, x2, params=["2.weight"], output="mean")  # last layer only
    h1, h2 = model.features(x1), model.features(x2)
    torch.testing.assert_close(sub, (h1 @ h2.T).detach(), rtol=0, atol=1e-13)


def test_blocked_kernel_equals_the_one_shot_kernel(monkeypatch):
    torch.manual_seed(4)
    model = MLP([4, 8, 2], dtype=f64)
    x1, x2 = torch.randn(11, 4, dtype=f64), torch.randn(6, 4, dtype=f64)
    calls = []
    real = ntk._jac_chunk
    monkeypatch.setattr(ntk, "_jac_chunk", lambda m, p, x: calls.append(len(x)) or real(m, p, x))
    one_shot = ntk.empirical_ntk(model, x1)
    n_one_shot = len(calls)
    # a budget that holds a few examples' Jacobians but not all of them: the block path
    budget = 11 * 11 * 4 * 8 * 2 + 3 * 3.0 * 58 * 2 * 8 * 2.5
    blocked = ntk.empirical_ntk(model, x1, max_memory=budget)
    assert len(calls) - n_one_shot > math.ceil(11 / 3), "the small budget should force the block path"
    torch.testing.assert_close(blocked, one_shot, rtol=0, atol=1e-14)
    torch.testing.assert_close(ntk.empirical_ntk(model, x1, x2, max_memory=budget),
                               ntk.empirical_ntk(model, x1, x2), rtol=0, atol=1e-14)


def test_per_example_grads_equal_an_autograd_loop():
    torch.manual_seed(5)
    model = MLP([4, 5, 3], activation="tanh", dtype=f64)
    x, y = torch.randn(6, 4, dtype=f64), torch.randint(0, 3, (6,))
    g = ntk.per_example_grads(model, x, y, loss=F.cross_entropy, chunk_size=4)
    for i in range(6):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        ref = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        torch.testing.assert_close(g[i], ref, rtol=0, atol=1e-14)
    scalar = MLP([4, 5, 1], dtype=f64)
    torch.testing.assert_close(ntk.per_example_grads(scalar, x), _loop_jacobian(scalar, x)[:, 0], rtol=0, atol=1e-14)


# ------------------------------------------------------------------ analytic kernels


def test_relu_expectations_match_numerical_integration():
    from scipy import integrate, stats

    s11, s22, s12 = 1.7, 0.6, -0.4
    cov = np.array([[s11, s12], [s12, s22]])
    prec, norm = np.linalg.inv(cov), 1 / (2 * np.pi * np.sqrt(np.linalg.det(cov)))
    density = lambda u, v: norm * np.exp(-0.5 * (prec[0, 0] * u * u + 2 * prec[0, 1] * u * v + prec[1, 1] * v * v))  # noqa: E731
    e1 = integrate.dblquad(lambda v, u: u * v * density(u, v), 0, 12, 0, 12, epsabs=1e-11)[0]
    e0 = stats.multivariate_normal(mean=[0, 0], cov=cov).cdf([0, 0])  # P(u < 0, v < 0) = P(u > 0, v > 0)
    k1, k0 = ntk.relu_expectations(*(torch.tensor(s, dtype=f64) for s in (s11, s22, s12)))
    assert k1.item() == pytest.approx(e1, abs=1e-8) and k0.item() == pytest.approx(e0, abs=1e-6)
    d1, d0 = ntk.relu_expectations(*(torch.tensor(s, dtype=f64) for s in (2.0, 2.0, 2.0)))
    assert d1.item() == pytest.approx(1.0, abs=1e-12) and d0.item() == pytest.approx(0.5, abs=1e-12)


def test_two_layer_ntk_formula():
    # f = aᵀrelu(Wx/√d)/√m: Θ = k1 + (xᵀx'/d)·k0 (the form the ntk-universality chapter uses)
    x = torch.randn(6, 3, dtype=f64, generator=_gen(6))
    s = x @ x.T / 3
    k1, k0 = ntk.relu_expectations(s.diag()[:, None], s.diag()[None, :], s)
    kern = ntk.relu_kernels(x, depth=1)
    torch.testing.assert_close(kern.ntk, k1 + s * k0, rtol=0, atol=1e-14)
    torch.testing.assert_close(kern.nngp, k1, rtol=0, atol=1e-14)


def test_analytic_ntk_matches_wide_mlp_with_error_falling_like_one_over_sqrt_width():
    x = torch.randn(8, 5, dtype=f64, generator=_gen(7))
    kw = dict(sigma_w=2**0.5, sigma_b=0.3)
    analytic = ntk.relu_kernels(x, depth=2, **kw).ntk
    widths = [32, 64, 128, 256, 512]
    errors = []
    for n in widths:
        e = []
        for s in range(8):
            torch.manual_seed(s)
            net = NTKMLP([5, n, n, 1], dtype=f64, **kw)
            e.append(((ntk.empirical_ntk(net, x) - analytic).norm() / analytic.norm()).item())
        errors.append(math.sqrt(np.mean(np.square(e))))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.7 <= slope <= -0.3, f"error ∝ width^{slope:.2f}, expected about width^-0.5 ({errors})"
    assert errors[-1] < 0.2, f"relative error at width 512 is {errors[-1]:.3f}"


def test_rnn_is_shared_weights_and_its_analytic_ntk_matches_wide_rnns():
    torch.manual_seed(15)
    rnn = NTKRNN(2, 8, 3, sigma_w=1.3, dtype=f64)
    x = torch.randn(5, 4, 2, dtype=f64)
    s = torch.zeros(5, 8, dtype=f64)
    for t in range(4):  # the recursion written out, one W for every step
        s = torch.relu(s @ rnn.rec.weight.T * 1.3 / math.sqrt(8) + x[:, t] @ rnn.inp.weight.T / math.sqrt(2))
    torch.testing.assert_close(rnn(x), s @ rnn.out.weight.T / math.sqrt(8), rtol=0, atol=1e-14)
    kw = dict(sigma_w=1.2, sigma_u=0.9, sigma_v=1.1)
    xs = torch.randn(6, 4, 2, dtype=f64, generator=_gen(16))
    analytic = ntk.relu_rnn_kernels(xs, **kw).ntk
    widths, errors = [32, 64, 128, 256], []
    for n in widths:
        e = []
        for s in range(6):
            torch.manual_seed(s)
            e.append(((ntk.empirical_ntk(NTKRNN(2, n, dtype=f64, **kw), xs) - analytic).norm() / analytic.norm()).item())
        errors.append(math.sqrt(np.mean(np.square(e))))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.75 <= slope <= -0.3, f"RNN kernel error ∝ width^{slope:.2f}, expected about width^-0.5 ({errors})"
    assert errors[-1] < 0.25


def test_nngp_is_the_output_covariance_at_init():
    # one hidden layer: E[f(x)f(x')] = NNGP exactly at any width; 100,000 nets of width 8 at once
    x = torch.randn(4, 3, dtype=f64, generator=_gen(8))
    nngp = ntk.relu_kernels(x, depth=1, sigma_w=1.5, sigma_b=0.2).nngp
    torch.manual_seed(8)
    reps, n = 100_000, 8
    W = torch.randn(reps, n, 3, dtype=f64)
    b1, a, b2 = torch.randn(reps, n, 1, dtype=f64), torch.randn(reps, n, dtype=f64), torch.randn(reps, 1, dtype=f64)
    h = torch.relu(1.5 / math.sqrt(3) * W @ x.T + 0.2 * b1)            # (reps, n, N)
    f = 1.5 / math.sqrt(n) * torch.einsum("rn,rnk->rk", a, h) + 0.2 * b2
    cov = f.T @ f / reps
    assert ((cov - nngp).norm() / nngp.norm()).item() < 0.03  # Monte-Carlo error about 0.01


# ------------------------------------------------------------------ dynamics


def _problem(n=6, m=4, o=2, seed=9):
    big = _psd(n + m, seed)
    return big[:n, :n], big[n:, :n], torch.randn(n, o, dtype=f64, generator=_gen(seed + 1)), \
        torch.randn(n, o, dtype=f64, generator=_gen(seed + 2)), torch.randn(m, o, dtype=f64, generator=_gen(seed + 3))


@pytest.mark.parametrize("singular", [False, True])
def test_kernel_flow_matches_the_matrix_exponential(singular):
    K, Ks, y, f0, f0s = _problem()
    if singular:  # a rank-3 kernel: the flow's zero modes never move
        K = _psd(6, 11, rank=3)
    times = [0.0, 0.3, 2.0, 10.0]
    pred = ntk.kernel_flow(K, y, times, k_test=Ks, f0=f0, f0_test=f0s)
    Kn, Ksn, r0 = K.numpy(), Ks.numpy(), (f0 - y).numpy()
    for i, t in enumerate(times):
        # ∫₀ᵗ e^{−Ks} ds is the top-right block of expm([[−K, I], [0, 0]] t)
        block = scipy.linalg.expm(np.block([[-Kn, np.eye(6)], [np.zeros((6, 6)), np.zeros((6, 6))]]) * t)
        train = y.numpy() + block[:6, :6] @ r0
        test = f0s.numpy() - Ksn @ block[:6, 6:] @ r0
        np.testing.assert_allclose(pred.train[i].numpy(), train, atol=1e-10)
        np.testing.assert_allclose(pred.test[i].numpy(), test, atol=1e-10)


def test_kernel_gd_matches_explicit_iteration_and_regression_is_the_limit():
    K, Ks, y, f0, f0s = _problem()
    lr = 1.0 / torch.linalg.eigvalsh(K).max().item()
    pred = ntk.kernel_gd(K, y, [0, 1, 7, 40], lr=lr, k_test=Ks, f0=f0, f0_test=f0s)
    f, fs = f0.clone(), f0s.clone()
    for k in range(41):
        if k in (0, 1, 7, 40):
            i = [0, 1, 7, 40].index(k)
            torch.testing.assert_close(pred.train[i], f, rtol=0, atol=1e-12)
            torch.testing.assert_close(pred.test[i], fs, rtol=0, atol=1e-12)
        f, fs = f - lr * K @ (f - y), fs - lr * Ks @ (f - y)
    limit = ntk.kernel_regression(K, y, Ks, f0=f0, f0_test=f0s)
    torch.testing.assert_close(ntk.kernel_flow(K, y, 1e4, k_test=Ks, f0=f0, f0_test=f0s).test[0], limit,
                               rtol=0, atol=1e-9)
    torch.testing.assert_close(limit, f0s + Ks @ torch.linalg.solve(K, y - f0), rtol=0, atol=1e-10)


def test_gd_on_the_linearized_model_is_kernel_gd_with_the_initial_ntk():
    torch.manual_seed(12)
    net = NTKMLP([3, 32, 2], activation="tanh", dtype=f64)
    x, y = torch.randn(7, 3, dtype=f64), torch.randn(7, 2, dtype=f64)
    xs = torch.randn(4, 3, dtype=f64)
    K, Ks = ntk.empirical_ntk(net, x), ntk.empirical_ntk(net, xs, x)  # (N, N', 2, 2)
    with torch.no_grad():
        f0, f0s = net(x), net(xs)
    lin = ntk.linearize(net)
    opt = torch.optim.SGD(lin.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        (0.5 * ((lin(x) - y) ** 2).sum()).backward()  # the loss ½ Σ ‖f − y‖²
        opt.step()
    # the full (N·O) x (N·O) kernel, since the outputs of a finite net are coupled
    flat = lambda k: k.permute(0, 2, 1, 3).reshape(k.shape[0] * 2, k.shape[1] * 2)  # noqa: E731
    pred = ntk.kernel_gd(flat(K), y.reshape(-1), 20, lr=0.05, k_test=flat(Ks), f0=f0.reshape(-1),
                         f0_test=f0s.reshape(-1))
    with torch.no_grad():
        torch.testing.assert_close(lin(x).reshape(-1), pred.train[0, :, 0], rtol=0, atol=1e-10)
        torch.testing.assert_close(lin(xs).reshape(-1), pred.test[0, :, 0], rtol=0, atol=1e-10)


def test_train_centred_on_the_linearized_model_is_kernel_gd_for_every_alpha():
    torch.manual_seed(14)
    net = NTKMLP([2, 24, 1], activation="tanh", dtype=f64)
    x, y, xs = torch.randn(6, 2, dtype=f64), torch.randn(6, dtype=f64), torch.randn(3, 2, dtype=f64)
    K, Ks = ntk.empirical_ntk(net, x), ntk.empirical_ntk(net, xs, x)
    pred = ntk.kernel_gd(K, y, [0, 5, 10, 12], lr=0.1, k_test=Ks)
    for alpha in (1.0, 30.0):
        run = ntk.train_centred(ntk.linearize(net), x, y, lr=0.1, steps=12, alpha=alpha, x_test=xs, every=5)
        assert run.steps.tolist() == [0, 5, 10, 12]
        torch.testing.assert_close(run.train, pred.train, rtol=0, atol=1e-11)
        torch.testing.assert_close(run.test, pred.test, rtol=0, atol=1e-11)
    lazy = ntk.train_centred(copy.deepcopy(net), x, y, lr=0.1, steps=12, alpha=1e4)  # the real net, α → ∞
    torch.testing.assert_close(lazy.train[-1], pred.train[-1], rtol=0, atol=1e-3)


def test_train_bottleneck_is_gd_on_a_network_whose_first_part_is_linear_in_its_weights():
    # g(x) = Φ(x)A/√p is linear in A with NTK Θ_g = ΦΦᵀ/p per output: the function-space update of
    # z = g(x) must equal GD on A exactly, for the composed model head(Φ A/√p)
    torch.manual_seed(17)
    m, n, p, d = 7, 5, 12, 3
    phi, y = torch.randn(m, p, dtype=f64), torch.randn(n, 2, dtype=f64)
    A = torch.randn(p, d, dtype=f64, requires_grad=True)
    head = NTKMLP([d, 16, 2], activation="tanh", dtype=f64)
    run = ntk.train_bottleneck(copy.deepcopy(head), (phi @ A / math.sqrt(p)).detach(), phi @ phi[:n].T / p, y,
                               lr=0.1, steps=15, every=5)
    with torch.no_grad():
        out0 = head(phi @ A / math.sqrt(p))
    opt = torch.optim.SGD([A, *head.parameters()], lr=0.1)
    for _ in range(15):
        opt.zero_grad()
        (0.5 * ((head(phi[:n] @ A / math.sqrt(p)) - out0[:n] - y) ** 2).sum()).backward()
        opt.step()
    with torch.no_grad():
        torch.testing.assert_close(run.z[-1], phi @ A / math.sqrt(p), rtol=0, atol=1e-12)
        torch.testing.assert_close(run.outputs[-1], head(phi @ A / math.sqrt(p)) - out0, rtol=0, atol=1e-12)
    assert run.steps.tolist() == [0, 5, 10, 15] and run.loss[-1] < run.loss[0]


def test_linearized_model_agrees_with_the_model_to_second_order_in_the_step():
    torch.manual_seed(13)
    net = NTKMLP([3, 16, 16, 1], dtype=f64, sigma_b=0.5)
    x, y = torch.randn(10, 3, dtype=f64), torch.randn(10, 1, dtype=f64)
    lin = ntk.linearize(net)
    with torch.no_grad():
        torch.testing.assert_close(lin(x), net(x), rtol=0, atol=1e-14)  # equal at θ₀
    gaps = []
    for lr in (1e-2, 1e-3):
        models = [copy.deepcopy(net), ntk.linearize(net)]  # both at θ₀
        for m in models:
            opt = torch.optim.SGD(m.parameters(), lr=lr)
            opt.zero_grad()
            F.mse_loss(m(x), y).backward()
            opt.step()
        with torch.no_grad():
            gaps.append((models[0](x) - models[1](x)).abs().max().item())
    ratio = gaps[0] / gaps[1]
    assert 80 < ratio < 120, f"one step of size 10x larger should change the gap 100x (O(lr²)), got {ratio:.1f}"


# ------------------------------------------------------------------ bad input


def test_batchnorm_in_train_mode_is_refused():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"BatchNorm in train mode.*model\.eval\(\)"):
        ntk.empirical_ntk(net, x)
    with pytest.raises(ValueError, match="BatchNorm"):
        ntk.linearize(net)
    assert ntk.empirical_ntk(net.eval(), x).shape == (5, 5)
    with pytest.raises(ValueError, match="Dropout"):
        ntk.jacobian(nn.Sequential(nn.Linear(3, 1), nn.Dropout(0.5)), x)


def test_a_kernel_that_does_not_fit_says_how_to_chunk_it():
    net = MLP([3, 4, 10])
    x = torch.randn(100, 3)
    with pytest.raises(ValueError, match=r"needs .* GiB.*output='mean'.*row blocks.*x1\[i:i \+ \d+\]"):
        ntk.empirical_ntk(net, x, max_memory=100 * 100 * 100 * 4)
    with pytest.raises(ValueError, match=r"chunk_size <= \d+"):
        ntk.empirical_ntk(net, x, output="mean", chunk_size=100, max_memory=2e5)
    with pytest.raises(ValueError, match="one example's Jacobian"):
        ntk.empirical_ntk(net, x[:2], output="mean", max_memory=2e3)
    with pytest.raises(ValueError, match="not parameters of the model"):
        ntk.empirical_ntk(net, x, params=["nope"])
    with pytest.raises(ValueError, match="square"):
        ntk.kernel_flow(torch.zeros(3, 4), torch.zeros(3), 1.0)
