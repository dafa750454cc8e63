"""Checks for the exercises of the chapters on wide networks and kernels (``hild.ntk``).

Each check calls the reader's function on a few cases and compares it with an exact answer that
the check computes itself (closed forms from :mod:`hild.ntk`, or an explicit float64 loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import ntk
from . import check_function

__all__ = ["two_layer_relu_ntk", "kernel_gd_prediction", "lazy_step", "scalar_model_error",
           "bottleneck_kernel", "linear_bottleneck_step"]

f64 = torch.float64


def _inputs(n1: int, n2: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n1, d, dtype=f64, generator=g), torch.randn(n2, d, dtype=f64, generator=g)


def two_layer_relu_ntk(fn: Callable[..., Any]) -> None:
    """Exercise: Θ(x, x') of f(x) = aᵀrelu(Wx/√d)/√m as m → ∞, for inputs (N1, d) and (N2, d)."""
    __tracebackhide__ = True

    def reference(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return ntk.relu_kernels(x1, x2, depth=1).ntk

    cases = [_inputs(5, 5, 4, 0), _inputs(3, 7, 2, 1), _inputs(4, 6, 10, 2)]
    x, _ = _inputs(4, 1, 3, 3)
    cases.append((x, torch.cat([x[:2], -x[2:3]])))  # equal inputs (φ = 0) and opposite ones (φ = π)
    check_function(lambda a, b: fn(a.clone(), b.clone()), reference=reference, cases=cases,
                   name="two_layer_relu_ntk", rtol=1e-9, atol=1e-12,
                   hint="with s = xᵀx'/d, s₁ = ‖x‖²/d, s₂ = ‖x'‖²/d and cos φ = s/√(s₁s₂): "
                        "k1 = √(s₁s₂)(sin φ + (π − φ)cos φ)/(2π), k0 = (π − φ)/(2π), Θ = k1 + s·k0")


def kernel_gd_prediction(fn: Callable[..., Any]) -> None:
    """Exercise: test outputs after ``steps`` steps of kernel GD f ← f − η K (f − y) from f = 0."""
    __tracebackhide__ = True

    def reference(k, k_test, y, lr, steps):
        return ntk.kernel_gd(k, y, steps, lr=lr, k_test=k_test).test[-1, :, 0]

    cases = []
    for seed, (n, m, steps) in enumerate([(6, 4, 1), (8, 5, 25), (5, 3, 0), (10, 6, 200)]):
        x, xt = _inputs(n, m, 3, 10 + seed)
        k, k_test = ntk.relu_ntk(x, depth=2), ntk.relu_ntk(xt, x, depth=2)
        y = torch.sin(x[:, 0])
        lr = 0.5 / float(torch.linalg.eigvalsh(k).max())
        cases.append((k, k_test, y, lr, steps))
    check_function(fn, reference=reference, cases=cases, name="kernel_gd_prediction", rtol=1e-8, atol=1e-10,
                   hint="iterate the training outputs f ← f − lr·K(f − y) and move the test outputs by "
                        "−lr·K_test(f − y) with the SAME residual, before updating f")


def lazy_step(fn: Callable[..., Any]) -> None:
    """Exercise: α·h̄(w₁) after one GD step on ½‖αh̄(w) − y‖²/α² from w₀ (h̄(w₀) = 0), with
    h̄(w) = J (w − w₀)."""
    __tracebackhide__ = True

    def reference(J, y, alpha, lr):
        w1 = -lr * J.T @ (0 * y - y) / alpha  # w₁ − w₀ = −η ∇ = −(η/α) Jᵀ(αh̄ − y)
        return alpha * J @ w1

    g = np.random.default_rng(0)
    cases = []
    for alpha in (1.0, 10.0, 1e4):
        J, y = g.standard_normal((5, 12)), g.standard_normal(5)
        cases.append((J, y, alpha, 0.03))
    cases.append((g.standard_normal((3, 4)), g.standard_normal(3), 0.5, 0.2))
    check_function(fn, reference=reference, cases=cases, name="lazy_step", rtol=1e-10, atol=1e-12,
                   hint="the gradient of ½‖αJ(w − w₀) − y‖²/α² at w₀ is −Jᵀy/α; the step moves w by "
                        "η·Jᵀy/α and the output α·J(w₁ − w₀) by η·JJᵀy: α cancels")


def _scalar_error(alpha: float, T: float, a: float, b: float, y: float, lr: float) -> float:
    """sup over GD steps k ≤ T/lr of |αh(w_k) − αh̄(w̄_k)| for h(w) = a·w + b·w²/2, w₀ = 0."""
    w = wl = 0.0
    worst = 0.0
    for _ in range(int(round(T / lr))):
        f, fl = alpha * (a * w + 0.5 * b * w * w), alpha * a * wl
        w -= lr * (a + b * w) * (f - y) / alpha
        wl -= lr * a * (fl - y) / alpha
        worst = max(worst, abs(alpha * (a * w + 0.5 * b * w * w) - alpha * a * wl))
    return worst


def scalar_model_error(fn: Callable[..., Any]) -> None:
    """Exercise: the NTK approximation error of the one-parameter model h(w) = a·w + b·w²/2."""
    __tracebackhide__ = True
    cases = [(10.0, 5.0, 0.5, 1.0, 1.0, 0.05), (100.0, 20.0, 0.2, 1.0, 1.0, 0.05),
             (3.0, 1.0, 1.0, -0.5, 2.0, 0.01), (50.0, 0.0, 1.0, 1.0, 1.0, 0.05)]
    check_function(fn, reference=_scalar_error, cases=cases, name="scalar_model_error", rtol=1e-9, atol=1e-12,
                   hint="take both steps from the CURRENT weights: w ← w − lr·h'(w)(αh(w) − y)/α with "
                        "h'(w) = a + b·w, and w̄ ← w̄ − lr·a(αa·w̄ − y)/α; track the largest gap after each step")


def bottleneck_kernel(fn: Callable[..., Any]) -> None:
    """Exercise: the NTK of a linear bottleneck z = Bx/√d (B: k x d) followed by f = aᵀz/√k,
    both trained, at initialisation: Θ(x, x') = zᵀz'/k + (aᵀa/k)·xᵀx'/d."""
    __tracebackhide__ = True

    def reference(B, a, x1, x2):
        d, k = x1.shape[1], B.shape[0]
        z1, z2 = x1 @ B.T / np.sqrt(d), x2 @ B.T / np.sqrt(d)
        return z1 @ z2.T / k + (a @ a / k) * (x1 @ x2.T) / d

    g = np.random.default_rng(1)
    cases = [(g.standard_normal((k, d)), g.standard_normal(k), g.standard_normal((n1, d)),
              g.standard_normal((n2, d))) for k, d, n1, n2 in [(2, 5, 4, 3), (8, 3, 6, 6), (1, 4, 2, 5)]]
    check_function(fn, reference=reference, cases=cases, name="bottleneck_kernel", rtol=1e-10, atol=1e-12,
                   hint="∂f/∂a = z/√k and ∂f/∂B = a xᵀ/√(k d): add the two inner products")


def linear_bottleneck_step(fn: Callable[..., Any]) -> None:
    """Exercise: the change of W = HG after one GD step on ½‖HGX − Y‖² (H: O x k, G: k x D)."""
    __tracebackhide__ = True

    def reference(H, G, X, Y, lr):
        grad_w = (H @ G @ X - Y) @ X.T          # ∂L/∂W at W = HG
        H1, G1 = H - lr * grad_w @ G.T, G - lr * H.T @ grad_w
        return H1 @ G1 - H @ G

    g = np.random.default_rng(2)
    cases = []
    for o, k, D, n, lr in [(2, 1, 4, 6, 0.05), (3, 2, 5, 8, 0.01), (1, 3, 3, 4, 0.1)]:
        cases.append((g.standard_normal((o, k)), g.standard_normal((k, D)), g.standard_normal((D, n)),
                      g.standard_normal((o, n)), lr))
    check_function(fn, reference=reference, cases=cases, name="linear_bottleneck_step", rtol=1e-10, atol=1e-12,
                   hint="take both gradients at the CURRENT H and G (∂L/∂H = ∇_W Gᵀ, ∂L/∂G = Hᵀ∇_W with "
                        "∇_W = (HGX − Y)Xᵀ), update both, and return H'G' − HG")
