"""hild.optim.att_svm: hard-margin SVMs solved exactly, against hand-derived solutions and KKT."""

import numpy as np
import pytest

from hild.optim.att_svm import (att_svm_constraints, directional_cosine, locally_optimal, max_margin,
                                optimal_tokens, solve_att_svm, token_scores)


def test_one_sequence_of_two_tokens_matches_the_hand_derived_solution():
    """One constraint (x₁ − x₂)ᵀp ≥ 1: the shortest p is (x₁ − x₂)/‖x₁ − x₂‖², margin 1/‖p‖ = ‖x₁ − x₂‖."""
    x1, x2 = np.array([2.0, 1.0, -1.0]), np.array([0.5, -1.0, 1.0])
    X = np.stack([x1, x2])[None]                      # n = 1, T = 2, d = 3
    v, Y = np.array([1.0, 0.0, 0.0]), np.array([1.0])  # scores 2 and 0.5: token 0 is optimal
    opt = optimal_tokens(X, Y, v)
    assert opt.tolist() == [0]
    sol = solve_att_svm(X, opt)
    a = x1 - x2
    np.testing.assert_allclose(sol.w, a / (a @ a), rtol=1e-12)
    assert sol.margin == pytest.approx(np.linalg.norm(a), rel=1e-12)
    np.testing.assert_allclose(sol.alpha, [1 / (a @ a)], rtol=1e-12)  # w = α a
    assert sol.support.tolist() == [0]


def test_two_sequences_of_two_tokens_active_and_inactive_constraints():
    # rows a₁ = (1, 0), a₂ = (2, 1): w = (1, 0) meets a₁ with equality and a₂ with slack (2 ≥ 1)
    sol = max_margin([[1.0, 0.0], [2.0, 1.0]])
    np.testing.assert_allclose(sol.w, [1.0, 0.0], atol=1e-14)
    np.testing.assert_allclose(sol.alpha, [1.0, 0.0], atol=1e-14)
    # rows (1, 0) and (0, 1): both active, w = (1, 1), α = (1, 1), margin 1/√2
    sol = max_margin([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(sol.w, [1.0, 1.0], atol=1e-14)
    assert sol.margin == pytest.approx(2**-0.5, rel=1e-14)
    # rows (2, 0) and (1, 1): the projection of 0 onto {a₂ᵀw = 1} is (1/2, 1/2), which meets a₁ exactly
    sol = max_margin([[2.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(sol.w, [0.5, 0.5], atol=1e-14)


@pytest.mark.parametrize("seed", range(5))
def test_random_att_svm_satisfies_kkt(seed):
    """Primal feasibility, dual feasibility, complementary slackness and stationarity w = Aᵀα."""
    rng = np.random.default_rng(seed)
    n, T, d = 6, 4, 32
    X, v, Y = rng.standard_normal((n, T, d)), rng.standard_normal(d), rng.choice([-1.0, 1.0], n)
    opt = optimal_tokens(X, Y, v)
    assert np.all(token_scores(X, Y, v)[np.arange(n), opt] >= token_scores(X, Y, v).max(1))
    A = att_svm_constraints(X, opt)
    assert A.shape == (n * (T - 1), d)
    sol = solve_att_svm(X, opt)
    slack = A @ sol.w - 1
    assert slack.min() >= -1e-10                               # Aw ≥ 1
    assert sol.alpha.min() >= 0                                # α ≥ 0
    assert np.max(np.abs(sol.alpha * slack)) <= 1e-10          # α_i (a_iᵀw − 1) = 0
    np.testing.assert_allclose(A.T @ sol.alpha, sol.w, atol=1e-10)  # ∇(½‖w‖²) = Aᵀα
    # no feasible point is shorter: the minimum-norm point of each active face is at least as long
    for i in sol.support:
        assert np.linalg.norm(sol.w) >= 1 / np.linalg.norm(A[i]) - 1e-12


def test_w_svm_with_a_shared_query_is_the_p_svm_times_the_query():
    """(x_opt − x_t)ᵀ W p ≥ 1 constrains only q = Wp; the smallest ‖W‖_F with Wp = q is q pᵀ/‖p‖²."""
    rng = np.random.default_rng(7)
    n, T, d = 3, 3, 8
    X, v, Y = rng.standard_normal((n, T, d)), rng.standard_normal(d), rng.choice([-1.0, 1.0], n)
    opt = optimal_tokens(X, Y, v)
    p = rng.standard_normal(d)
    p_mm = solve_att_svm(X, opt).w
    W_mm = solve_att_svm(X, opt, queries=p).w
    assert W_mm.shape == (d, d)
    np.testing.assert_allclose(W_mm, np.outer(p_mm, p) / (p @ p), atol=1e-10)
    # a query per sequence: the constraints read (x_opt − x_t)ᵀ W z_i
    Z = rng.standard_normal((n, d))
    W_z = solve_att_svm(X, opt, queries=Z).w
    gaps = [(X[i, opt[i]] - X[i, t]) @ W_z @ Z[i] for i in range(n) for t in range(T) if t != opt[i]]
    assert min(gaps) == pytest.approx(1.0, abs=1e-9)
    assert directional_cosine(W_z, W_z * 3) == pytest.approx(1.0)


def test_locally_optimal_tokens_on_hand_made_sequences():
    """v = (0.1, 1), Y = 1, so a token's score is 0.1·x + y."""
    v, Y = np.array([0.1, 1.0]), np.array([1.0])
    # x0 = (0, 0): 0, x1 = (3, 0): 0.3, x2 = (−5, 1): 0.5 (optimal, but far from x1)
    X = np.array([[[0.0, 0.0], [3.0, 0.0], [-5.0, 1.0]]])
    assert optimal_tokens(X, Y, v).tolist() == [2]
    # selecting x1: p^mm = (1/3, 0); (x1 − x0)ᵀp = 1 is active, (x1 − x2)ᵀp = 8/3 is not: the only
    # support token x0 scores 0 < 0.3, so x1 is locally (not globally) optimal
    np.testing.assert_allclose(solve_att_svm(X, [1]).w, [1 / 3, 0.0], atol=1e-12)
    assert locally_optimal(X, Y, v, [1]).tolist() == [True]
    assert locally_optimal(X, Y, v, [2]).tolist() == [True]
    # move x2 to (0, 1), score 1: now p^mm = (1/3, 0) meets (x1 − x2)ᵀp = 3·(1/3) − 0 = 1 too, so x2
    # is a support token of x1 with a higher score: x1 is not locally optimal
    X2 = np.array([[[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]]])
    assert locally_optimal(X2, Y, v, [1]).tolist() == [False]


def test_infeasible_and_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="infeasible"):
        max_margin([[1.0, 0.0], [-1.0, 0.0]])  # wᵀa ≥ 1 and −wᵀa ≥ 1 cannot both hold
    with pytest.raises(ValueError, match="n, T, d"):
        att_svm_constraints(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="one token index"):
        att_svm_constraints(np.zeros((2, 3, 4)), [0, 3])
    with pytest.raises(ValueError, match="queries"):
        att_svm_constraints(np.zeros((2, 3, 4)), [0, 1], queries=np.zeros((3, 4)))
