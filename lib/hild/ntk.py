"""Neural tangent kernels: empirical, analytic, and the dynamics they predict.

The NTK of a model f(x; θ) with outputs in R^O is Θ(x, x') = J(x) J(x')ᵀ, J(x) = ∂f(x; θ)/∂θ
(Jacot, Gabriel and Hongler 2018). Gradient descent with step η on the loss ½Σᵢ‖f(xᵢ) − yᵢ‖²
moves the outputs by f ← f − η Θ (f − y) to first order; at infinite width in the NTK
parameterisation Θ stays at its deterministic initial value, so training is kernel gradient descent
(Lee et al. 2019), whose square-loss solution is closed form.

================================  ==================================================================
``jacobian(model, x)``            per-example Jacobians ∂f(xᵢ)/∂θ, (N, O, P), ``torch.func``, chunked
``per_example_grads(model, x, y)``  per-example gradients of a loss, (N, P)
``empirical_ntk(model, x1, x2)``  J(x1) J(x2)ᵀ, (N1, N2, O, O) or the output-mean (N1, N2), chunked
                                  to a memory limit, on the model's device
``relu_kernels(x1, x2, depth)``   analytic NNGP and NTK of a deep ReLU MLP in NTK parameterisation
                                  (arc-cosine recursions; :class:`hild.models.NTKMLP` is that net)
``relu_rnn_kernels(x1, x2)``      the same for the ReLU Elman RNN :class:`hild.models.NTKRNN`
``linearize(model)``              the model's first-order Taylor expansion around its current weights
``kernel_flow`` / ``kernel_gd``   closed-form square-loss dynamics under gradient flow / GD
``kernel_regression``             their t → ∞ limit (with an optional ridge)
``train_centred(model, x, y)``    full-batch GD on the centred, α-scaled model (the setting the kernel
                                  dynamics describe), recording its outputs
``train_bottleneck(head, z0, Θ)``  GD on head(g(x)) with g infinitely wide, simulated in function space
                                  through its NTK (a finite bottleneck in an infinite network)
================================  ==================================================================

References: Jacot et al., NeurIPS 2018 (the NTK and its recursion); Arora et al., NeurIPS 2019 and
Cho and Saul, NeurIPS 2009 (the ReLU arc-cosine expectations); Lee et al., NeurIPS 2019 (the
linearised model and the closed-form dynamics); the ``neural-tangents`` library (conventions:
``W_std`` = σ_w, ``b_std`` = σ_b, output-axis mean for ``trace_axes``).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.func import functional_call, grad, jacrev, jvp, vmap

from . import config

__all__ = [
    "jacobian",
    "per_example_grads",
    "empirical_ntk",
    "memory_limit",
    "ReluKernels",
    "relu_kernels",
    "relu_ntk",
    "relu_nngp",
    "relu_expectations",
    "relu_rnn_kernels",
    "LinearizedModel",
    "linearize",
    "KernelPrediction",
    "kernel_flow",
    "kernel_gd",
    "kernel_regression",
    "CentredRun",
    "train_centred",
    "BottleneckRun",
    "train_bottleneck",
]

Tensor = torch.Tensor
Params = Mapping[str, Tensor] | Iterable[str] | None

# ----------------------------------------------------------------------------------------------
# input checks, in one place
# ----------------------------------------------------------------------------------------------


def _check_model(model: nn.Module) -> None:
    """Per-example quantities need each example's output to depend on that example only."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ValueError(
                f"model has BatchNorm in train mode ({name or type(m).__name__}): its output for one "
                f"example depends on the rest of the batch, so per-example Jacobians and the NTK are not "
                f"defined. Call model.eval() first (BatchNorm then uses its running statistics)."
            )
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0:
            raise ValueError(
                f"model has Dropout in train mode ({name or type(m).__name__}): the NTK of a random "
                f"function is not defined. Call model.eval() first."
            )


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _check_input(model: nn.Module, x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a tensor of shape (N, ...), got {type(x).__name__}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must have a non-empty batch dimension, got shape {tuple(x.shape)}")
    dev = _model_device(model)
    if x.device != dev:
        raise ValueError(f"{name} is on {x.device} but the model is on {dev}: move one of them (x.to({str(dev)!r}))")


def _select_params(model: nn.Module, params: Params) -> dict[str, Tensor]:
    """The parameters to differentiate: all that require grad, the named ones, or given values."""
    named = dict(model.named_parameters())
    if params is None:
        chosen = {k: v.detach() for k, v in named.items() if v.requires_grad}
    elif isinstance(params, Mapping):
        unknown = sorted(set(params) - set(named))
        if unknown:
            raise ValueError(f"params {unknown} are not parameters of the model: it has {sorted(named)}")
        chosen = {k: v.detach() for k, v in params.items()}
    else:
        names = list(params)
        unknown = sorted(set(names) - set(named))
        if unknown:
            raise ValueError(f"params {unknown} are not parameters of the model: it has {sorted(named)}")
        chosen = {k: named[k].detach() for k in names}
    if not chosen:
        raise ValueError("no parameters to differentiate: the model has none that require grad")
    return chosen


def memory_limit(device: torch.device | str) -> int:
    """Default memory budget in bytes for a kernel computation on ``device``.

    Half of the free memory of a GPU; a quarter of the available RAM on a CPU (2 GiB if unknown).
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.5 * free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 4
    except OSError:
        pass
    return 2 * 2**30


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


# ----------------------------------------------------------------------------------------------
# per-example Jacobians and gradients (torch.func)
# ----------------------------------------------------------------------------------------------


def _output_fn(model: nn.Module, params: Mapping[str, Tensor]) -> Callable[[dict[str, Tensor], Tensor], Tensor]:
    """f(p, xᵢ) for ONE example, flattened to (O,): the function ``vmap`` maps over examples."""

    def f(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        out = functional_call(model, p, (xi.unsqueeze(0),), strict=False)
        return out.reshape(-1)

    return f


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _jac_chunk(model: nn.Module, params: dict[str, Tensor], x: Tensor) -> dict[str, Tensor]:
    """{name: (c, O, *param.shape)} for the examples in x."""
    return vmap(jacrev(_output_fn(model, params)), in_dims=(None, 0))(params, x)


def _out_dim(model: nn.Module, x: Tensor) -> int:
    with torch.no_grad():
        return int(model(x[:1]).reshape(-1).numel())


def _auto_chunk(n_params: int, n_out: int, itemsize: int, budget: float) -> int:
    # a vmapped jacrev holds the Jacobian block and about as much again in intermediates
    per_example = 3.0 * n_params * n_out * itemsize
    return max(1, int(budget // per_example))


def jacobian(model: nn.Module, x: Tensor, *, params: Params = None, chunk_size: int | None = None,
             flatten: bool = True) -> Tensor | dict[str, Tensor]:
    """Per-example Jacobians of the model's outputs with respect to its parameters.

    Args:
        model: any module mapping a batch (N, ...) to outputs (N, ...) example by example.
        x: inputs (N, ...), on the model's device.
        params: which parameters: all that require grad (default), an iterable of names, or a
            mapping name → tensor to evaluate the Jacobian at other values of those parameters.
        chunk_size: examples per vectorised call (default: as many as fit a quarter of
            :func:`memory_limit`).
        flatten: return one (N, O, P) tensor (parameters in ``named_parameters`` order, each
            flattened) instead of a dict name → (N, O, *shape).

    Returns:
        (N, O, P) with O the number of outputs per example (all output dims flattened), or a dict.
    """
    _check_model(model)
    _check_input(model, x, "x")
    p = _select_params(model, params)
    n_params = sum(v.numel() for v in p.values())
    n_out = _out_dim(model, x)
    if chunk_size is None:
        chunk_size = _auto_chunk(n_params, n_out, x.element_size(), memory_limit(x.device) / 4)
    blocks = [_jac_chunk(model, p, x[s]) for s in _chunks(len(x), chunk_size)]
    out = {k: torch.cat([b[k] for b in blocks]) for k in p}
    if not flatten:
        return out
    return torch.cat([v.reshape(len(x), n_out, -1) for v in out.values()], dim=2)


def per_example_grads(model: nn.Module, x: Tensor, y: Tensor | None = None, *,
                      loss: Callable[[Tensor, Tensor], Tensor] | None = None, params: Params = None,
                      chunk_size: int | None = None, flatten: bool = True) -> Tensor | dict[str, Tensor]:
    """Gradients of a per-example loss, one row per example (``torch.func.vmap`` of ``grad``).

    Args:
        model: as for :func:`jacobian`.
        x: inputs (N, ...); y: targets (N, ...) or None.
        loss: ``loss(output, target)`` for ONE example, called with a batch dimension of 1 (so
            ``F.cross_entropy`` works as is) and returning a scalar. Without a loss the model's
            output must be one number per example and its gradient is returned.
        params, chunk_size, flatten: as for :func:`jacobian`.

    Returns:
        (N, P) gradients, or a dict name → (N, *shape).
    """
    _check_model(model)
    _check_input(model, x, "x")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    p = _select_params(model, params)
    n_params = sum(v.numel() for v in p.values())
    if loss is None and _out_dim(model, x) != 1:
        raise ValueError("without a loss the model must output one number per example; pass loss=... "
                         "or use jacobian() for vector outputs")

    def scalar(pp: dict[str, Tensor], xi: Tensor, yi: Tensor | None) -> Tensor:
        out = functional_call(model, pp, (xi.unsqueeze(0),), strict=False)
        if loss is None:
            return out.reshape(())
        return loss(out, yi.unsqueeze(0)).reshape(())

    if chunk_size is None:
        chunk_size = _auto_chunk(n_params, 1, x.element_size(), memory_limit(x.device) / 4)
    g = vmap(grad(scalar), in_dims=(None, 0, None if y is None else 0))
    blocks = [g(p, x[s], None if y is None else y[s]) for s in _chunks(len(x), chunk_size)]
    out = {k: torch.cat([b[k] for b in blocks]) for k in p}
    if not flatten:
        return out
    return torch.cat([v.reshape(len(x), -1) for v in out.values()], dim=1)


# ----------------------------------------------------------------------------------------------
# the empirical NTK
# ----------------------------------------------------------------------------------------------


def _contract(j1: Mapping[str, Tensor], j2: Mapping[str, Tensor], output: str) -> Tensor:
    """Σ over parameters of J1 J2ᵀ, one parameter tensor at a time (no concatenated copy)."""
    k = None
    for name, a in j1.items():
        a = a.reshape(a.shape[0], a.shape[1], -1)  # (N, O, P_name), also for 0-d parameters
        b = j2[name]
        b = b.reshape(b.shape[0], b.shape[1], -1)
        if output == "full":
            term = torch.einsum("aop,bqp->aboq", a, b)
        else:
            term = torch.einsum("aop,bop->ab", a, b)
        k = term if k is None else k + term
    assert k is not None
    return k if output == "full" else k / next(iter(j1.values())).shape[1]


def empirical_ntk(model: nn.Module, x1: Tensor, x2: Tensor | None = None, *,
                  output: Literal["full", "mean"] = "full", params: Params = None,
                  chunk_size: int | None = None, max_memory: float | None = None) -> Tensor:
    """The empirical NTK Θ(x1, x2) = J(x1) J(x2)ᵀ of a model at its current weights.

    The Jacobians are computed with ``torch.func`` (``vmap`` over examples of ``jacrev``), on the
    model's device and in its dtype. If the Jacobians of all points fit the memory budget they
    are computed once; otherwise the kernel is filled block by block, recomputing the Jacobians
    of ``x2``'s blocks for each block of ``x1`` (a symmetric kernel fills its upper triangle
    only).

    Args:
        model: any module mapping (N, ...) → (N, ...) example by example. BatchNorm or Dropout in
            train mode is refused (call ``model.eval()``).
        x1: inputs (N1, ...). x2: inputs (N2, ...); default ``x1`` (the symmetric kernel).
        output: ``"full"`` gives (N1, N2, O, O) with O the number of outputs per example;
            ``"mean"`` gives (N1, N2), the mean over outputs of Θ(x1, x2)_oo (the estimator of the
            scalar kernel when Θ → scalar ⊗ I at infinite width; neural-tangents' ``trace_axes``).
            A model with one output gives (N1, N2) either way.
        params: which parameters (as for :func:`jacobian`).
        chunk_size: examples per Jacobian block (default: chosen from the memory budget).
        max_memory: the budget in bytes (default :func:`memory_limit` of the model's device).

    Returns:
        The kernel as a tensor on the model's device.

    Raises:
        ValueError: the kernel itself, or one example's Jacobian, does not fit the budget; the
            message says how to compute it in pieces.
    """
    _check_model(model)
    _check_input(model, x1, "x1")
    symmetric = x2 is None
    if x2 is None:
        x2 = x1
    else:
        _check_input(model, x2, "x2")
    if output not in ("full", "mean"):
        raise ValueError(f"output must be 'full' or 'mean', got {output!r}")
    p = _select_params(model, params)
    n1, n2 = len(x1), len(x2)
    n_out = _out_dim(model, x1)
    n_params = sum(v.numel() for v in p.values())
    itemsize = x1.element_size() if x1.is_floating_point() else next(iter(p.values())).element_size()
    budget = float(max_memory if max_memory is not None else memory_limit(x1.device))
    if n_out == 1:
        output = "mean"
    kernel_bytes = n1 * n2 * (n_out * n_out if output == "full" else 1) * itemsize
    if kernel_bytes > 0.5 * budget:
        shape = f"({n1}, {n2}, {n_out}, {n_out})" if output == "full" else f"({n1}, {n2})"
        rows = max(1, int(0.5 * budget // (n2 * (n_out * n_out if output == 'full' else 1) * itemsize)))
        hint = "pass output='mean' for the (N1, N2) output-mean kernel, or " if output == "full" else ""
        raise ValueError(
            f"the kernel {shape} needs {_gib(kernel_bytes)}, more than half of the memory budget "
            f"{_gib(budget)}: {hint}compute it in row blocks, e.g. "
            f"torch.cat([empirical_ntk(model, x1[i:i + {rows}], x2) for i in range(0, len(x1), {rows})]), "
            f"or raise max_memory."
        )
    left = budget - kernel_bytes
    per_example = 3.0 * n_params * n_out * itemsize
    if per_example > left:
        raise ValueError(
            f"one example's Jacobian ({n_out} outputs x {n_params:,} parameters) needs about "
            f"{_gib(per_example)} with intermediates, more than the {_gib(left)} left in the budget: "
            f"restrict the parameters (params=[names]), reduce the outputs, or raise max_memory."
        )
    if chunk_size is None:
        chunk_size = _auto_chunk(n_params, n_out, itemsize, left / 2)
    elif chunk_size * per_example > left:
        raise ValueError(
            f"chunk_size={chunk_size} needs about {_gib(chunk_size * per_example)} for its Jacobian blocks, "
            f"more than the {_gib(left)} left in the budget: use chunk_size <= {max(1, int(left // per_example))}."
        )
    all_fit = (n1 + (0 if symmetric else n2)) * n_out * n_params * itemsize <= left / 3
    rows1, rows2 = _chunks(n1, chunk_size), _chunks(n2, chunk_size)
    if all_fit:
        j1 = [_jac_chunk(model, p, x1[s]) for s in rows1]
        j1 = {k: torch.cat([b[k] for b in j1]) for k in p}
        if symmetric:
            j2 = j1
        else:
            j2 = [_jac_chunk(model, p, x2[s]) for s in rows2]
            j2 = {k: torch.cat([b[k] for b in j2]) for k in p}
        return _contract(j1, j2, output)
    shape = (n1, n2, n_out, n_out) if output == "full" else (n1, n2)
    kernel = torch.empty(shape, dtype=next(iter(p.values())).dtype, device=x1.device)
    for bi, s1 in enumerate(rows1):
        j1 = _jac_chunk(model, p, x1[s1])
        for bj, s2 in enumerate(rows2):
            if symmetric and bj < bi:
                continue
            j2 = j1 if (symmetric and bi == bj) else _jac_chunk(model, p, x2[s2])
            block = _contract(j1, j2, output)
            kernel[s1, s2] = block
            if symmetric and bj > bi:
                kernel[s2, s1] = block.transpose(0, 1).transpose(2, 3) if output == "full" else block.T
    return kernel


# ----------------------------------------------------------------------------------------------
# analytic kernels of deep ReLU MLPs in NTK parameterisation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReluKernels:
    """The infinite-width kernels of a ReLU MLP in NTK parameterisation.

    Attributes:
        nngp: Σ(x1, x2) = E[f(x1) f(x2)] for one output at initialisation (the NNGP kernel), (N1, N2).
        ntk: Θ(x1, x2), the deterministic limit of the empirical NTK of one output, (N1, N2).
    """

    nngp: Tensor
    ntk: Tensor


def relu_expectations(s11: Tensor, s22: Tensor, s12: Tensor) -> tuple[Tensor, Tensor]:
    """E[relu(u) relu(v)] and E[relu'(u) relu'(v)] for (u, v) ~ N(0, [[s11, s12], [s12, s22]]).

    The arc-cosine kernels of degree 1 and 0 (Cho and Saul 2009): with cos φ = s12/√(s11 s22),
    E[relu(u) relu(v)] = √(s11 s22) (sin φ + (π − φ) cos φ)/(2π) and E[relu'(u) relu'(v)] = (π − φ)/(2π).
    Shapes broadcast (s11 as (N1, 1), s22 as (1, N2), s12 as (N1, N2)).
    """
    norm = torch.sqrt(s11 * s22).clamp_min(torch.finfo(s12.dtype).tiny)
    cos = (s12 / norm).clamp(-1.0, 1.0)
    phi = torch.arccos(cos)
    sin = torch.sqrt((1 - cos * cos).clamp_min(0.0))
    k1 = norm * (sin + (math.pi - phi) * cos) / (2 * math.pi)
    k0 = (math.pi - phi) / (2 * math.pi)
    return k1, k0


def relu_kernels(x1: Tensor, x2: Tensor | None = None, *, depth: int,
                 sigma_w: float | Sequence[float] = 1.0, sigma_b: float | Sequence[float] = 0.0) -> ReluKernels:
    """NNGP and NTK of ``NTKMLP([d, n, ..., n, O])`` (``depth`` hidden ReLU layers) as n → ∞.

    The recursion (Jacot et al. 2018, Lee et al. 2019), with layers
    h¹ = (σ_w/√d) W¹ x + σ_b b¹ and h^{l+1} = (σ_w/√n) W^{l+1} relu(h^l) + σ_b b^{l+1}:

        Σ¹(x, x') = σ_w² xᵀx'/d + σ_b²,                    Θ¹ = Σ¹,
        Σ^{l+1} = σ_w² E[relu(u) relu(v)] + σ_b²,          Θ^{l+1} = Σ^{l+1} + σ_w² E[relu'(u) relu'(v)] Θ^l,

    with (u, v) ~ N(0, Σ^l restricted to {x, x'}); the network's kernels are Σ^{L+1} and Θ^{L+1}.

    Args:
        x1: inputs (N1, d); x2: inputs (N2, d), default ``x1``. Use float64 for exact comparisons.
        depth: L, the number of hidden layers (≥ 1).
        sigma_w: σ_w of every layer, or one per layer (L + 1 values).
        sigma_b: σ_b of every layer, or one per layer (0: no biases).

    Returns:
        :class:`ReluKernels` with ``nngp`` and ``ntk`` of shape (N1, N2).
    """
    if depth < 1:
        raise ValueError(f"depth is the number of hidden layers and must be >= 1, got {depth}")
    if x1.ndim != 2 or (x2 is not None and (x2.ndim != 2 or x2.shape[1] != x1.shape[1])):
        raise ValueError(f"inputs must be (N, d) with the same d, got {tuple(x1.shape)} and "
                         f"{None if x2 is None else tuple(x2.shape)}")
    x2_ = x1 if x2 is None else x2
    sw = _per_layer(sigma_w, depth + 1, "sigma_w")
    sb = _per_layer(sigma_b, depth + 1, "sigma_b")
    d = x1.shape[1]
    s12 = sw[0] ** 2 * (x1 @ x2_.T) / d + sb[0] ** 2
    s11 = (sw[0] ** 2 * (x1 * x1).sum(1) / d + sb[0] ** 2)[:, None]
    s22 = (sw[0] ** 2 * (x2_ * x2_).sum(1) / d + sb[0] ** 2)[None, :]
    ntk = s12
    for layer in range(1, depth + 1):
        k1, k0 = relu_expectations(s11, s22, s12)
        w2, b2 = sw[layer] ** 2, sb[layer] ** 2
        s12 = w2 * k1 + b2
        ntk = s12 + w2 * k0 * ntk
        s11 = w2 * s11 / 2 + b2  # E[relu(u)²] = s/2
        s22 = w2 * s22 / 2 + b2
    return ReluKernels(nngp=s12, ntk=ntk)


def relu_rnn_kernels(x1: Tensor, x2: Tensor | None = None, *, sigma_w: float = 1.0, sigma_u: float = 1.0,
                     sigma_v: float = 1.0) -> ReluKernels:
    """NNGP and NTK of the ReLU Elman RNN :class:`hild.models.NTKRNN` as its width n → ∞.

    With g_t = (σ_w/√n) W s_{t−1} + (σ_u/√d) U x_t, s_t = relu(g_t) and f = (σ_v/√n) vᵀ s_T, the
    equal-time covariances follow the MLP recursion with the input injected at every step,

        G_t(x, x') = σ_w² S_{t−1} + σ_u² x_tᵀx'_t/d,   S_t = E[relu(g_t) relu(g'_t)],   S_0 = 0,

    and the backward covariances vanish between different times (the readout v is independent of
    W, so the gradient independence assumption is exact here; Yang 2020, "Tensor Programs II"):
    D_T = σ_v² E[relu'(g_T) relu'(g'_T)], D_t = σ_w² E[relu'(g_t) relu'(g'_t)] D_{t+1}. Summing the
    three weights' contributions (W and U are shared over time),

        Θ(x, x') = σ_v² S_T + Σ_t D_t G_t,        NNGP = σ_v² S_T.

    Args:
        x1: sequences (N1, T, d); x2: sequences (N2, T, d), default ``x1``.
        sigma_w, sigma_u, sigma_v: as for :class:`hild.models.NTKRNN`.
    """
    x2_ = x1 if x2 is None else x2
    if x1.ndim != 3 or x2_.ndim != 3 or x1.shape[1:] != x2_.shape[1:]:
        raise ValueError(f"inputs must be sequences (N, T, d) of the same T and d, got {tuple(x1.shape)} and "
                         f"{tuple(x2_.shape)}")
    steps, d = x1.shape[1], x1.shape[2]
    s12 = s11 = s22 = None
    gs, primes = [], []
    for t in range(steps):
        g12 = sigma_u**2 * x1[:, t] @ x2_[:, t].T / d
        g11 = (sigma_u**2 * (x1[:, t] ** 2).sum(1) / d)[:, None]
        g22 = (sigma_u**2 * (x2_[:, t] ** 2).sum(1) / d)[None, :]
        if t > 0:
            g12, g11, g22 = g12 + sigma_w**2 * s12, g11 + sigma_w**2 * s11, g22 + sigma_w**2 * s22
        s12, k0 = relu_expectations(g11, g22, g12)
        s11, s22 = g11 / 2, g22 / 2
        gs.append(g12)
        primes.append(k0)
    ntk = sigma_v**2 * s12
    back = sigma_v**2 * primes[-1]
    for t in reversed(range(steps)):
        ntk = ntk + back * gs[t]
        if t > 0:
            back = sigma_w**2 * primes[t - 1] * back
    return ReluKernels(nngp=sigma_v**2 * s12, ntk=ntk)


def relu_ntk(x1: Tensor, x2: Tensor | None = None, **kwargs: Any) -> Tensor:
    """``relu_kernels(x1, x2, **kwargs).ntk``."""
    return relu_kernels(x1, x2, **kwargs).ntk


def relu_nngp(x1: Tensor, x2: Tensor | None = None, **kwargs: Any) -> Tensor:
    """``relu_kernels(x1, x2, **kwargs).nngp``."""
    return relu_kernels(x1, x2, **kwargs).nngp


def _per_layer(value: float | Sequence[float], n: int, name: str) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} needs one value per layer ({n}), got {len(values)}")
    return values


# ----------------------------------------------------------------------------------------------
# the linearised model
# ----------------------------------------------------------------------------------------------


class LinearizedModel(nn.Module):
    """f_lin(x; θ) = f(x; θ₀) + J(x; θ₀)(θ − θ₀): a model's first-order Taylor expansion.

    Its trainable parameters are θ (one per parameter of the wrapped model, initialised at θ₀,
    in ``named_parameters`` order), so the same optimizer and loss train it as they train the
    model. The forward pass is one ``torch.func.jvp`` at the frozen θ₀ in the direction θ − θ₀:
    about the cost of two forward passes, with no Jacobian formed.

    Attributes:
        names: the wrapped model's parameter names, in the order of :meth:`parameters`.
        base: a frozen copy of the model at θ₀ (buffers included).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        _check_model(model)
        self.base = copy.deepcopy(model)
        for q in self.base.parameters():
            q.requires_grad_(False)
        self.names = [k for k, _ in model.named_parameters()]
        self.theta = nn.ParameterList([nn.Parameter(q.detach().clone()) for _, q in model.named_parameters()])

    def theta0(self) -> dict[str, Tensor]:
        """θ₀ as a dict name → tensor."""
        return dict(self.base.named_parameters())

    def named_theta(self) -> dict[str, Tensor]:
        """The current θ as a dict name → tensor (the trainable parameters)."""
        return dict(zip(self.names, self.theta))

    def forward(self, x: Tensor) -> Tensor:
        p0 = self.theta0()
        tangent = {k: t - p0[k] for k, t in zip(self.names, self.theta)}
        f0, df = jvp(lambda p: functional_call(self.base, p, (x,), strict=False), (p0,), (tangent,))
        return f0 + df


def linearize(model: nn.Module) -> LinearizedModel:
    """The linearised model around ``model``'s current weights (see :class:`LinearizedModel`)."""
    return LinearizedModel(model)


# ----------------------------------------------------------------------------------------------
# closed-form square-loss dynamics in function space
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelPrediction:
    """Outputs of kernel gradient flow/descent at the requested times.

    Attributes:
        train: (T, N, O) outputs on the training points (T times; O = 1 for a vector target).
        test: (T, M, O) outputs on the test points, or None without ``k_test``.
        times: the T times (flow: t; GD: numbers of steps).
    """

    train: Tensor
    test: Tensor | None
    times: Tensor


def _setup(k_train: Tensor, y: Tensor, k_test: Tensor | None, f0: Tensor | None, f0_test: Tensor | None):
    if k_train.ndim != 2 or k_train.shape[0] != k_train.shape[1]:
        raise ValueError(f"k_train must be a square (N, N) kernel matrix, got {tuple(k_train.shape)}")
    n = k_train.shape[0]
    y2 = y.reshape(n, -1) if y.ndim <= 2 else None
    if y2 is None or y.shape[0] != n:
        raise ValueError(f"y must be (N,) or (N, O) with N = {n}, got {tuple(y.shape)}")
    y2 = y2.to(k_train.dtype)
    f0_ = torch.zeros_like(y2) if f0 is None else f0.reshape(y2.shape).to(k_train.dtype)
    if k_test is not None and (k_test.ndim != 2 or k_test.shape[1] != n):
        raise ValueError(f"k_test must be (M, N) with N = {n} training points, got {tuple(k_test.shape)}")
    f0t = None
    if k_test is not None:
        m = k_test.shape[0]
        f0t = (torch.zeros(m, y2.shape[1], dtype=k_train.dtype, device=k_train.device) if f0_test is None
               else f0_test.reshape(m, -1).to(k_train.dtype))
    lam, vec = torch.linalg.eigh(k_train)
    r0 = vec.T @ (f0_ - y2)  # the initial residual in the kernel's eigenbasis
    return lam, vec, y2, f0_, f0t, r0


def _evolve(lam: Tensor, vec: Tensor, y2: Tensor, f0t: Tensor | None, r0: Tensor, k_test: Tensor | None,
            decay: Tensor, integral: Tensor, times: Tensor) -> KernelPrediction:
    # decay (T, N): the factor of each eigen-residual; integral (T, N): Σ_k η·decay_k (or ∫ e^{−λs} ds)
    train = y2[None] + torch.einsum("ij,tj,jo->tio", vec, decay, r0)
    test = None
    if k_test is not None:
        assert f0t is not None
        test = f0t[None] - torch.einsum("mi,ij,tj,jo->tmo", k_test, vec, integral, r0)
    return KernelPrediction(train=train, test=test, times=times)


def kernel_flow(k_train: Tensor, y: Tensor, times: float | Sequence[float] | Tensor, *,
                k_test: Tensor | None = None, f0: Tensor | None = None,
                f0_test: Tensor | None = None) -> KernelPrediction:
    """Gradient flow in function space for the square loss, in closed form.

    For the loss ½ Σᵢ ‖f(xᵢ) − yᵢ‖² and a fixed kernel K = Θ(X, X), df/dt = −K (f − y), so

        f(t) = y + e^{−Kt} (f₀ − y),   f_test(t) = f₀_test − Θ(X*, X) K⁻¹ (I − e^{−Kt}) (f₀ − y),

    evaluated through ``torch.linalg.eigh(K)`` (a zero eigenvalue contributes t, its limit). For the
    mean loss (1/2N) Σᵢ ‖·‖² pass K/N; for ``F.mse_loss`` (mean over N·O entries, no ½) pass 2K/(N·O).

    Args:
        k_train: (N, N) kernel on the training points (symmetric positive semi-definite).
        y: targets (N,) or (N, O); every output follows the same scalar kernel.
        times: one time or several (continuous time, learning rate x steps).
        k_test: (M, N) kernel between test and training points.
        f0, f0_test: outputs at t = 0 (default 0, a centred model).

    Returns:
        :class:`KernelPrediction` with outputs (T, N, O) and (T, M, O).
    """
    t = torch.as_tensor(times, dtype=k_train.dtype, device=k_train.device).reshape(-1)
    lam, vec, y2, f0_, f0t, r0 = _setup(k_train, y, k_test, f0, f0_test)
    lt = lam[None, :] * t[:, None]
    decay = torch.exp(-lt)
    small = lam.abs() < 1e-12 * lam.abs().max().clamp_min(1e-300)
    safe = torch.where(small, torch.ones_like(lam), lam)
    integral = torch.where(small[None, :], t[:, None].expand_as(lt), -torch.expm1(-lt) / safe[None, :])
    return _evolve(lam, vec, y2, f0t, r0, k_test, decay, integral, t)


def kernel_gd(k_train: Tensor, y: Tensor, steps: int | Sequence[int] | Tensor, *, lr: float,
              k_test: Tensor | None = None, f0: Tensor | None = None,
              f0_test: Tensor | None = None) -> KernelPrediction:
    """Discrete kernel gradient descent f ← f − η K (f − y), in closed form.

    After k steps f_k = y + (I − ηK)^k (f₀ − y) and
    f_test,k = f₀_test − Θ(X*, X) K⁻¹ (I − (I − ηK)^k)(f₀ − y); this is exactly what GD on the
    linearised model does (and, at infinite width, GD on the network). Same conventions as
    :func:`kernel_flow`; diverges (and says so by growing) when η λ_max(K) > 2.

    Args:
        steps: one number of steps or several (non-negative integers).
        lr: the step η.
    """
    k = torch.as_tensor(steps, dtype=k_train.dtype, device=k_train.device).reshape(-1)
    if (k < 0).any() or (k != k.round()).any():
        raise ValueError(f"steps must be non-negative integers, got {steps}")
    lam, vec, y2, f0_, f0t, r0 = _setup(k_train, y, k_test, f0, f0_test)
    decay = (1 - lr * lam)[None, :] ** k[:, None]
    small = lam.abs() < 1e-12 * lam.abs().max().clamp_min(1e-300)
    safe = torch.where(small, torch.ones_like(lam), lam)
    integral = torch.where(small[None, :], lr * k[:, None].expand_as(decay), (1 - decay) / safe[None, :])
    return _evolve(lam, vec, y2, f0t, r0, k_test, decay, integral, k)


def kernel_regression(k_train: Tensor, y: Tensor, k_test: Tensor, *, ridge: float = 0.0,
                      f0: Tensor | None = None, f0_test: Tensor | None = None) -> Tensor:
    """The t → ∞ limit of :func:`kernel_flow`: f_test = f₀_test + Θ(X*, X)(K + ridge·I)⁻¹ (y − f₀).

    Solved through ``eigh`` on the kernel's range (eigenvalues below 1e-12 x the largest are
    dropped, which is the flow's limit for a singular K). Returns (M, O).
    """
    lam, vec, y2, f0_, f0t, r0 = _setup(k_train, y, k_test, f0, f0_test)
    assert f0t is not None
    keep = (lam + ridge) > 1e-12 * lam.abs().max()
    inv = torch.where(keep, 1 / torch.where(keep, lam + ridge, torch.ones_like(lam)), torch.zeros_like(lam))
    return f0t - k_test @ vec @ (inv[:, None] * r0)


# ----------------------------------------------------------------------------------------------
# training the centred, α-scaled model
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CentredRun:
    """Outputs α·(f(x; w_k) − f(x; w_0)) of a centred model along full-batch GD.

    Attributes:
        steps: (K,) the recorded step numbers, starting at 0.
        train: (K, N, O) outputs on the training points.
        test: (K, M, O) outputs on the test points, or None.
    """

    steps: Tensor
    train: Tensor
    test: Tensor | None


def train_centred(model: nn.Module, x: Tensor, y: Tensor, *, lr: float, steps: int, alpha: float = 1.0,
                  x_test: Tensor | None = None, every: int = 1) -> CentredRun:
    """Full-batch GD on the centred, α-scaled square loss (Chizat, Oyallon and Bach 2019).

    The model's output is h(x; w) = α·(f(x; w) − f(x; w₀)), so h = 0 at initialisation, and
    each step is w ← w − η ∇_w ½‖h(X; w) − y‖²/α². In function space this is
    h ← h − η Θ(w) (h − y) + O(η²), with Θ the model's NTK, independent of α: α → ∞ makes the
    dynamics those of the linearised model (:func:`kernel_gd` with the initial NTK), and α = 1 is
    the plain centred network. The model is trained in place (its parameters change).

    Args:
        model: any module (also a :class:`LinearizedModel`).
        x: training inputs (N, ...); y: targets (N,) or (N, O).
        lr: the step η; steps: number of steps (capped by ``HILD_MAX_STEPS``).
        alpha: the scale α.
        x_test: test inputs (M, ...) whose outputs are recorded too.
        every: record every ``every`` steps (and the last).

    Returns:
        :class:`CentredRun`.
    """
    _check_model(model)
    steps = config.steps(steps)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():
        f0 = model(x).reshape(len(x), -1).clone()
        f0t = model(x_test).reshape(len(x_test), -1).clone() if x_test is not None else None
    y2 = y.reshape(len(x), -1).to(f0.dtype)
    if y2.shape != f0.shape:
        raise ValueError(f"y has shape {tuple(y.shape)} but the model outputs {tuple(f0.shape)} on x")
    rec_steps, train, test = [], [], []

    def record(k: int, h: Tensor) -> None:
        rec_steps.append(k)
        train.append(h.detach().clone())
        if x_test is not None:
            with torch.no_grad():
                test.append(alpha * (model(x_test).reshape(len(x_test), -1) - f0t))

    for k in range(steps + 1):
        h = alpha * (model(x).reshape(len(x), -1) - f0)
        if k % every == 0 or k == steps:
            record(k, h)
        if k == steps:
            break
        loss = 0.5 * ((h - y2) ** 2).sum() / alpha**2
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(lr * g)
    return CentredRun(steps=torch.tensor(rec_steps), train=torch.stack(train),
                      test=torch.stack(test) if x_test is not None else None)


# ----------------------------------------------------------------------------------------------
# an infinitely wide network with a finite bottleneck, in function space
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BottleneckRun:
    """A run of :func:`train_bottleneck`.

    Attributes:
        loss: (S + 1,) the training loss ½ Σ_train ‖F − F₀ − y‖² at every step 0..S.
        steps: (K,) the steps at which outputs and z were recorded (every ``every`` and the last).
        outputs: (K, M, O) centred outputs F − F₀ on all M points (training points first).
        z: (K, M, d) the bottleneck representation g(x) on all points.
    """

    steps: Tensor
    loss: Tensor
    outputs: Tensor
    z: Tensor


def train_bottleneck(head: nn.Module, z0: Tensor, theta_g: Tensor, y: Tensor, *, lr: float, steps: int,
                     every: int = 1) -> BottleneckRun:
    """Full-batch GD on F = head ∘ g where g is infinitely wide and only its NTK is known.

    An infinitely wide network g in the NTK parameterisation moves its outputs by kernel gradient
    descent with a fixed kernel Θ_g, the same for each of its d outputs (Jacot et al. 2018), so
    its weights never need to exist: the bottleneck values z = g(x) on all points are the state.
    One step of GD with step η on L = ½ Σ_train ‖F(x) − F₀(x) − y‖² (centred outputs) moves

        z(x) ← z(x) − η Σ_{i ∈ train} Θ_g(x, x_i) ∂L/∂z(x_i),      θ_head ← θ_head − η ∂L/∂θ_head,

    both computed at the current state, exactly as GD on a network whose first part has infinite
    width (the setting of Littwin et al. 2021). The head is trained in place.

    Args:
        head: the finite part, mapping (M, d) → (M, O).
        z0: (M, d) bottleneck values at initialisation on all points, the N training points first
            (a draw from the NNGP of g, one independent column per bottleneck unit).
        theta_g: (M, N) NTK of g between all points and the training points.
        y: (N, O) targets.
        lr: the step η; steps: number of steps (capped by ``HILD_MAX_STEPS``).
        every: record outputs and z every ``every`` steps (the loss is recorded at every step).

    Returns:
        :class:`BottleneckRun`.
    """
    _check_model(head)
    n = theta_g.shape[1]
    if z0.ndim != 2 or theta_g.shape[0] != z0.shape[0] or y.shape[0] != n:
        raise ValueError(f"z0 must be (M, d), theta_g (M, N) and y (N, O) with matching M and N; got "
                         f"{tuple(z0.shape)}, {tuple(theta_g.shape)}, {tuple(y.shape)}")
    steps = config.steps(steps)
    params = [p for p in head.parameters() if p.requires_grad]
    z = z0.detach().clone()
    with torch.no_grad():
        out0 = head(z).reshape(len(z), -1).clone()
    y2 = y.reshape(n, -1).to(out0.dtype)
    rec: dict[str, list[Tensor]] = {"steps": [], "loss": [], "outputs": [], "z": []}
    for k in range(steps + 1):
        zk = z.clone().requires_grad_(True)
        out = head(zk).reshape(len(z), -1) - out0
        loss = 0.5 * ((out[:n] - y2) ** 2).sum()
        rec["loss"].append(loss.detach())
        if k % every == 0 or k == steps:
            for key, v in (("steps", torch.tensor(k)), ("outputs", out.detach()), ("z", z.clone())):
                rec[key].append(v)
        if k == steps:
            break
        *grads, gz = torch.autograd.grad(loss, [*params, zk])
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(lr * g)
            z = z - lr * theta_g @ gz[:n]
    return BottleneckRun(**{k: torch.stack(v) for k, v in rec.items()})
