"""hild.data.augment: Cutout removes exactly the requested patches, CutMix mixes labels in proportion
to area (patches and images), the CIFAR crop-and-flip is a crop of the padded image."""

import math

import pytest
import torch

from hild.data import augment


def patches(B=6, P=5, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, P, d, generator=g) + 1.0  # no patch is zero before augmentation


def test_cutout_removes_exactly_the_requested_patches():
    x = patches()
    for n_cut in range(0, 6):
        out, cut = augment.cutout(x, n_cut, generator=torch.Generator().manual_seed(n_cut))
        assert torch.equal(cut.sum(dim=1), torch.full((6,), n_cut))
        zero = (out == 0).all(dim=-1)
        assert torch.equal(zero, cut), "exactly the cut patches are zero"
        assert torch.equal(out[~cut], x[~cut]), "the other patches are untouched"
    assert torch.all(x > 0), "the input is not modified"


def test_cutout_with_a_given_mask_and_uniform_positions():
    x = patches(B=2, P=3)
    cut = torch.tensor([[True, False, False], [False, True, True]])
    out = augment.apply_cutout(x, cut)
    expected = x.clone()
    expected[0, 0] = 0
    expected[1, 1:] = 0
    assert torch.equal(out, expected)
    n, P = 30_000, 4
    mask = augment.random_patch_mask(n, P, 1, generator=torch.Generator().manual_seed(1))
    for p in range(P):  # each position is cut with probability 1/P (binomial, 5 standard deviations)
        assert abs(int(mask[:, p].sum()) - n / P) <= 5 * math.sqrt(n * (1 / P) * (1 - 1 / P))
    with pytest.raises(ValueError, match="between 0 and P"):
        augment.cutout(x, 4)


def test_cutmix_mixes_patches_and_labels_in_proportion_to_area():
    x = patches(B=8, P=4)
    y = torch.tensor([1.0, -1.0] * 4)
    for n_mix in range(0, 5):
        m = augment.cutmix(x, y, n_mix, generator=torch.Generator().manual_seed(n_mix))
        lam = 1 - n_mix / 4
        assert torch.allclose(m.lam, torch.full((8,), lam))
        sel = m.mask.reshape(8, 4, 1)
        assert torch.equal(m.x, torch.where(sel, x[m.partner], x))
        assert torch.equal(m.y_b, y[m.partner])
        assert torch.allclose(m.targets(), lam * y + (1 - lam) * y[m.partner])
    # one-hot rows: each class's weight is the fraction of patches that came from it
    ya, yb = torch.eye(3)[[0, 1]], torch.eye(3)[[2, 2]]
    mask = torch.tensor([[True, False, False, False], [True, True, True, False]])
    mixed = augment.mix_labels(ya, yb, mask)
    assert torch.allclose(mixed, torch.tensor([[0.75, 0.0, 0.25], [0.0, 0.25, 0.75]]))


def test_cutmix_images_label_weight_is_the_pasted_area():
    B, H, W = 4, 8, 8
    x = torch.arange(B * 3 * H * W, dtype=torch.float64).reshape(B, 3, H, W)
    y = torch.eye(4, dtype=torch.float64)
    for seed in range(20):
        m = augment.cutmix_images(x, y, alpha=1.0, generator=torch.Generator().manual_seed(seed))
        area = m.mask.double().mean()
        assert torch.allclose(m.lam, torch.full((B,), 1 - float(area), dtype=torch.float64))
        assert torch.equal(m.x[:, :, m.mask], x[m.partner][:, :, m.mask])
        assert torch.equal(m.x[:, :, ~m.mask], x[:, :, ~m.mask])
        other = m.partner != torch.arange(B)  # examples mixed with another image
        t = m.targets()
        assert torch.allclose(t[other, m.partner[other]], area.expand(int(other.sum())))
        assert torch.allclose(t[other, torch.arange(B)[other]], (1 - area).expand(int(other.sum())))


def test_cutout_images_zeroes_a_clipped_square():
    x = torch.ones(50, 1, 12, 12)
    out = augment.cutout_images(x, 4, generator=torch.Generator().manual_seed(0))
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert torch.all(zeros <= 16) and torch.all(zeros >= 4), "a 4x4 square, clipped at most to 2x2"
    assert int((zeros == 16).sum()) > 10, "most squares lie inside the image"


def test_random_crop_flip_is_a_crop_of_the_padded_image():
    B, C, H, W, pad = 16, 2, 5, 6, 2
    x = torch.arange(B * C * H * W, dtype=torch.float32).reshape(B, C, H, W) + 1
    out = augment.random_crop_flip(x, padding=pad, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    flips = 0
    for b in range(B):
        crops = [(padded[b, :, i : i + H, j : j + W], f) for i in range(2 * pad + 1) for j in range(2 * pad + 1)
                 for f in (False, True)]
        matches = [f for c, f in crops if torch.equal(out[b], c.flip(-1) if f else c)]
        assert matches, f"image {b} is not a (flipped) crop of its padded original"
        flips += matches[0]
    assert 0 < flips < B
