"""hild.data.pruning and hild.classify: DUAL, EL2N and forgetting scores on hand-made prediction
histories; the Beta sampler keeps exactly the requested fraction with the paper's probabilities."""

import math

import pytest
import torch
from scipy import stats

from hild import classify
from hild.data import pruning
from hild.models.mlp import MLP


def test_dual_score_on_a_hand_made_history():
    # example 0 climbs 0.2 → 0.4 → 0.8; example 1 stays at 0.5; windows of two epochs
    p = torch.tensor([[0.2, 0.5], [0.4, 0.5], [0.8, 0.5]], dtype=torch.float64)
    # window (0.2, 0.4): std √0.02 (Bessel), mean 0.3; window (0.4, 0.8): std √0.08, mean 0.6
    want0 = 10 * (math.sqrt(0.02) * 0.7 + math.sqrt(0.08) * 0.4) / 2
    got = pruning.dual_scores(p, window=2)
    assert got.tolist() == pytest.approx([want0, 0.0], abs=1e-12)
    # a single window of all three epochs
    m = (0.2 + 0.4 + 0.8) / 3
    sd = math.sqrt(((0.2 - m) ** 2 + (0.4 - m) ** 2 + (0.8 - m) ** 2) / 2)
    assert float(pruning.dual_scores(p, window=3)[0]) == pytest.approx(10 * sd * (1 - m), abs=1e-12)
    with pytest.raises(ValueError, match="window"):
        pruning.dual_scores(p, window=4)


def test_el2n_and_forgetting_on_hand_made_histories():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert pruning.el2n_scores(probs, torch.tensor([0, 0])).tolist() == pytest.approx(
        [math.sqrt(0.09 + 0.04 + 0.01), math.sqrt(0.81 + 0.01 + 0.64)])
    correct = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.bool)
    assert pruning.forgetting_scores(correct).tolist() == [2, 1, 1]
    dyn = pruning.Dynamics(torch.tensor([[[0.6, 0.4], [0.3, 0.7]]]), torch.tensor([1, 1]))
    assert dyn.target_probs()[0].tolist() == pytest.approx([0.4, 0.7])
    assert dyn.correct().tolist() == [[False, True]]


def test_keep_count_rounds_instead_of_truncating():
    assert pruning.keep_count(1400, 0.9) == 140
    assert pruning.keep_count(1400, 0.7) == 420
    assert pruning.keep_count(10, 0.95) == 1
    with pytest.raises(ValueError):
        pruning.keep_count(10, 1.0)


def test_beta_parameters_and_weights_are_the_papers():
    n = 30
    mean_p = torch.linspace(0.05, 0.95, n, dtype=torch.float64)
    scores = torch.arange(n, dtype=torch.float64) + 1.0  # the top ten are the last ten
    a, b = pruning.beta_parameters(mean_p, scores, 0.7)
    anchor = float(mean_p[-10:].mean())
    assert b == pytest.approx(15 * (1 - anchor) * (1 - 0.7**4)) and a == pytest.approx(16 - b)
    w = pruning.beta_weights(mean_p, scores, 0.7)
    assert torch.allclose(w, torch.as_tensor(stats.beta.pdf(mean_p.numpy(), a, b)) * scores)


def test_beta_sampler_keeps_exactly_the_requested_fraction():
    g = torch.Generator().manual_seed(0)
    T, n = 12, 1400
    hist = torch.rand(T, n, generator=g, dtype=torch.float64)
    scores = pruning.dual_scores(hist)
    for r in (0.3, 0.5, 0.7, 0.8, 0.9):
        keep = pruning.beta_sample(hist, scores, r, generator=g)
        assert len(keep) == pruning.keep_count(n, r) == round((1 - r) * n)
        assert len(set(keep.tolist())) == len(keep) and 0 <= int(keep.min()) and int(keep.max()) < n
        assert len(pruning.random_subset(n, r, generator=g)) == len(keep) == len(pruning.top_k(scores, r))
    zero = scores.clone()
    zero[:700] = 0.0  # half the examples can never be drawn ...
    keep = pruning.beta_sample(hist, zero, 0.5, generator=g)
    assert int(keep.min()) >= 700
    keep = pruning.beta_sample(hist, zero, 0.2, generator=g)  # ... unless more must be kept
    assert len(set(keep.tolist())) == 1120 and int((keep >= 700).sum()) == 700


def test_beta_sampler_draws_with_the_papers_probabilities():
    hist = torch.tensor([[0.2, 0.5, 0.9, 0.6], [0.6, 0.7, 0.95, 0.6]], dtype=torch.float64)
    scores = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    w = pruning.beta_weights(hist.mean(0), scores, 0.75)
    p = w / w.sum()
    g = torch.Generator().manual_seed(1)
    N = 3000
    counts = torch.zeros(4)
    for _ in range(N):  # keep_count(4, 0.75) = 1: a single draw with probability ∝ weight
        counts[pruning.beta_sample(hist, scores, 0.75, generator=g)] += 1
    for c, q in zip(counts.tolist(), p.tolist()):
        assert abs(c - N * q) <= 5 * math.sqrt(N * q * (1 - q))


def test_fit_stops_when_told_and_records_dynamics():
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    model = MLP([5, 16, 3])
    seen = []
    steps = classify.fit(model, x, y, epochs=10, batch_size=16, on_epoch=lambda t: seen.append(t) or t == 3)
    assert seen == [1, 2, 3] and steps == 12
    dyn = pruning.record_dynamics(MLP([5, 16, 3]), x, y, epochs=4, batch_size=16)
    assert dyn.probs.shape == (4, 64, 3) and torch.allclose(dyn.probs.sum(-1), torch.ones(4, 64))
    assert 0.0 <= classify.accuracy(model, x, y) <= 1.0
