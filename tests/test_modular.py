"""hild.data.modular: every pair once, exact split sizes, correct answers."""

import pytest
import torch

from hild.data import modular_arithmetic, modular_table


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("frac", [0.3, 0.5, 0.8])
def test_every_pair_once_and_the_split_is_exact(op, frac):
    p = 13
    s = modular_arithmetic(p, op=op, train_fraction=frac, seed=3)
    n = p * p if op != "div" else p * (p - 1)
    pairs = torch.cat([s.x_train, s.x_test])
    assert s.n_pairs == n and len(set(map(tuple, pairs.tolist()))) == n  # every valid pair exactly once
    assert len(s.x_train) == round(frac * n)
    x, y = torch.cat([s.x_train, s.x_test]), torch.cat([s.y_train, s.y_test])
    a, b = x[:, 0].tolist(), x[:, 1].tolist()
    for ai, bi, yi in zip(a, b, y.tolist()):
        if op == "add":
            assert yi == (ai + bi) % p
        elif op == "sub":
            assert yi == (ai - bi) % p
        elif op == "mul":
            assert yi == (ai * bi) % p
        else:
            assert bi != 0 and (yi * bi) % p == ai  # y = a / b  ⇔  y·b = a


def test_split_is_seeded_and_tokens_have_the_documented_layout():
    a, b = modular_arithmetic(7, seed=1), modular_arithmetic(7, seed=1)
    assert torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_train, modular_arithmetic(7, seed=2).x_train)
    t = a.tokens("train")
    assert t.shape == (len(a.x_train), 4) and a.vocab_size == 9
    assert torch.equal(t[:, 0], a.x_train[:, 0]) and torch.equal(t[:, 2], a.x_train[:, 1])
    assert (t[:, 1] == 7).all() and (t[:, 3] == 8).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="not prime"):
        modular_table(12)
    with pytest.raises(ValueError, match="op="):
        modular_table(7, "pow")
    with pytest.raises(ValueError, match="train_fraction"):
        modular_arithmetic(7, train_fraction=1.0)

