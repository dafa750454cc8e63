"""hild.optim.gda: the optimizers' contracts (the linear-algebra checks are in test_games.py)."""

import numpy as np
import pytest
import torch

from hild.data import bilinear_game
from hild.optim import AlexGDA, AltGDA, SimGDA, run_gda


def test_constructor_errors():
    x, y = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="positive"):
        AltGDA([x], [y], lr_min=0.0, lr_max=0.1)
    with pytest.raises(ValueError, match="both players"):
        SimGDA([x], [], lr_min=0.1, lr_max=0.1)
    with pytest.raises(ValueError, match="both players"):
        AltGDA([x], [x], lr_min=0.1, lr_max=0.1)


def test_alt_gda_is_alex_at_one_one():
    torch.manual_seed(0)
    B = torch.randn(3, 3, dtype=torch.float64)
    out = []
    for cls, kw in ((AltGDA, {}), (AlexGDA, {"gamma": 1.0, "delta": 1.0})):
        x = torch.ones(3, dtype=torch.float64, requires_grad=True)
        y = torch.ones(3, dtype=torch.float64, requires_grad=True)
        opt = cls([x], [y], lr_min=0.1, lr_max=0.2, **kw)
        for _ in range(5):
            opt.step(lambda: (x @ B @ y).backward())
        out.append(torch.cat([x.detach(), y.detach()]))
    assert torch.equal(out[0], out[1])


def test_bilinear_behaviours():
    g = bilinear_game(4, mu_xy=0.2, L_xy=1.0, seed=0)
    with pytest.warns(RuntimeWarning, match="diverges on this game"):
        run_gda(g, "sim", alpha=0.5, beta=0.5, steps=1)
    ratio = {m: run_gda(g, m, alpha=0.5, beta=0.5, gamma=2, delta=2, steps=500, diverge_at=np.inf,
                        warn_unstable=False).distance2 for m in ("sim", "alt", "alex")}
    assert ratio["sim"][-1] / ratio["sim"][0] > 1e6
    assert 0.1 < ratio["alt"][-1] / ratio["alt"][0] < 10
    assert ratio["alex"][-1] / ratio["alex"][0] < 1e-2


def test_run_gda_path_and_validation():
    g = bilinear_game(2, mu_xy=0.5, L_xy=1.0, seed=0)
    r = run_gda(g, "alt", alpha=0.1, beta=0.1, steps=5, keep_path=True)
    assert r.path.shape == (6, 4) and not r.converged
    assert np.allclose((r.path**2).sum(1), r.distance2)
    with pytest.raises(ValueError, match="unknown method"):
        run_gda(g, "eg", alpha=0.1, beta=0.1, steps=1)
