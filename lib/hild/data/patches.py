"""The feature-noise patch data model of Oh and Yun (NeurIPS 2024), "Provable Benefit of Cutout and
CutMix for Feature Learning".

An example is a label y ∈ {±1} and an input X = (x⁽¹⁾, ..., x⁽ᴾ⁾) of P patches in ℝᵈ:

* one **feature patch** x⁽ᵖ*⁾ = v_{y,k}: the k-th feature of class y, with k drawn with
  probability ρ_k. The features {v_{s,k}} are orthonormal; the first ones are *common* (large ρ_k),
  the later ones *rare* and *extremely rare*;
* one **dominant noise patch** ξ ~ N(0, σ_d² Λ): strong noise, which a network can memorise;
* one **feature-noise patch** α·v_{−y,1}: a weak copy of the *other* class's most common feature;
* the remaining P − 3 **background noise patches** ξ ~ N(0, σ_b² Λ),

in a random order. Λ projects onto the orthogonal complement of the features, so noise never
carries label information. The features are the first 2K standard basis vectors (v_{s,k} = e_i
with i = feature_index(s, k)), so Λ simply zeroes those coordinates.

The symbol names follow the paper (P, d, ρ_k, v_{s,k}, σ_d, σ_b, α, p*). The ci instance of the
book's chapter (one patch of each kind, P = 4) was reconstructed from the paper's description; see
the chapter for what may differ from the paper's Definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["PatchData", "feature_noise_patches", "feature_index", "feature_vectors", "PATCH_KINDS"]

# What each kind of patch is, in the order of the `kinds` codes of PatchData.
PATCH_KINDS: tuple[str, ...] = ("feature", "dominant noise", "feature noise", "background noise")


def feature_index(s: int, k: int, K: int) -> int:
    """The coordinate that holds v_{s,k}: class +1 uses 0..K-1, class -1 uses K..2K-1."""
    if s not in (1, -1):
        raise ValueError(f"the class s must be +1 or -1, got {s}")
    if not 0 <= k < K:
        raise ValueError(f"feature k must be in 0..{K - 1}, got {k}")
    return k if s == 1 else K + k


def feature_vectors(K: int, d: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """All features as a (2, K, d) tensor: ``V[0, k]`` = v_{+1,k}, ``V[1, k]`` = v_{−1,k}."""
    if 2 * K > d:
        raise ValueError(f"2K = {2 * K} orthonormal features do not fit in d = {d} dimensions")
    return torch.eye(d, dtype=dtype)[: 2 * K].reshape(2, K, d)


@dataclass(frozen=True)
class PatchData:
    """A sample of the feature-noise patch model.

    Attributes:
        x: (n, P, d) inputs, patch by patch.
        y: (n,) labels in {+1, −1} (float, for the logistic loss ℓ(y·f)).
        k: (n,) int64 index of the feature each example carries (0 = most common).
        kinds: (n, P) int64 kind of each patch (an index into :data:`PATCH_KINDS`).
        rho: the feature frequencies ρ_k the sample was drawn with.
        groups: name → the feature indices of that rarity (e.g. ``{"common": (0,), "rare": (1,)}``).
    """

    x: torch.Tensor
    y: torch.Tensor
    k: torch.Tensor
    kinds: torch.Tensor
    rho: tuple[float, ...]
    groups: dict[str, tuple[int, ...]]

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def P(self) -> int:
        return self.x.shape[1]

    @property
    def d(self) -> int:
        return self.x.shape[2]

    @property
    def K(self) -> int:
        return len(self.rho)

    def group_of(self, name: str) -> torch.Tensor:
        """A boolean (n,) mask of the examples whose feature belongs to the group ``name``."""
        if name not in self.groups:
            raise KeyError(f"no group {name!r}: the groups are {sorted(self.groups)}")
        return torch.isin(self.k, torch.tensor(self.groups[name]))

    def features(self) -> torch.Tensor:
        """The (2, K, d) feature vectors v_{s,k} of this sample's space."""
        return feature_vectors(self.K, self.d, dtype=self.x.dtype)


def feature_noise_patches(
    n: int,
    *,
    d: int,
    rho: Sequence[float],
    P: int = 4,
    sigma_d: float = 0.25,
    sigma_b: float = 0.12,
    alpha: float = 0.2,
    groups: dict[str, Sequence[int]] | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> PatchData:
    """Draw ``n`` examples of the feature-noise patch model (module docstring).

    Args:
        n: number of examples; the labels are drawn uniformly from {±1}.
        d: patch dimension (at least 2K + 1 so that noise has somewhere to live).
        rho: feature frequencies ρ_1 ≥ ρ_2 ≥ ... (each class has K = len(rho) features); they
            must sum to one.
        P: patches per example (at least 3; the 4th and later are background noise).
        sigma_d: standard deviation of the dominant noise (σ_d).
        sigma_b: standard deviation of the background noise (σ_b).
        alpha: strength of the feature noise α·v_{−y,1}.
        groups: names for sets of feature indices, e.g. ``{"common": [0], "rare": [1]}``; by
            default each feature is its own group ``"k=0"``, ``"k=1"``, ...
        seed: the sample's seed (a fresh torch Generator, so the global RNG is untouched).

    Returns:
        :class:`PatchData` with patches in a random order per example.
    """
    rho_t = torch.as_tensor(list(rho), dtype=torch.float64)
    K = len(rho_t)
    if K < 1 or torch.any(rho_t < 0) or abs(float(rho_t.sum()) - 1.0) > 1e-9:
        raise ValueError(f"rho must be K ≥ 1 non-negative frequencies summing to one, got {list(rho)}")
    if P < 3:
        raise ValueError(f"P must be at least 3 (feature, dominant noise, feature noise), got {P}")
    if d < 2 * K + 1:
        raise ValueError(f"d = {d} leaves no room for noise next to 2K = {2 * K} features")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    g = torch.Generator().manual_seed(int(seed))
    y = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0)
    k = torch.multinomial(rho_t, n, replacement=True, generator=g)
    cls = (y < 0).long()  # 0 for y = +1, 1 for y = -1

    x = torch.zeros(n, P, d, dtype=torch.float64)
    rows = torch.arange(n)
    x[rows, 0, cls * K + k] = 1.0                                     # v_{y,k}
    x[:, 1] = sigma_d * torch.randn(n, d, generator=g, dtype=torch.float64)
    x[rows, 2, (1 - cls) * K] = alpha                                 # α·v_{−y,1}
    if P > 3:
        x[:, 3:] = sigma_b * torch.randn(n, P - 3, d, generator=g, dtype=torch.float64)
    x[:, 1, : 2 * K] = 0.0                                            # Λ: noise ⟂ every feature
    x[:, 3:, : 2 * K] = 0.0
    kinds = torch.tensor([0, 1, 2] + [3] * (P - 3)).expand(n, P)
    order = torch.argsort(torch.rand(n, P, generator=g), dim=1)      # a random order per example
    x = x[rows[:, None], order]
    kinds = kinds.gather(1, order)
    if groups is None:
        groups = {f"k={i}": (i,) for i in range(K)}
    for name, idx in groups.items():
        if any(not 0 <= int(i) < K for i in idx):
            raise ValueError(f"group {name!r} names features {list(idx)} outside 0..{K - 1}")
    return PatchData(x.to(dtype), y.to(dtype), k, kinds.contiguous(), tuple(float(r) for r in rho_t),
                     {name: tuple(int(i) for i in idx) for name, idx in groups.items()})
