"""hild.train and hild.models.MLP: exact answers on linear regression and replayable batches."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hild import train
from hild.models import MLP


def test_full_batch_gd_on_least_squares_matches_closed_form():
    torch.manual_seed(0)
    x = torch.randn(20, 3, dtype=torch.float64)
    y = torch.randn(20, 1, dtype=torch.float64)
    model = torch.nn.Linear(3, 1, bias=False, dtype=torch.float64)
    w0 = model.weight.detach().clone().T
    lr, steps = 0.1, 25
    hist = train.train(model, train.supervised(F.mse_loss), (x, y), optimizer=torch.optim.SGD(model.parameters(), lr=lr),
                       steps=steps, every=5)
    # GD on (1/n)‖Xw − y‖²: w ← w − lr·(2/n)Xᵀ(Xw − y), iterated exactly
    w = w0
    for _ in range(steps):
        w = w - lr * (2 / len(x)) * x.T @ (x @ w - y)
    assert torch.allclose(model.weight.detach().T, w, atol=1e-12)
    assert hist.steps == [5, 10, 15, 20, 25]
    assert hist["loss"].shape == (5,)


def test_checkpoint_resume_gives_the_same_run(tmp_path):
    def run(steps, ckpt):
        torch.manual_seed(1)
        model = MLP([4, 8, 2], activation="tanh")
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        x, y = torch.randn(64, 4, generator=torch.Generator().manual_seed(2)), torch.randint(0, 2, (64,), generator=torch.Generator().manual_seed(3))
        data = train.batches(x, y, batch_size=16, seed=0)
        return model, train.train(model, train.supervised(F.cross_entropy), data, optimizer=opt, steps=steps,
                                  checkpoint=ckpt, checkpoint_every=10)

    full_model, full = run(30, None)
    path = tmp_path / "ck.pt"
    run(20, path)  # "interrupted" after 20 steps
    resumed_model, resumed = run(30, path)  # a fresh model and optimizer resume from step 20
    assert resumed.steps == full.steps
    np.testing.assert_allclose(resumed["loss"], full["loss"], rtol=1e-6)
    for a, b in zip(full_model.parameters(), resumed_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_batches_are_replayable_and_cover_an_epoch():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    get = train.batches(x, y, batch_size=5, seed=4)
    seen = torch.cat([get(0)[1], get(1)[1]])
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(get(1)[1], train.batches(x, y, batch_size=5, seed=4)(1)[1])
    with pytest.raises(ValueError, match="batch_size"):
        train.batches(x, y, batch_size=11)


def test_bad_inputs():
    model = MLP([2, 1])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="data must be"):
        train.train(model, train.supervised(F.mse_loss), 3, optimizer=opt, steps=1)
    with pytest.raises(ValueError, match="scalar"):
        train.train(model, lambda m, b: m(b[0]), (torch.ones(3, 2), torch.ones(3, 1)), optimizer=opt, steps=1)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP([2, 2], activation="swish")


def test_mlp_features_and_linears():
    m = MLP([5, 7, 3], activation="relu")
    x = torch.randn(4, 5)
    assert m.features(x).shape == (4, 7) and len(m.linears) == 2
    assert torch.allclose(m.linears[-1](m.features(x)), m(x))
