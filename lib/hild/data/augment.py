"""Patch-level augmentations as batch transforms: Cutout and CutMix.

Two forms of each:

* on **patch tensors** x of shape (B, P, ...) (the patch data model of :mod:`hild.data.patches`):
  Cutout zeroes a random set of patches, CutMix replaces a random set of patches with the same
  patches of a random partner and mixes the labels in proportion to the number of patches
  (Oh and Yun, NeurIPS 2024);
* on **images** x of shape (B, C, H, W), as the original papers do: Cutout zeroes a square of side
  ``size`` centred uniformly in the image and clipped at its border (DeVries and Taylor, 2017);
  CutMix pastes a box of area fraction 1 − λ, λ ~ Beta(α, α), from a shuffled copy of the batch
  and sets λ to the area actually kept after clipping (Yun et al., ICCV 2019).

Every transform takes an explicit ``generator`` so that a run is replayable, returns new tensors,
and never changes its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Mixed", "random_patch_mask", "apply_cutout", "cutout", "mix_patches", "mix_labels", "cutmix",
           "cutout_images", "cutmix_images", "random_crop_flip"]


@dataclass(frozen=True)
class Mixed:
    """A CutMix batch: inputs, both label sets and the weight of each.

    Attributes:
        x: the mixed inputs, same shape as the originals.
        y_a: (B, ...) labels of the examples that were pasted into.
        y_b: (B, ...) labels of the partners whose patches were pasted in.
        lam: (B,) fraction of each input that still comes from its own example (λ); the
            loss is ``lam * loss(f, y_a) + (1 - lam) * loss(f, y_b)``.
        mask: what came from the partner: (B, P) bool for patches, (H, W) bool for images.
        partner: (B,) index of each example's partner in the batch.
    """

    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: torch.Tensor
    mask: torch.Tensor
    partner: torch.Tensor

    def targets(self) -> torch.Tensor:
        """The mixed labels λ·y_a + (1 − λ)·y_b (for ±1 labels or one-hot/probability rows)."""
        lam = self.lam.reshape(-1, *([1] * (self.y_a.ndim - 1))).to(self.y_a.dtype)
        return lam * self.y_a + (1 - lam) * self.y_b


def _check_patches(x: torch.Tensor, n: int, what: str) -> None:
    if x.ndim < 2:
        raise ValueError(f"expected patch tensors of shape (B, P, ...), got shape {tuple(x.shape)}")
    if not 0 <= n <= x.shape[1]:
        raise ValueError(f"{what} must be between 0 and P = {x.shape[1]}, got {n}")


def random_patch_mask(batch: int, n_patches: int, n_selected: int, *, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """A (batch, n_patches) bool mask with exactly ``n_selected`` True entries per row, uniformly
    over the subsets of that size, independently per row."""
    if not 0 <= n_selected <= n_patches:
        raise ValueError(f"n_selected must be between 0 and {n_patches}, got {n_selected}")
    scores = torch.rand(batch, n_patches, generator=generator)
    chosen = scores.argsort(dim=1)[:, :n_selected]  # the first n of a random permutation
    mask = torch.zeros(batch, n_patches, dtype=torch.bool)
    mask.scatter_(1, chosen, True)
    return mask.to(device) if device is not None else mask


def apply_cutout(x: torch.Tensor, cut: torch.Tensor) -> torch.Tensor:
    """``x`` (B, P, ...) with the patches where ``cut`` (B, P) is True set to zero."""
    if cut.shape != x.shape[:2]:
        raise ValueError(f"cut mask of shape {tuple(cut.shape)} does not match patches {tuple(x.shape[:2])}")
    keep = (~cut.to(torch.bool)).reshape(*cut.shape, *([1] * (x.ndim - 2)))
    return x * keep.to(x.dtype)


def cutout(x: torch.Tensor, n_cut: int, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cutout on patch tensors: zero ``n_cut`` patches chosen uniformly at random per example.

    Returns:
        The new inputs and the (B, P) bool mask of the removed patches.
    """
    _check_patches(x, n_cut, "n_cut")
    cut = random_patch_mask(x.shape[0], x.shape[1], n_cut, generator=generator, device=x.device)
    return apply_cutout(x, cut), cut


def mix_patches(x: torch.Tensor, partner: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` (B, P, ...) with the patches where ``mask`` is True taken from ``x[partner]``."""
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match patches {tuple(x.shape[:2])}")
    m = mask.to(torch.bool).reshape(*mask.shape, *([1] * (x.ndim - 2)))
    return torch.where(m, x[partner], x)


def mix_labels(y_a: torch.Tensor, y_b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CutMix's labels for a patch mask: λ·y_a + (1 − λ)·y_b with λ the fraction of own patches.

    Args:
        y_a: (B,) ±1 labels or (B, C) one-hot rows of the examples pasted into.
        y_b: the partners' labels, same shape.
        mask: (B, P) bool, True where the patch came from the partner.
    """
    lam = 1.0 - mask.to(torch.float64).mean(dim=1)
    lam = lam.reshape(-1, *([1] * (y_a.ndim - 1))).to(y_a.dtype)
    return lam * y_a + (1 - lam) * y_b


def cutmix(x: torch.Tensor, y: torch.Tensor, n_mix: int, *, generator: torch.Generator | None = None) -> Mixed:
    """CutMix on patch tensors: each example takes ``n_mix`` random patches (the same positions)
    from a partner drawn uniformly from the batch (itself included, as in the paper's average over
    all pairs), and its label weight is λ = 1 − n_mix / P."""
    _check_patches(x, n_mix, "n_mix")
    B, P = x.shape[:2]
    mask = random_patch_mask(B, P, n_mix, generator=generator, device=x.device)
    partner = torch.randint(0, B, (B,), generator=generator).to(x.device)
    lam = torch.full((B,), 1.0 - n_mix / P, dtype=x.dtype, device=x.device)
    return Mixed(mix_patches(x, partner, mask), y, y[partner], lam, mask, partner)


def _box(H: int, W: int, cy: int, cx: int, h: int, w: int) -> torch.Tensor:
    """(H, W) bool mask of the box of size h x w centred at (cy, cx), clipped at the border."""
    y0, y1 = max(cy - h // 2, 0), min(cy + h - h // 2, H)
    x0, x1 = max(cx - w // 2, 0), min(cx + w - w // 2, W)
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def cutout_images(x: torch.Tensor, size: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cutout on images (B, C, H, W): zero a ``size`` x ``size`` square per image, centred
    uniformly at random and clipped at the border (so near an edge less is removed)."""
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(x.shape)}")
    B, _, H, W = x.shape
    cy = torch.randint(0, H, (B, 1, 1), generator=generator).to(x.device)
    cx = torch.randint(0, W, (B, 1, 1), generator=generator).to(x.device)
    rows = torch.arange(H, device=x.device)[None, :, None]
    cols = torch.arange(W, device=x.device)[None, None, :]
    # the same box as _box, for every image at once (the clipping is implicit in the comparison)
    inside = ((rows >= cy - size // 2) & (rows < cy + size - size // 2)
              & (cols >= cx - size // 2) & (cols < cx + size - size // 2))
    return x * (~inside)[:, None].to(x.dtype)


def cutmix_images(x: torch.Tensor, y: torch.Tensor, *, alpha: float = 1.0,
                  generator: torch.Generator | None = None) -> Mixed:
    """CutMix on images (B, C, H, W), one box per batch as in Yun et al.: λ ~ Beta(α, α), a box of
    area (1 − λ)·H·W pasted from a shuffled copy of the batch, λ then set to the area kept."""
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(x.shape)}")
    B, _, H, W = x.shape
    u = torch.rand(2, generator=generator)
    # λ ~ Beta(α, α): torch's Beta sampler takes no generator, so draw it with NumPy, seeded from ours
    rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
    lam0 = float(rng.beta(alpha, alpha))
    cut = (1 - lam0) ** 0.5
    h, w = int(H * cut), int(W * cut)
    mask = _box(H, W, int(u[0] * H), int(u[1] * W), h, w)
    partner = torch.randperm(B, generator=generator).to(x.device)
    m = mask.to(x.device)[None, None]
    lam = 1.0 - mask.to(torch.float64).mean()
    mixed = torch.where(m, x[partner], x)
    return Mixed(mixed, y, y[partner], torch.full((B,), float(lam), dtype=x.dtype, device=x.device), mask, partner)


def random_crop_flip(x: torch.Tensor, *, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """The standard CIFAR augmentation on a batch of images (B, C, H, W), on any device: zero-pad
    by ``padding``, crop back to H x W at a random offset, and flip left-right with probability ½,
    independently per image."""
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(x.shape)}")
    B, C, H, W = x.shape
    off = torch.randint(0, 2 * padding + 1, (2, B), generator=generator).to(x.device)
    flip = (torch.rand(B, generator=generator) < 0.5).to(x.device)
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    iy = off[0][:, None] + torch.arange(H, device=x.device)  # (B, H) rows of each crop
    ix = off[1][:, None] + torch.arange(W, device=x.device)  # (B, W) columns
    ix = torch.where(flip[:, None], ix.flip(1), ix)           # a flip reads the columns backwards
    rows = torch.arange(B, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[rows, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2).contiguous()
