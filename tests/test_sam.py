"""hild.optim.SAM against its two-step definition on a quadratic, where every step is closed form:
w ← w − lr·A(w + ε) with ε = ρ·Aw/‖Aw‖ (normalised) or ε = ρ·Aw (unnormalised)."""

import numpy as np
import pytest
import torch

from hild.optim import SAM


def _quadratic(seed=0, d=5):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d, d))
    return M @ M.T / d + np.eye(d), rng.standard_normal(d)


def _closure(w, A, calls=None):
    def closure():
        if calls is not None:
            calls.append(1)
        loss = 0.5 * w @ A @ w
        loss.backward()
        return loss
    return closure


@pytest.mark.parametrize("normalize", [True, False])
def test_sam_is_its_two_step_definition(normalize):
    A, w0 = _quadratic()
    lr, rho = 0.1, 0.3
    w = torch.tensor(w0, requires_grad=True)
    opt = SAM([w], torch.optim.SGD, rho=rho, normalize=normalize, lr=lr)
    ref = w0.copy()
    for _ in range(4):
        g = A @ ref
        eps = rho * g / np.linalg.norm(g) if normalize else rho * g
        before = 0.5 * ref @ A @ ref
        ref = ref - lr * A @ (ref + eps)
        loss = opt.step(_closure(w, torch.as_tensor(A)))
        assert loss.item() == pytest.approx(before, rel=1e-13)  # the loss at w, before the step
    np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-13, atol=1e-15)


def test_norm_is_over_all_parameters_together():
    A, w0 = _quadratic(1, d=4)
    u = torch.tensor(w0[:2], requires_grad=True)
    v = torch.tensor(w0[2:], requires_grad=True)
    At = torch.as_tensor(A)
    opt = SAM([u, v], torch.optim.SGD, rho=0.5, lr=0.2)

    def closure():
        w = torch.cat([u, v])
        loss = 0.5 * w @ At @ w
        loss.backward()
        return loss

    opt.step(closure)
    g = A @ w0
    ref = w0 - 0.2 * A @ (w0 + 0.5 * g / np.linalg.norm(g))
    np.testing.assert_allclose(torch.cat([u, v]).detach().numpy(), ref, rtol=1e-13)


def test_rho_zero_is_the_base_optimizer_with_one_gradient():
    A, w0 = _quadratic(2)
    w = torch.tensor(w0, requires_grad=True)
    calls: list = []
    opt = SAM([w], torch.optim.SGD, rho=0.0, lr=0.1, momentum=0.9)
    w_ref = torch.tensor(w0, requires_grad=True)
    ref = torch.optim.SGD([w_ref], lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.step(_closure(w, torch.as_tensor(A), calls))
        ref.zero_grad()
        _closure(w_ref, torch.as_tensor(A))()
        ref.step()
    assert len(calls) == 3
    assert torch.equal(w, w_ref)


def test_momentum_base_uses_the_perturbed_gradient():
    A, w0 = _quadratic(3)
    lr, mom, rho = 0.05, 0.9, 0.2
    w = torch.tensor(w0, requires_grad=True)
    opt = SAM([w], torch.optim.SGD, rho=rho, lr=lr, momentum=mom)
    ref, buf = w0.copy(), None
    for _ in range(3):
        g = A @ ref
        g_sam = A @ (ref + rho * g / np.linalg.norm(g))
        buf = g_sam if buf is None else mom * buf + g_sam
        ref = ref - lr * buf
        opt.step(_closure(w, torch.as_tensor(A)))
    np.testing.assert_allclose(w.detach().numpy(), ref, rtol=1e-12)


def test_switching_sam_off_per_group_and_errors():
    A, w0 = _quadratic(4)
    w = torch.tensor(w0, requires_grad=True)
    opt = SAM([w], torch.optim.SGD, rho=0.3, lr=0.1)
    opt.param_groups[0]["rho"] = 0.0
    opt.step(_closure(w, torch.as_tensor(A)))
    np.testing.assert_allclose(w.detach().numpy(), w0 - 0.1 * A @ w0, rtol=1e-13)
    with pytest.raises(ValueError, match="closure"):
        opt.step()
    with pytest.raises(ValueError, match="non-negative"):
        SAM([w], rho=-1.0, lr=0.1)
