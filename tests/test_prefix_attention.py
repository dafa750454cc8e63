"""hild.models.prefix_attention and hild.optim.NormalizedGD: the prefix model, its exact gradient
in the saturated regime, and the equivalence of training W (shared query) and training q = Wp."""

import numpy as np
import pytest
import torch

from hild.models.prefix_attention import PrefixAttention, attend
from hild.optim.normalized_gd import NormalizedGD



@pytest.fixture(autouse=True)
def _float64():
    """The saturated regime needs float64's exponent range; the default is restored after each test."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _data(seed=0, n=4, T=5, d=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, T, d, generator=g), torch.randn(d, generator=g)


def test_forward_is_v_dot_attention_weighted_tokens():
    X, v = _data()
    m = PrefixAttention(v)  # p = 0: uniform attention
    assert torch.allclose(m(X), (X @ v).mean(1))
    p = torch.randn(6, generator=torch.Generator().manual_seed(1))
    W = torch.randn(6, 6, generator=torch.Generator().manual_seed(2))
    m = PrefixAttention(v, p=p, W=W, train=("W",))
    s = torch.softmax(X @ W @ p, dim=1)
    assert torch.allclose(m.attention(X), s)
    assert torch.allclose(m(X), torch.einsum("nt,ntd,d->n", s, X, v))
    Z = torch.randn(4, 6)
    assert torch.allclose(m.scores(X, Z), torch.einsum("ntd,de,ne->nt", X, W, Z))
    assert [n for n, _ in m.named_parameters()] == ["W"]
    with pytest.raises(ValueError, match="train"):
        PrefixAttention(v, train=("v",))
    with pytest.raises(ValueError, match="n, T, 6"):
        m(X[0])


def test_attend_gradient_is_exact_where_the_plain_form_loses_it():
    """Scores with gaps of 50 and more: the attention off the top token is below e^{-50} ≈ 2e-22.

    Reference: ∂f/∂σ_t = s_t Σ_τ s_τ (u_t − u_τ), a sum without cancellation (exact in float64).
    """
    sigma = torch.tensor([[0.0, 60.0, 10.0, -5.0]], requires_grad=True)
    u = torch.tensor([[1.3, -0.7, 2.1, 0.4]])
    s = torch.softmax(sigma.detach(), 1)
    exact = s * ((u[:, :, None] - u[:, None, :]) * s[:, None, :]).sum(-1)
    (g,) = torch.autograd.grad(attend(sigma, u).sum(), sigma)
    torch.testing.assert_close(g, exact, rtol=1e-12, atol=0)
    assert torch.allclose(attend(sigma, u), (torch.softmax(sigma, 1) * u).sum(1))
    (plain,) = torch.autograd.grad((torch.softmax(sigma, 1) * u).sum(), sigma)
    # the plain form computes s_r·(u_r − Σ s_t u_t) with Σ s_t u_t rounded to u_r: the gradient is lost
    assert (plain[0, 1] - exact[0, 1]).abs() >= 0.5 * exact[0, 1].abs()


def test_normalized_gd_takes_steps_of_length_lr_even_for_tiny_gradients():
    a = torch.tensor([3e-200, -4e-200], requires_grad=True)
    b = torch.tensor([0.0], requires_grad=True)
    opt = NormalizedGD([a, b], lr=0.5)
    a.grad, b.grad = torch.tensor([3e-200, 4e-200]), torch.tensor([0.0])
    opt.step()
    torch.testing.assert_close(a.detach(), torch.tensor([3e-200 - 0.3, -4e-200 - 0.4]), rtol=1e-15, atol=0)
    assert opt.last_norm == pytest.approx(5e-200, rel=1e-14)
    a.grad, b.grad = torch.zeros(2), torch.zeros(1)
    before = a.detach().clone()
    opt.step()
    assert torch.equal(a.detach(), before) and opt.last_norm == 0.0
    with pytest.raises(ValueError, match="positive"):
        NormalizedGD([a], lr=0.0)


def test_training_w_with_a_shared_query_is_training_q_equals_wp():
    """∇_W L = (∇_q L) pᵀ, so W_t − W_0 stays in the span of · pᵀ, and with normalised steps q = Wp
    follows normalised GD on q with step lr·‖p‖ (‖g pᵀ‖_F = ‖g‖‖p‖)."""
    X, v = _data(3)
    Y = torch.tensor([1.0, -1.0, 1.0, -1.0])
    p = torch.randn(6, generator=torch.Generator().manual_seed(4))
    W0 = 0.1 * torch.randn(6, 6, generator=torch.Generator().manual_seed(5))
    mW = PrefixAttention(v, p=p, W=W0, train=("W",))
    mq = PrefixAttention(v, p=W0 @ p, train=("p",))  # W = I, trains q directly
    oW, oq = NormalizedGD(mW.parameters(), lr=0.05), NormalizedGD(mq.parameters(), lr=0.05 * float(p.norm()))
    for _ in range(20):
        for m, o in ((mW, oW), (mq, oq)):
            o.zero_grad()
            torch.nn.functional.softplus(-Y * m(X)).mean().backward()
            o.step()
    torch.testing.assert_close(mW.W.detach() @ p, mq.p.detach(), rtol=1e-10, atol=1e-12)
    P_perp = torch.eye(6) - torch.outer(p, p) / (p @ p)
    torch.testing.assert_close((mW.W.detach() - W0) @ P_perp, torch.zeros(6, 6), rtol=0, atol=1e-12)
