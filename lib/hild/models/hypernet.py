"""Hypernetworks and their infinite-width kernel, the hyperkernel (Littwin, Galanti, Wolf and Yang 2020).

A hypernetwork computes h(x, z) = g(z; f(x)): a *meta-network* f maps the input x to **all** the
weights w = f(x) of a *primary network* g, which is then applied to a second input z. Only f has
trainable parameters. Here both are ReLU MLPs in the NTK parameterisation without biases:

    f = NTKMLP([d_x, n_f, ..., n_f, P])                      (``meta_depth`` hidden layers)
    g(z; w): u¹ = (σ_g/√d_z) W¹ z,  u^{l+1} = (σ_g/√n_g) W^{l+1} relu(u^l),  g = u^{H+1}

with H = ``primary_depth`` hidden layers of width n_g and P the number of entries of all W^l.

**The hyperkernel.** The NTK of h with respect to f's parameters is, by the chain rule,
Θ^h = Σ_{k,k'} ∂g/∂w_k(z; w(x)) Θ^f_{kk'}(x, x') ∂g/∂w_{k'}(z'; w(x')). As n_f → ∞ the meta
network's output NTK becomes Θ^f(x, x')·δ_{kk'} and its outputs become independent Gaussian
processes with covariance Σ^f(x, x') (its NNGP), so the primary weights used at x and at x' are
*correlated* copies of each other. As n_g → ∞ the primary factor then becomes an NTK-like recursion
in which every layer's covariance carries a factor Σ^f(x, x'):

    q¹ = σ_g² Σ^f(x,x') zᵀz'/d_z,     q^{l+1} = σ_g² Σ^f(x,x') E[relu(u) relu(v)],   (u, v) ~ N(0, q^l)
    D^{H+1} = 1,                       D^l = σ_g² Σ^f(x,x') E[relu'(u) relu'(v)] D^{l+1}
    Θ^g_corr = Σ_{l=1}^{H+1} σ_g² F^{l−1} D^l,   F⁰ = zᵀz'/d_z,  F^l = E[relu(u) relu(v)] under q^l

(the diagonal entries use Σ^f(x, x) and Σ^f(x', x')). The hyperkernel is Θ^h = Θ^f(x, x')·Θ^g_corr
and the hypernetwork's NNGP is q^{H+1}. With Σ^f ≡ 1 the recursion is the ordinary NTK of g, and
Θ^f·Θ^g is the "naive" product of two standard kernels, which is not the hypernetwork's kernel.

Reference: E. Littwin, T. Galanti, L. Wolf, G. Yang, *On Infinite-Width Hypernetworks*, NeurIPS 2020
(arXiv 2003.12193); D. Ha, A. Dai, Q. Le, *HyperNetworks*, ICLR 2017.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import ntk
from .ntk import NTKMLP

__all__ = ["Hypernetwork", "hyperkernel", "primary_correlated_ntk"]

Tensor = torch.Tensor


class Hypernetwork(nn.Module):
    """h(x, z) = g(z; f(x)) with a ReLU meta-network f that outputs every weight of a ReLU primary g.

    The input is one tensor ``xz`` = cat([x, z], dim=1) of shape (B, d_x + d_z) (so that
    :mod:`hild.ntk` treats the model like any other); the output is (B, 1).

    Args:
        d_x: meta-network input size; d_z: primary-network input size.
        meta_width: n_f, the meta-network's hidden width; primary_width: n_g.
        meta_depth, primary_depth: numbers of hidden layers of f and g (≥ 1).
        meta_sigma: σ_w of the meta-network's layers; primary_sigma: σ_g of the primary's layers.

    Attributes:
        meta: the meta-network, an :class:`~hild.models.NTKMLP` with P outputs.
        primary_shapes: the (out, in) shape of each primary weight matrix, in order.
    """

    def __init__(self, d_x: int, d_z: int, meta_width: int, primary_width: int, *, meta_depth: int = 1,
                 primary_depth: int = 1, meta_sigma: float = 1.0, primary_sigma: float = 1.0,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        if min(d_x, d_z, meta_width, primary_width, meta_depth, primary_depth) < 1:
            raise ValueError("sizes and depths must be positive")
        self.d_x, self.d_z = int(d_x), int(d_z)
        self.meta_depth, self.primary_depth = int(meta_depth), int(primary_depth)
        self.meta_sigma, self.primary_sigma = float(meta_sigma), float(primary_sigma)
        widths = [self.d_z] + [int(primary_width)] * self.primary_depth + [1]
        self.primary_shapes = [(b, a) for a, b in zip(widths[:-1], widths[1:])]
        self.n_primary = sum(a * b for a, b in self.primary_shapes)
        self.meta = NTKMLP([self.d_x] + [int(meta_width)] * self.meta_depth + [self.n_primary],
                           sigma_w=meta_sigma, device=device, dtype=dtype)

    def split(self, xz: Tensor) -> tuple[Tensor, Tensor]:
        """(x, z) from the joined input (B, d_x + d_z)."""
        if xz.ndim != 2 or xz.shape[1] != self.d_x + self.d_z:
            raise ValueError(f"Hypernetwork takes inputs cat([x, z], 1) of shape (B, {self.d_x + self.d_z}), "
                             f"got {tuple(xz.shape)}")
        return xz[:, : self.d_x], xz[:, self.d_x:]

    @staticmethod
    def join(x: Tensor, z: Tensor) -> Tensor:
        """The joined input cat([x, z], 1) for x (B, d_x) and z (B, d_z)."""
        return torch.cat([x, z], dim=1)

    def unflatten(self, w: Tensor) -> list[Tensor]:
        """Per-example primary weight matrices [(B, out, in), ...] from the meta outputs (B, P)."""
        mats, start = [], 0
        for out, inp in self.primary_shapes:
            mats.append(w[:, start:start + out * inp].reshape(-1, out, inp))
            start += out * inp
        return mats

    def primary(self, z: Tensor, w: Tensor) -> Tensor:
        """g(z_i; w_i) for each example: z (B, d_z), flat primary weights w (B, P) → (B, 1)."""
        h = z
        mats = self.unflatten(w)
        for layer, mat in enumerate(mats):
            h = torch.einsum("boi,bi->bo", mat, h) * (self.primary_sigma / math.sqrt(mat.shape[2]))
            if layer < len(mats) - 1:
                h = torch.relu(h)
        return h

    def _meta_pass(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """The meta-network's layer inputs a_{l−1} and pre-activations u_l; u_last = f(x).

        The same function as ``self.meta(x)``, with each layer's σ/√fan_in applied to its (B, out)
        output rather than to its (out, in) weight: with P·n_f meta weights and a small batch
        that saves a pass over the largest matrix in the forward and in the backward pass.
        """
        inputs, pre = [], []
        a = x
        lins = self.meta.linears
        for i, lin in enumerate(lins):
            inputs.append(a)
            u = F.linear(a, lin.weight) * (lin.sigma_w / math.sqrt(lin.in_features))
            if lin.bias is not None:
                u = u + lin.sigma_b * lin.bias
            pre.append(u)
            a = torch.relu(u) if i < len(lins) - 1 else u
        return inputs, pre

    def forward(self, xz: Tensor) -> Tensor:
        x, z = self.split(xz)
        return self.primary(z, self._meta_pass(x)[1][-1])

    # ------------------------------------------------------------------ kernels

    def ntk(self, xz1: Tensor, xz2: Tensor | None = None) -> Tensor:
        """The empirical NTK Θ^h(xz1, xz2) (N1, N2) at the current weights, in closed form.

        Θ^h = ⟨∇_θ (G₁·f(x₁)), ∇_θ (G₂·f(x₂))⟩ with G = ∂g/∂w at w = f(x) held fixed. The meta
        network is an MLP, so this splits by layer into (forward inner products) x (backward inner
        products), Σ_l (σ²/fan_in) ⟨a_{l−1}, a'_{l−1}⟩⟨δ_l, δ'_l⟩: no Jacobian of the P·n_f meta
        weights is ever formed, so widths of thousands fit in memory. Equals
        ``hild.ntk.empirical_ntk(self, xz1, xz2)`` (tested to float64 precision).
        """
        with torch.no_grad():
            f1 = self._layer_signals(xz1)
            f2 = f1 if xz2 is None else self._layer_signals(xz2)
            kernel = None
            for (a1, d1, scale, sb), (a2, d2, _, _) in zip(f1, f2):
                back = d1 @ d2.T
                term = scale * (a1 @ a2.T) * back + (sb**2 * back if sb > 0 else 0)
                kernel = term if kernel is None else kernel + term
        assert kernel is not None
        return kernel

    def _layer_signals(self, xz: Tensor) -> list[tuple[Tensor, Tensor, float, float]]:
        """Per meta layer: (its input a_{l−1}, the backward signal δ_l = ∂(G·f)/∂u_l, σ²/fan_in, σ_b)."""
        x, z = self.split(xz)
        lins = self.meta.linears
        inputs, pre = self._meta_pass(x)
        w = pre[-1].detach().requires_grad_(True)
        with torch.enable_grad():
            (G,) = torch.autograd.grad(self.primary(z, w).sum(), w)  # row i: ∂g(z_i; w_i)/∂w_i
        out = []
        delta = G
        for i in reversed(range(len(lins))):
            lin = lins[i]
            out.append((inputs[i], delta, lin.sigma_w**2 / lin.in_features, lin.sigma_b))
            if i > 0:
                scale = lin.sigma_w / math.sqrt(lin.in_features)
                delta = (delta @ lin.weight) * scale * (pre[i - 1] > 0).to(delta.dtype)
        return out[::-1]

    def hyperkernel(self, xz1: Tensor, xz2: Tensor | None = None) -> ntk.ReluKernels:
        """The infinite-width kernels of this architecture (see :func:`hyperkernel`)."""
        x1, z1 = self.split(xz1)
        x2, z2 = (None, None) if xz2 is None else self.split(xz2)
        return hyperkernel(x1, z1, x2, z2, meta_depth=self.meta_depth, primary_depth=self.primary_depth,
                           meta_sigma=self.meta_sigma, primary_sigma=self.primary_sigma)

    def extra_repr(self) -> str:
        return (f"d_x={self.d_x}, d_z={self.d_z}, primary_shapes={self.primary_shapes}, "
                f"meta_sigma={self.meta_sigma:g}, primary_sigma={self.primary_sigma:g}")


def _diag_nngp(x: Tensor, *, depth: int, sigma_w: float) -> Tensor:
    """Σ^f(x_i, x_i) of a ReLU MLP without biases: σ_w²‖x‖²/d, then halved and scaled by σ_w² per layer."""
    s = sigma_w**2 * (x * x).sum(1) / x.shape[1]
    for _ in range(depth):
        s = sigma_w**2 * s / 2
    return s


def primary_correlated_ntk(z1: Tensor, z2: Tensor, s12: Tensor, s11: Tensor, s22: Tensor, *, depth: int,
                           sigma: float = 1.0) -> ntk.ReluKernels:
    """The primary network's infinite-width kernels when its weights at the two inputs are correlated.

    The weights used for z1[i] and for z2[j] are jointly Gaussian, entrywise independent, with
    variances s11[i], s22[j] and covariance s12[i, j] (for a hypernetwork: the meta-network's NNGP
    Σ^f at (x_i, x'_j)). With s ≡ 1 these are the ordinary NNGP and NTK of the ReLU MLP g
    (``hild.ntk.relu_kernels(z1, z2, depth=depth, sigma_w=sigma)``).

    Args:
        z1: (N1, d_z); z2: (N2, d_z). s12: (N1, N2); s11: (N1,); s22: (N2,).
        depth: H, the primary network's number of hidden layers; sigma: its σ_g.

    Returns:
        :class:`hild.ntk.ReluKernels` with ``nngp`` = q^{H+1} and ``ntk`` = Θ^g_corr, both (N1, N2).
    """
    d = z1.shape[1]
    w2 = sigma**2
    f12 = z1 @ z2.T / d  # F⁰: the forward inner product that the first layer's weight gradient sees
    q12 = w2 * s12 * f12
    q11 = (w2 * s11 * (z1 * z1).sum(1) / d)[:, None]
    q22 = (w2 * s22 * (z2 * z2).sum(1) / d)[None, :]
    forwards, slopes = [f12], []
    for _ in range(depth):
        k1, k0 = ntk.relu_expectations(q11, q22, q12)
        forwards.append(k1)
        slopes.append(k0)
        q12 = w2 * s12 * k1
        q11 = w2 * s11[:, None] * q11 / 2  # E[relu(u)²] = q/2
        q22 = w2 * s22[None, :] * q22 / 2
    back = torch.ones_like(q12)  # D^{H+1}: the output's derivative with respect to itself
    kernel = w2 * forwards[depth] * back
    for layer in reversed(range(depth)):
        # one layer down: the backward pass meets the weights W^{l+1}(x) and W^{l+1}(x'), covariance s12
        back = w2 * s12 * slopes[layer] * back
        kernel = kernel + w2 * forwards[layer] * back
    return ntk.ReluKernels(nngp=q12, ntk=kernel)


def hyperkernel(x1: Tensor, z1: Tensor, x2: Tensor | None = None, z2: Tensor | None = None, *,
                meta_depth: int = 1, primary_depth: int = 1, meta_sigma: float = 1.0,
                primary_sigma: float = 1.0) -> ntk.ReluKernels:
    """The NNGP and NTK (the hyperkernel) of :class:`Hypernetwork` as n_f → ∞ and then n_g → ∞.

    Θ^h((x, z), (x', z')) = Θ^f(x, x') · Θ^g_corr(z, z'; Σ^f), with Θ^f, Σ^f the meta-network's NTK
    and NNGP (:func:`hild.ntk.relu_kernels`) and Θ^g_corr the primary network's NTK with weights
    correlated through Σ^f (:func:`primary_correlated_ntk`); the NNGP is the primary recursion's
    last covariance.

    Args:
        x1: meta inputs (N1, d_x); z1: primary inputs (N1, d_z); x2, z2: the second set (default the first).
        meta_depth, primary_depth, meta_sigma, primary_sigma: as for :class:`Hypernetwork`.

    Returns:
        :class:`hild.ntk.ReluKernels` (nngp, ntk), each (N1, N2).
    """
    if (x2 is None) != (z2 is None):
        raise ValueError("pass both x2 and z2, or neither")
    if len(x1) != len(z1) or (x2 is not None and len(x2) != len(z2)):
        raise ValueError("x and z must have one row per example")
    x2_, z2_ = (x1, z1) if x2 is None else (x2, z2)
    meta = ntk.relu_kernels(x1, x2_, depth=meta_depth, sigma_w=meta_sigma)
    s11 = _diag_nngp(x1, depth=meta_depth, sigma_w=meta_sigma)
    s22 = _diag_nngp(x2_, depth=meta_depth, sigma_w=meta_sigma)
    prim = primary_correlated_ntk(z1, z2_, meta.nngp, s11, s22, depth=primary_depth, sigma=primary_sigma)
    return ntk.ReluKernels(nngp=prim.nngp, ntk=meta.ntk * prim.ntk)
