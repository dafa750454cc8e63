"""hild.metrics against values computed by hand on tiny examples."""

import numpy as np
import pytest
import torch

import hild.metrics as M

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]])
LABELS = np.array([0, 2, 0, 2])


def test_nll_and_accuracy():
    assert M.nll(PROBS, LABELS) == pytest.approx(-np.mean(np.log([0.7, 0.3, 0.5, 0.6])))
    assert M.accuracy(PROBS, LABELS) == 0.75
    assert M.nll(torch.tensor(PROBS), torch.tensor(LABELS)) == pytest.approx(M.nll(PROBS, LABELS))


def test_ece_by_hand():
    # confidences 0.7, 0.6, 0.5, 0.6; correct: yes, no, yes, yes. With 2 bins ([0, .5], (.5, 1]):
    # bin 1 holds 0.5 (correct): |1 − 0.5| · 1/4; bin 2 holds 0.7, 0.6, 0.6 with 2/3 correct:
    # |2/3 − 19/30| · 3/4.
    expected = 0.25 * 0.5 + 0.75 * abs(2 / 3 - 1.9 / 3)
    assert M.ece(PROBS, LABELS, bins=2) == pytest.approx(expected)
    perfect = np.eye(3)[[0, 1, 2]]
    assert M.ece(perfect, np.array([0, 1, 2])) == 0.0


def test_diversity_of_known_ensembles():
    same = np.stack([PROBS, PROBS, PROBS])
    assert M.disagreement(same) == 0.0 and M.symmetric_kl(same) == pytest.approx(0.0, abs=1e-12)
    other = PROBS[:, [1, 0, 2]]  # swaps the first two classes: changes the top class of rows 0, 1, 2
    pair = np.stack([PROBS, other])
    assert M.disagreement(pair) == 0.75
    kl = np.sum((PROBS - other) * (np.log(PROBS) - np.log(other)), axis=1).mean()
    assert M.symmetric_kl(pair) == pytest.approx(kl)
    three = np.stack([PROBS, other, PROBS])  # pairs (0,1), (0,2), (1,2): 0.75, 0, 0.75
    assert M.disagreement(three) == pytest.approx(0.5)
    assert np.allclose(M.ensemble(pair), (PROBS + other) / 2)


def test_ambiguity():
    logits = np.log(PROBS)
    assert M.ambiguity(np.stack([logits, logits]), LABELS) == pytest.approx(0.0, abs=1e-12)
    noisy = np.stack([logits + 1.5 * np.eye(3)[[1, 0, 2, 1]], logits - 1.5 * np.eye(3)[[1, 0, 2, 1]]])
    assert M.ambiguity(noisy, LABELS) > 0  # averaging the logits cancels the perturbations


def test_bad_input():
    with pytest.raises(ValueError, match="sum to one"):
        M.nll(np.log(PROBS), LABELS)
    with pytest.raises(ValueError, match="at least two"):
        M.disagreement(PROBS[None])
    with pytest.raises(ValueError, match="axes"):
        M.disagreement(PROBS)
