"""The linear transformer and in-context regression data, against exact answers: the papers' weight
construction equals preconditioned GD on the prompt (float64, to rounding), the re-associated layer
equals the matrix expression written out, shapes, and the query's label never leaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hild.data import icl
from hild.data.icl import icl_regression, in_context_loss, least_squares, preconditioned_gd, split_prompts
from hild.models import LinearTransformer, linear_attention


def naive_layer(Z: torch.Tensor, P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """(1/N)(Z Q̃ Zᵀ) M (Z P̃ᵀ), written out with the (d+1) x (d+1) embeddings and the mask."""
    N, d = Z.shape[-2] - 1, Z.shape[-1] - 1
    Pt = torch.zeros(d + 1, d + 1, dtype=Z.dtype)
    Pt[:d, :d], Pt[d, d] = P, 1.0
    Qt = torch.zeros(d + 1, d + 1, dtype=Z.dtype)
    Qt[:d, :d] = Q
    M = torch.eye(N + 1, dtype=Z.dtype)
    M[N, N] = 0.0
    return (Z @ Qt @ Z.transpose(-1, -2)) @ M @ (Z @ Pt.T) / N


def test_shapes_and_prompt_layout():
    Z, y = icl_regression(7, n_context=4, d=3, rng=0, dtype=torch.float64)
    assert Z.shape == (7, 5, 4) and y.shape == (7,)
    X, yc, xq = split_prompts(Z)
    assert X.shape == (7, 4, 3) and yc.shape == (7, 4) and xq.shape == (7, 3)
    assert torch.all(Z[:, -1, -1] == 0), "the query's label slot must be zero"
    # labels are linear in the covariates with one task vector per prompt, the query's included
    w = least_squares(X, yc)
    torch.testing.assert_close(torch.einsum("bnd,bd->bn", X, w), yc, rtol=0, atol=1e-12)
    torch.testing.assert_close((w * xq).sum(-1), y, rtol=0, atol=1e-12)
    model = LinearTransformer(3, n_layers=2, n_heads=3)
    assert model(Z.float()).shape == (7, 5, 4) and model.predict(Z.float()).shape == (7,)
    assert sum(p.numel() for p in model.parameters()) == 2 * 2 * 3 * 3 * 3


def test_layer_is_the_matrix_expression():
    torch.manual_seed(0)
    Z, _ = icl_regression(5, n_context=6, d=4, rng=1, dtype=torch.float64)
    P, Q = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    torch.testing.assert_close(linear_attention(Z, P, Q), naive_layer(Z, P, Q), rtol=1e-13, atol=1e-13)
    model = LinearTransformer(4, n_layers=2, n_heads=2, init_std=0.3, dtype=torch.float64)
    ref = Z
    for layer in range(2):
        ref = ref + sum(naive_layer(ref, model.P[layer, h], model.Q[layer, h]) for h in range(2))
    torch.testing.assert_close(model(Z), ref.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
def test_construction_computes_preconditioned_gd_exactly(n_layers):
    """Q_ℓ = −Γ_ℓ, P_ℓ = 0: the prediction is x_qᵀ w_L for L steps of w ← w − Γ_ℓ ∇R(w), R the prompt's
    least-squares loss (Ahn, Cheng, Daneshmand and Sra, 2023; von Oswald et al., 2023)."""
    g = torch.Generator().manual_seed(n_layers)
    d = 5
    gammas = []
    for _ in range(n_layers):
        A = torch.randn(d, d, generator=g, dtype=torch.float64)
        gammas.append(0.3 * (A @ A.T) / d + 0.1 * torch.randn(d, d, generator=g, dtype=torch.float64))
    Z, _ = icl_regression(64, n_context=20, d=d, rng=n_layers, dtype=torch.float64)
    model = LinearTransformer.from_preconditioned_gd(gammas)
    pred = model.predict(Z).detach()
    ref = preconditioned_gd(Z, gammas)
    torch.testing.assert_close(pred, ref, rtol=1e-12, atol=1e-12)
    # and by hand for one step, plain GD (Γ = η I): ŷ = η x_qᵀ (1/N) Σ x_i y_i
    if n_layers == 1:
        eta = 0.7
        X, yc, xq = split_prompts(Z)
        by_hand = eta * (xq * torch.einsum("bnd,bn->bd", X, yc)).sum(-1) / 20
        one = LinearTransformer.from_preconditioned_gd([eta * torch.eye(d, dtype=torch.float64)])
        torch.testing.assert_close(one.predict(Z).detach(), by_hand, rtol=1e-13, atol=1e-13)


def test_newton_preconditioner_gives_least_squares():
    """With Γ = (X̂ᵀX̂/N)⁻¹ one step is Newton's method: the least-squares prediction exactly."""
    Z, _ = icl_regression(3, n_context=12, d=4, rng=5, dtype=torch.float64, noise=0.5)
    X, yc, xq = split_prompts(Z)
    w_ls = least_squares(X, yc)
    for b in range(3):
        Gamma = torch.linalg.inv(X[b].T @ X[b] / 12)
        pred = preconditioned_gd(Z[b : b + 1], [Gamma])
        torch.testing.assert_close(pred[0], xq[b] @ w_ls[b], rtol=1e-10, atol=1e-10)


def test_query_label_never_leaks():
    """The prediction depends on the context and the query's covariates, not on the query's label:
    the generator never writes it into Z, and the mask keeps the query out of every key/value, so no
    context token's output depends on the query token at all."""
    torch.manual_seed(0)
    model = LinearTransformer(5, n_layers=3, init_std=0.3, dtype=torch.float64)
    Z, y = icl_regression(16, rng=3, dtype=torch.float64)
    Z2, y2 = icl_regression(16, rng=3, dtype=torch.float64, noise=1.0)  # same draws, other labels
    torch.testing.assert_close(Z2[:, -1], Z[:, -1])                         # the query row is the same
    assert not torch.allclose(y, y2)
    Zq = Z.clone()
    Zq[:, -1, :-1] = torch.randn(16, 5, dtype=torch.float64)               # change the query token
    out, outq = model(Z), model(Zq)
    torch.testing.assert_close(outq[:, :-1], out[:, :-1], rtol=0, atol=0)  # context rows: unchanged
    # a value written into the query's label slot is carried by the residual stream only:
    # the prediction shifts by exactly that value, and nothing else changes
    Zl = Z.clone()
    Zl[:, -1, -1] = 3.0
    torch.testing.assert_close(model.predict(Zl), model.predict(Z) - 3.0, rtol=0, atol=1e-12)
    torch.testing.assert_close(model(Zl)[:, :-1], out[:, :-1], rtol=0, atol=0)


def test_covariates():
    rng = np.random.default_rng(0)
    Zg, _ = icl_regression(4000, n_context=1, d=5, rng=rng, dtype=torch.float64)
    Zs, _ = icl_regression(4000, n_context=1, d=5, covariates="sphere", rng=rng, dtype=torch.float64)
    Zh, _ = icl_regression(20000, n_context=1, d=5, covariates="heavy", rng=rng, dtype=torch.float64)
    norms2 = lambda Z: (Z[:, 0, :-1] ** 2).sum(-1)  # noqa: E731
    torch.testing.assert_close(norms2(Zs), torch.ones(4000, dtype=torch.float64))
    assert abs(float(norms2(Zg).mean()) - 5) < 0.15                          # E‖x‖² = d
    # heavy: ‖x‖² ~ Gamma(k, √(2d/k)), mean √(2dk) = 1 for d = 5, k = 0.1
    assert abs(float(norms2(Zh).mean()) - 1) < 0.1
    # k = d/2 is the Gaussian case exactly: ‖x‖² ~ Gamma(d/2, 2) = χ²_d
    Zk, _ = icl_regression(20000, n_context=1, d=5, covariates="heavy", shape_k=2.5, rng=rng,
                           dtype=torch.float64)
    assert abs(float(norms2(Zk).var()) - 10) < 0.6                            # Var χ²_5 = 10
    with pytest.raises(ValueError, match="covariates must be one of"):
        icl_regression(2, covariates="cauchy")


def test_loss_and_least_squares():
    model = LinearTransformer.from_preconditioned_gd([torch.eye(3, dtype=torch.float64)])
    Z, y = icl_regression(10, n_context=8, d=3, rng=2, dtype=torch.float64)
    loss = in_context_loss(model, (Z, y))
    assert float(loss.detach()) == pytest.approx(float(((preconditioned_gd(Z, [torch.eye(3)]) - y) ** 2).mean()), rel=1e-12)
    # underdetermined: the minimum-norm interpolant
    X = torch.randn(2, 5, dtype=torch.float64)
    t = torch.randn(2, dtype=torch.float64)
    w = least_squares(X, t)
    torch.testing.assert_close(X @ w, t, rtol=0, atol=1e-12)
    torch.testing.assert_close(w, X.T @ torch.linalg.solve(X @ X.T, t), rtol=0, atol=1e-12)
    assert "heavy" in icl.COVARIATES
