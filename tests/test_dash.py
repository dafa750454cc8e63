"""hild.optim.dash: DASH leaves a weight aligned with the negative gradient untouched and shrinks an
orthogonal one to the floor (closed-form gradients of a linear model); the moving average, the
convolution and bias rules against an independent autograd computation; shrink-and-perturb."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hild.models.resnet import ResNet18
from hild.optim.dash import ShrinkReport, dash_shrink, neuron_cosines, shrink_perturb


def half_squared_error(model, batch):
    x, y = batch
    return 0.5 * ((model(x) - y) ** 2).sum()


def test_aligned_row_is_kept_orthogonal_and_opposed_rows_shrink_to_the_floor():
    # One example x and f(x) = Wx with loss ½‖Wx − y‖²: −∇_{w_i} = (y_i − w_i·x)·x, every row's
    # negative gradient is a multiple of x, so cos(w_i, −∇_i) = ±cos(w_i, x) exactly.
    x = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)  # ‖x‖ = 3
    u = x[0] / 3
    ortho = torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64)  # ⟂ x
    at60 = 0.5 * u + math.sqrt(3) / 2 * ortho / ortho.norm()     # cos(at60, x) = 1/2
    W = torch.stack([2 * u, ortho, -u, 1.5 * at60])
    y = torch.tensor([[10.0, 10.0, 10.0, 10.0]], dtype=torch.float64)  # every residual y_i − w_i·x > 0
    model = nn.Linear(3, 4, bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(W)
    report = dash_shrink(model, (x, y), lam=0.3, loss_fn=half_squared_error)
    expected = torch.tensor([1.0, 0.3, 0.3, 0.5], dtype=torch.float64)
    assert torch.allclose(report.factors[""], expected, atol=1e-12)
    assert torch.allclose(report.cosines[""], torch.tensor([1.0, 0.0, -1.0, 0.5], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(model.weight.detach(), W * expected[:, None], atol=1e-12)
    assert torch.equal(model.weight[0].detach(), W[0]), "the aligned row is untouched, bit for bit"
    assert isinstance(report, ShrinkReport) and report.batches == 1
    assert model.weight.grad is None, "DASH works on a copy: the model's .grad is left alone"


def _reference_factors(model, batches, lam, alpha):
    """An independent computation: EMA of −∇ by autograd, then clamp(cos, λ, 1) per neuron."""
    probe = [p for p in model.parameters()]
    ema = [torch.zeros_like(p) for p in probe]
    for xb, yb in batches:
        grads = torch.autograd.grad(F.cross_entropy(model(xb), yb), probe)
        ema = [(1 - alpha) * e - alpha * g for e, g in zip(ema, grads)]
    return {id(p): e for p, e in zip(probe, ema)}


def test_moving_average_conv_slices_and_bias_vectors_follow_the_official_rule():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    model = model.double()
    batches = [(torch.randn(6, 2, 4, 4, dtype=torch.float64), torch.randint(0, 5, (6,))) for _ in range(3)]
    before = [p.detach().clone() for p in model.parameters()]
    neg = _reference_factors(model, batches, lam=0.2, alpha=0.3)
    conv, lin = model[0], model[3]
    want_conv = neuron_cosines(conv.weight, neg[id(conv.weight)]).clamp(0.2, 1)
    want_lin = neuron_cosines(lin.weight, neg[id(lin.weight)]).clamp(0.2, 1)
    want_bias = float(F.cosine_similarity(lin.bias[None], neg[id(lin.bias)][None]).clamp(0.2, 1).detach())
    assert want_conv.shape == (3, 2)
    report = dash_shrink(model, batches, lam=0.2, alpha=0.3)
    assert report.batches == 3
    assert torch.allclose(report.factors["0"].double(), want_conv.detach())
    assert torch.allclose(report.factors["3"].double(), want_lin.detach())
    assert report.bias_factors["3"] == pytest.approx(want_bias)
    assert torch.allclose(conv.weight, before[0] * want_conv[:, :, None, None])
    assert torch.allclose(lin.bias, before[3] * want_bias)
    kept = nn.Linear(3, 2)
    b = kept.bias.detach().clone()
    dash_shrink(kept, (torch.randn(4, 3), torch.tensor([0, 1, 0, 1])), bias="keep")
    assert torch.equal(kept.bias.detach(), b)


def test_neuron_cosines_against_a_loop():
    torch.manual_seed(1)
    w, g = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    got = neuron_cosines(w, g)
    for o in range(4):
        for i in range(3):
            a, b = w[o, i].flatten(), g[o, i].flatten()
            assert float(got[o, i]) == pytest.approx(float(a @ b / (a.norm() * b.norm())), rel=1e-5)
    with pytest.raises(ValueError, match="shape"):
        neuron_cosines(w, g[:2])


def test_dash_keeps_mode_and_running_statistics():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).train()
    stats = model[1].running_mean.clone()
    dash_shrink(model, (torch.randn(8, 3), torch.randint(0, 2, (8,))))
    assert model.training and torch.equal(model[1].running_mean, stats)
    with pytest.raises(ValueError, match="lam"):
        dash_shrink(model, (torch.randn(8, 3), torch.randint(0, 2, (8,))), lam=0.0)


def test_shrink_perturb_is_a_shrink_plus_gaussian_noise():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(200, 300), nn.ReLU(), nn.Linear(300, 2))
    before = [p.detach().clone() for p in model.parameters()]
    shrink_perturb(model, shrink=0.7, noise_std=0.0)
    for p, b in zip(model.parameters(), before):
        assert torch.allclose(p, 0.7 * b)
    shrink_perturb(model, shrink=1.0, noise_std=0.01, generator=torch.Generator().manual_seed(0))
    delta = model[0].weight.detach() - 0.7 * before[0]
    assert abs(float(delta.std()) / 0.01 - 1) < 0.02 and abs(float(delta.mean())) < 1e-4


def test_dash_on_a_resnet_touches_every_convolution_and_the_classifier():
    torch.manual_seed(0)
    model = ResNet18(10, width=0.125)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    assert model(x).shape == (4, 10)
    report = dash_shrink(model, (x, y), lam=0.3)
    convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sorted(report.factors) == sorted(convs)
    f = report.all_factors()
    assert float(f.min()) >= 0.3 - 1e-6 and float(f.max()) <= 1 + 1e-6
