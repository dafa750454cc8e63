"""hild.models.attention: entropy on hand-made maps, Theorem 3.1's bound, the attention layer."""

import math

import numpy as np
import pytest
import torch

from hild.models import SoftmaxAttention, attention_entropy, entropy_lower_bound, head_entropy
from hild.models.attention import extremal_logits, qk_spectral_norms


def test_entropy_of_uniform_one_hot_and_causal_maps():
    T = 8
    uniform = torch.full((2, 3, T, T), 1.0 / T, dtype=torch.float64)
    np.testing.assert_allclose(head_entropy(uniform), [math.log(T)] * 3, rtol=1e-12)
    one_hot = torch.eye(T, dtype=torch.float64).expand(2, 3, T, T)
    np.testing.assert_allclose(head_entropy(one_hot), [0.0] * 3, atol=0)
    # causal uniform: row i spreads over i + 1 keys, so the mean is mean_i log(i + 1)
    causal = torch.tril(torch.ones(T, T, dtype=torch.float64))
    causal = (causal / causal.sum(-1, keepdim=True)).expand(1, 1, T, T)
    expected = sum(math.log(i + 1) for i in range(T)) / T
    np.testing.assert_allclose(head_entropy(causal), [expected], rtol=1e-12)
    # a two-point row [p, 1 − p]
    p = 0.3
    np.testing.assert_allclose(attention_entropy(torch.tensor([p, 1 - p], dtype=torch.float64)),
                               -(p * math.log(p) + (1 - p) * math.log(1 - p)), rtol=1e-12)
    with pytest.raises(ValueError, match="B, H, T, T"):
        head_entropy(uniform[0])


def test_bound_limits_and_the_extremal_row_attains_it():
    T = 10
    assert entropy_lower_bound(0.0, T) == pytest.approx(math.log(T), rel=1e-12)  # zero logits: uniform
    assert entropy_lower_bound(200.0, T) < 1e-60
    s = np.linspace(0, 30, 61)
    assert np.all(np.diff(entropy_lower_bound(s, T)) < 0)  # strictly decreasing in σ
    for norm in (0.1, 1.0, 3.0, 10.0):
        a = extremal_logits(T, norm)
        assert float(a.norm()) == pytest.approx(norm, rel=1e-12)
        got = float(attention_entropy(torch.softmax(a, 0)))
        assert got == pytest.approx(float(entropy_lower_bound(norm, T)), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("seed", range(5))
def test_bound_is_never_violated_on_random_logit_matrices(seed):
    """Ent(A_i) ≥ bound(σ(W)·‖XXᵀ‖₂, T) for every row, over scales from tiny to huge."""
    g = torch.Generator().manual_seed(seed)
    for scale in (0.01, 0.3, 1.0, 3.0, 10.0):
        T, d, dh = int(torch.randint(2, 20, (1,), generator=g)), 6, 3
        X = torch.randn(T, d, generator=g, dtype=torch.float64)
        W = scale * torch.randn(d, dh, generator=g, dtype=torch.float64) @ torch.randn(dh, d, generator=g,
                                                                                       dtype=torch.float64)
        A = torch.softmax(X @ W @ X.T, dim=-1)
        sigma = torch.linalg.matrix_norm(W, 2) * torch.linalg.matrix_norm(X @ X.T, 2)
        bound = entropy_lower_bound(float(sigma), T)
        assert torch.all(attention_entropy(A) >= bound - 1e-12)


def test_qk_spectral_norms_of_a_fused_weight():
    C, H = 6, 2
    dh = C // H
    w = torch.zeros(3 * C, C, dtype=torch.float64)
    # head 0: W_Q,0 = 2·[I 0], W_K,0 = [I 0] → W_Q,0ᵀ W_K,0 has norm 2; head 1: all-ones 3x3 blocks
    w[:dh, :dh] = 2 * torch.eye(dh)
    w[C:C + dh, :dh] = torch.eye(dh)
    w[dh:C, dh:] = 1.0
    w[C + dh:2 * C, dh:] = 1.0
    # head 1: Qᵀ K = ones(3,3)ᵀ ones(3,3) = 3·ones(3,3), spectral norm 9
    np.testing.assert_allclose(qk_spectral_norms(w, H), [2 / math.sqrt(dh), 9 / math.sqrt(dh)], rtol=1e-12)
    with pytest.raises(ValueError, match="3C, C"):
        qk_spectral_norms(w[:C], H)


def test_softmax_attention_layer():
    torch.manual_seed(0)
    X = torch.randn(4, 5, 3, dtype=torch.float64)
    m = SoftmaxAttention(3, init_std=0.0, dtype=torch.float64)
    # zero logits: every query averages all tokens
    assert torch.allclose(m(X), X.mean(1, keepdim=True).expand_as(X))
    d = SoftmaxAttention(3, diagonal=True, init_std=1.0, dtype=torch.float64)
    assert torch.allclose(d.logit_matrix(), torch.diag(d.w_q * d.w_k))
    v = SoftmaxAttention(3, learn_values=True, init_std=0.5, dtype=torch.float64)
    A = v.attention(X)
    assert torch.allclose(A.sum(-1), torch.ones(4, 5, dtype=torch.float64))
    assert torch.allclose(v(X), A @ X @ v.w_v)
    with pytest.raises(ValueError, match="must be"):
        m(X[0])
