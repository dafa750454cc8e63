"""hild.rank: singular values of weight changes, checked on matrices of known singular values."""

import numpy as np
import pytest
import torch

import hild.rank as rank
from hild import train


def _known(s, m=6, n=4, seed=0):
    """U diag(s) Vᵀ with orthonormal U (m x k), V (n x k): its singular values are s exactly."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(m, len(s), generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, len(s), generator=g, dtype=torch.float64))
    return U @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ V.T


def test_singular_values_and_rank_of_a_known_matrix():
    M = _known([5.0, 2.0, 1e-3])
    np.testing.assert_allclose(rank.singular_values(M), [5.0, 2.0, 1e-3, 0.0], atol=1e-12)
    np.testing.assert_allclose(rank.singular_values(M, top=2), [5.0, 2.0], atol=1e-12)
    assert rank.numerical_rank([5.0, 2.0, 1e-3, 0.0], rtol=0.01) == 2
    assert rank.numerical_rank([5.0, 2.0, 1e-3, 0.0], rtol=1e-4) == 3
    assert rank.numerical_rank([1e-9, 1e-10], rtol=0.01, atol=1e-6) == 0  # noise only
    assert rank.numerical_rank([]) == 0
    with pytest.raises(ValueError, match="non-negative"):
        rank.numerical_rank([1.0, -1.0])
    with pytest.raises(ValueError, match="matrix"):
        rank.singular_values(torch.zeros(3))


def test_activation_steps_are_the_first_crossings():
    steps = np.array([0, 10, 20, 30, 40])
    values = np.array([[0, 0], [1, 0], [3, 0.1], [4, 1.5], [4, 2]], dtype=float)
    # σ1: half of 4 is first reached at step 20; σ2: half of 2 first at step 30
    np.testing.assert_array_equal(rank.activation_steps(steps, values), [20, 30])
    np.testing.assert_array_equal(rank.activation_steps(steps, values, fraction=1.0), [30, 40])
    np.testing.assert_array_equal(rank.activation_steps(steps, np.zeros((5, 1))), [-1])


def test_tracker_in_training_sees_the_exact_singular_values_of_the_change():
    """Loss −⟨W, G⟩ with SGD moves W by lr·G each step, so ΔW(t) = t·lr·G: σ_k(t) = t·lr·s_k."""
    s = [3.0, 1.0, 0.5]
    G = _known(s, m=5, n=4, seed=1)
    model = torch.nn.Linear(4, 5, bias=False, dtype=torch.float64)
    tracker = rank.SingularValueTracker({"W": lambda m: m.weight}, top=4, every=2)
    lr, steps = 0.1, 6
    hist = train.train(model, lambda m, batch: -(m.weight * G).sum(), (torch.zeros(1),),
                       optimizer=torch.optim.SGD(model.parameters(), lr=lr), steps=steps, every=2,
                       callbacks=[tracker])
    np.testing.assert_array_equal(tracker.steps, [0, 2, 4, 6])
    expected = np.array([[t * lr * sk for sk in s] + [0.0] for t in tracker.steps])
    np.testing.assert_allclose(tracker.values["W"], expected, atol=1e-12)
    np.testing.assert_allclose(hist["W_sv1"], expected[1:, 0], atol=1e-12)  # recorded in the history too
    assert rank.numerical_rank(tracker.values["W"][-1]) == 3


def test_tracker_without_reference_and_bad_inputs():
    model = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.diag(torch.tensor([2.0, 1.0, 0.0])))
    tracker = rank.SingularValueTracker({"W": lambda m: m.weight}, top=2, relative_to_init=False)
    tracker.record(0, model)
    np.testing.assert_allclose(tracker.values["W"], [[2.0, 1.0]], atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        rank.SingularValueTracker({})
    bad = rank.SingularValueTracker({"v": lambda m: m.weight[0]})
    with pytest.raises(ValueError, match="2-D"):
        bad.record(0, model)


def test_planted_attention_teacher_has_the_planted_singular_values():
    from hild.data import planted_attention
    from hild.models import SoftmaxAttention

    p = planted_attention(64, 5, 8, (3.0, 1.0), seed=2, dtype=torch.float64)
    np.testing.assert_allclose(rank.singular_values(p.w_star, top=3), [3 * 8**0.5, 8**0.5, 0.0], atol=1e-12)
    assert p.rank == 2 and p.x.shape == p.y.shape == (64, 5, 8)
    teacher = SoftmaxAttention(8, dtype=torch.float64)
    with torch.no_grad():  # a student holding W_Q = W*, W_K = I reproduces the targets exactly
        teacher.w_q.copy_(p.w_star)
        teacher.w_k.copy_(torch.eye(8))
    assert torch.allclose(teacher(p.x), p.y, atol=1e-12)
    diag = planted_attention(4, 3, 6, (2.0, 1.0), diagonal=True, dtype=torch.float64)
    expected = torch.diag(torch.tensor([2.0, 1.0, 0, 0, 0, 0], dtype=torch.float64)) * 6**0.5
    assert torch.equal(diag.w_star, expected)
    with pytest.raises(ValueError, match="positive"):
        planted_attention(4, 3, 6, (1.0, -1.0))


def test_slingshot_events_on_a_synthetic_run():
    """Two planted events (norm step + loss spike), one spike without a norm step, one norm step
    without a spike: the detector returns exactly the two planted events."""
    steps = np.arange(0, 5000, 10)
    loss = np.full(len(steps), 1e-6)
    norm = 10 + 1e-5 * steps  # slow growth: 0.05% per 500 steps, far below a 1% step

    def plant(at, spike=True, jump=0.0):
        i = at // 10
        if spike:
            loss[i:i + 5] = 1e-2 * np.exp(-np.arange(5))  # peak exactly at `at`
        norm[i - 3:] *= 1 + jump

    plant(1000, jump=0.05)
    plant(2500, jump=0.0)          # spike only: not a Slingshot
    plant(3200, spike=False, jump=0.05)  # norm step only: not a Slingshot
    plant(4000, jump=0.02)
    events = rank.slingshot_events(steps, loss, norm, window=300)
    assert [e.step for e in events] == [1000, 4000]
    assert events[0].loss_rise == pytest.approx(1e4) and events[0].norm_jump == pytest.approx(0.05, abs=2e-3)
    assert events[1].norm_jump == pytest.approx(0.02, abs=2e-3)
    # thresholds decide: with a 3% norm step required only the first event remains
    assert [e.step for e in rank.slingshot_events(steps, loss, norm, window=300, norm_rise=0.03)] == [1000]
    with pytest.raises(ValueError, match="increasing"):
        rank.slingshot_events(steps[::-1], loss, norm)
