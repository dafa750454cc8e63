"""Collegial ensembles: m identical NTK-parameterised MLPs trained as one model (Littwin et al. 2020).

The ensemble's output is the scaled sum of its members' outputs,

    F(x) = (1/√m) Σ_{j=1}^{m} f_j(x; θ_j),

with every member an :class:`~hild.models.NTKMLP` of the same sizes and its own independent weights.
The members share nothing, so the ensemble's neural tangent kernel is the mean of theirs,

    Θ_F(x, x') = Σ_j ∂F/∂θ_j · ∂F/∂θ_j = (1/m) Σ_j Θ_j(x, x'),

an average of m independent kernels: its mean is a member's and its variance a member's divided by
m (the 1/√m keeps the mean fixed as m grows, as the NTK parameterisation does for the width). That
average is why an ensemble of many narrow networks trains like one wide network.

The members live in stacked tensors (one (m, out, in) weight per layer) and run as batched matrix
products: the "block-diagonal layer" implementation of the paper, one model for the optimizer and
for :mod:`hild.ntk`, and as fast as one member of width m·n would be.

Reference: E. Littwin, B. Myara, S. Sabah, J. Susskind, S. Zhai, O. Golan, *Collegial Ensembles*,
NeurIPS 2020 (arXiv 2006.07678).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import ntk
from .mlp import ACTIVATIONS
from .ntk import NTKMLP, _per_layer

__all__ = ["CollegialEnsemble", "mlp_parameter_count", "ensemble_ntk_samples", "VarianceModel", "fit_variance_model",
           "primal_optimum"]


def mlp_parameter_count(sizes: Sequence[int], members: int = 1, *, bias: bool = False) -> int:
    """Parameters of ``members`` MLPs with layer sizes ``sizes`` (e.g. [8, 64, 64, 64, 1] → 8768)."""
    sizes = list(sizes)
    per_member = sum(a * b + (b if bias else 0) for a, b in zip(sizes[:-1], sizes[1:]))
    return members * per_member


class CollegialEnsemble(nn.Module):
    """m NTK-parameterised MLPs with output F(x) = (1/√m) Σ_j f_j(x).

    Member j is exactly ``NTKMLP(sizes, activation=..., sigma_w=..., sigma_b=...)`` with the weights
    ``weights[l][j]`` (and ``biases[l][j]``): see :meth:`member` and :meth:`from_members`.

    Args:
        sizes: input, hidden and output widths of every member (e.g. ``[8, 16, 16, 16, 1]``).
        members: m, the number of members (m = 1 is the plain NTKMLP).
        activation: a name from :data:`~hild.models.mlp.ACTIVATIONS`.
        sigma_w, sigma_b: as for :class:`~hild.models.NTKMLP` (one value or one per layer).

    Input (B, d) → output (B, O); :meth:`member_outputs` gives the members' own outputs (m, B, O).
    """

    def __init__(self, sizes: Sequence[int], members: int, *, activation: str = "relu",
                 sigma_w: float | Sequence[float] = 1.0, sigma_b: float | Sequence[float] = 0.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must be at least two positive widths, got {sizes}")
        if int(members) < 1:
            raise ValueError(f"an ensemble needs at least one member, got members={members}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
        n_layers = len(sizes) - 1
        self.sizes = tuple(sizes)
        self.members = int(members)
        self.activation = activation
        self.sigma_w = _per_layer(sigma_w, n_layers, "sigma_w")
        self.sigma_b = _per_layer(sigma_b, n_layers, "sigma_b")
        if min(self.sigma_w) <= 0 or min(self.sigma_b) < 0:
            raise ValueError(f"need sigma_w > 0 and sigma_b >= 0, got {self.sigma_w} and {self.sigma_b}")
        kw = dict(device=device, dtype=dtype)
        # N(0, 1) entries; the σ/√fan_in scale is applied in forward (NTK parameterisation)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.randn(self.members, b, a, **kw)) for a, b in zip(sizes[:-1], sizes[1:])])
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.randn(self.members, b, **kw)) for b, sb in zip(sizes[1:], self.sigma_b) if sb > 0])
        self._act = ACTIVATIONS[activation]()

    @property
    def parameter_count(self) -> int:
        """Number of scalar parameters (all members)."""
        return sum(p.numel() for p in self.parameters())

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's output f_j(x), shape (m, B, O), for inputs x of shape (B, d)."""
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"CollegialEnsemble takes inputs (B, {self.sizes[0]}), got {tuple(x.shape)}")
        h = x.unsqueeze(0)  # (1, B, d), broadcast over the members
        biases = iter(self.biases)
        last = len(self.weights) - 1
        for layer, (w, sw, sb) in enumerate(zip(self.weights, self.sigma_w, self.sigma_b)):
            h = torch.matmul(h, w.transpose(1, 2)) * (sw / math.sqrt(w.shape[2]))  # (m, B, out)
            if sb > 0:
                h = h + sb * next(biases).unsqueeze(1)
            if layer < last:
                h = self._act(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_outputs(x).sum(0) / math.sqrt(self.members)

    # ------------------------------------------------------------------ members as plain MLPs

    def member(self, j: int) -> NTKMLP:
        """Member j as a stand-alone :class:`~hild.models.NTKMLP` holding a copy of its weights."""
        if not 0 <= j < self.members:
            raise IndexError(f"member {j} of an ensemble of {self.members}")
        w0 = self.weights[0]
        net = NTKMLP(self.sizes, activation=self.activation, sigma_w=self.sigma_w, sigma_b=self.sigma_b,
                     device=w0.device, dtype=w0.dtype)
        biases = iter(self.biases)
        with torch.no_grad():
            for lin, w, sb in zip(net.linears, self.weights, self.sigma_b):
                lin.weight.copy_(w[j])
                if sb > 0:
                    lin.bias.copy_(next(biases)[j])
        return net

    @classmethod
    def from_members(cls, nets: Sequence[NTKMLP]) -> "CollegialEnsemble":
        """The ensemble of the given NTKMLPs (same sizes, activation and scales), weights copied."""
        if not nets:
            raise ValueError("from_members needs at least one NTKMLP")
        first = nets[0]
        lins = first.linears
        kinds = [name for name, c in ACTIVATIONS.items() if any(type(m) is c for m in first)]
        if not kinds and len(first.sizes) > 2:
            raise ValueError("from_members supports the activations of hild.models.ACTIVATIONS only")
        act = kinds[0] if kinds else "identity"
        spec = (tuple(first.sizes), [lin.sigma_w for lin in lins], [lin.sigma_b for lin in lins])
        for k, net in enumerate(nets):
            other = (tuple(net.sizes), [lin.sigma_w for lin in net.linears], [lin.sigma_b for lin in net.linears])
            if other != spec:
                raise ValueError(f"member {k} has sizes/scales {other}, member 0 has {spec}: members must be identical")
        w0 = lins[0].weight
        ens = cls(first.sizes, len(nets), activation=act, sigma_w=spec[1], sigma_b=spec[2], device=w0.device,
                  dtype=w0.dtype)
        biases = list(ens.biases)
        with torch.no_grad():
            for layer, w in enumerate(ens.weights):
                w.copy_(torch.stack([net.linears[layer].weight for net in nets]))
            for b, layer in zip(biases, [i for i, sb in enumerate(spec[2]) if sb > 0]):
                b.copy_(torch.stack([net.linears[layer].bias for net in nets]))
        return ens

    # ------------------------------------------------------------------ the members' kernels

    def member_ntks(self, x1: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
        """The members' own empirical NTKs Θ_j(x1, x2), shape (m, N1, N2) (mean over outputs).

        Computed from one :func:`hild.ntk.jacobian` of the whole ensemble: ∂F/∂θ_j = ∂f_j/∂θ_j/√m,
        so Θ_j = m Σ_{θ_j} (∂F/∂θ_j)(∂F/∂θ_j)ᵀ, and their mean is ``ntk.empirical_ntk(self, x1, x2,
        output="mean")``.
        """
        j1 = ntk.jacobian(self, x1, flatten=False)
        j2 = j1 if x2 is None else ntk.jacobian(self, x2, flatten=False)
        m = self.members
        kernel = None
        for name, a in j1.items():
            b = j2[name]
            a = a.reshape(a.shape[0], a.shape[1], m, -1)  # (N1, O, m, P_j)
            b = b.reshape(b.shape[0], b.shape[1], m, -1)
            term = torch.einsum("aomp,bomp->mab", a, b)
            kernel = term if kernel is None else kernel + term
        assert kernel is not None
        return kernel * (m / a.shape[1])

    def extra_repr(self) -> str:
        return (f"sizes={list(self.sizes)}, members={self.members}, activation={self.activation!r}, "
                f"sigma_w={self.sigma_w}, sigma_b={self.sigma_b}")


def ensemble_ntk_samples(sizes: Sequence[int], members: int, inits: int, x1: torch.Tensor,
                         x2: torch.Tensor | None = None, *, max_params: float = 2e7, **kwargs) -> torch.Tensor:
    """The NTK of ``inits`` independently initialised ensembles of ``members`` members, (inits, N1, N2).

    Each ensemble's kernel is the mean of its members' kernels (exactly), so the ensembles are drawn
    in batches: one :class:`CollegialEnsemble` of r·m members per batch (at most ``max_params``
    parameters, at least one ensemble), whose :meth:`~CollegialEnsemble.member_ntks` are averaged in
    consecutive groups of m. Uses the global torch RNG, like any initialisation.

    Args:
        sizes: the members' sizes; members: m; inits: how many ensembles.
        x1, x2: inputs (N1, d), (N2, d), on the device and in the dtype the ensembles should use.
        kwargs: passed to :class:`CollegialEnsemble` (``activation``, ``sigma_w``, ``sigma_b``).
    """
    per_member = mlp_parameter_count(sizes) + sum(sizes[1:])  # biases, if any, are at most this
    batch = max(1, int(max_params // (per_member * members)))
    out, done = [], 0
    while done < inits:
        r = min(batch, inits - done)
        ens = CollegialEnsemble(sizes, r * members, device=x1.device, dtype=x1.dtype, **kwargs)
        k = ens.member_ntks(x1, x2)
        out.append(k.reshape(r, members, *k.shape[1:]).mean(1).detach())
        done += r
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------
# choosing width and multiplicity from the variance of the kernel
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VarianceModel:
    """Relative variance of an ensemble's NTK entry: Var(Θ)/E[Θ]² ≈ β(e^{α/n} − 1)/m.

    The finite-width correction of one member of width n grows like e^{α/n} (exponential in
    depth/width, Hanin and Nica 2020), and averaging m independent members divides the variance
    by m. For large n it is ≈ αβ/(n·m): only the product n·m matters.

    Attributes:
        alpha: the exponent's constant α (grows with depth).
        beta: the prefactor β.
    """

    alpha: float
    beta: float

    def __call__(self, n: float | np.ndarray, m: float | np.ndarray = 1) -> float | np.ndarray:
        return self.beta * np.expm1(self.alpha / np.asarray(n, dtype=float)) / np.asarray(m, dtype=float)


def fit_variance_model(widths: Sequence[float], rel_var: Sequence[float], *,
                       alphas: np.ndarray | None = None) -> VarianceModel:
    """Least-squares fit of log rel_var = log β + log(e^{α/n} − 1) to single networks (m = 1).

    For each α on a grid (default 2000 log-spaced values in [0.01, 1000]) the best log β is the mean
    residual; the α with the smallest squared error wins.

    Args:
        widths: the widths n (at least two distinct).
        rel_var: measured Var(Θ)/E[Θ]² at those widths (positive).
    """
    n = np.asarray(widths, dtype=float)
    r = np.asarray(rel_var, dtype=float)
    if n.shape != r.shape or len(np.unique(n)) < 2 or np.any(r <= 0) or np.any(n <= 0):
        raise ValueError("need positive widths (at least two distinct) and positive variances of the same length")
    grid = np.logspace(-2, 3, 2000) if alphas is None else np.asarray(alphas, dtype=float)
    shape = np.log(np.expm1(grid[:, None] / n[None, :]))  # (A, K)
    log_beta = (np.log(r)[None, :] - shape).mean(1)
    err = ((np.log(r)[None, :] - shape - log_beta[:, None]) ** 2).sum(1)
    best = int(np.argmin(err))
    return VarianceModel(alpha=float(grid[best]), beta=float(np.exp(log_beta[best])))


def primal_optimum(budget: int, d_in: int, depth: int, model: VarianceModel, *, d_out: int = 1,
                   widths: Sequence[int] | None = None) -> tuple[int, int, float]:
    """The paper's *primal* problem: the (n, m) with the smallest modelled variance within a budget.

    Each member is an MLP [d_in, n x depth, d_out] without biases; m is the largest multiplicity that
    fits ``budget`` parameters at width n. Searches every width in ``widths`` (default 1 .. the
    widest single network that fits).

    Returns:
        (n, m, modelled relative variance).
    """
    if widths is None:
        widths = [n for n in range(1, budget + 1)
                  if mlp_parameter_count([d_in] + [n] * depth + [d_out]) <= budget]
    best: tuple[int, int, float] | None = None
    for n in widths:
        m = budget // mlp_parameter_count([d_in] + [int(n)] * depth + [d_out])
        if m < 1:
            continue
        v = float(model(n, m))
        if best is None or v < best[2]:
            best = (int(n), int(m), v)
    if best is None:
        raise ValueError(f"no member of the given widths fits a budget of {budget} parameters")
    return best
