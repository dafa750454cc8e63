"""Two-layer networks ``f(x) = s·aᵀσ(Wx + b) + c`` with closed-form gradients, in NumPy (float64).

Three chapters of the Workshop part train this one model:

* one gradient step on ``W`` in the proportional regime, ``s = 1/√N`` (Ba et al., NeurIPS 2022);
* SGD on a teacher-student problem, watching neurons vanish (Chen et al., NeurIPS 2023);
* SGD and SAM on the 20-point teacher-student problem of Andriushchenko et al. (NeurIPS 2023),
  whose official notebook ``two_layer_nets/fc_nets_two_layer.ipynb`` sets the recipe
  (:func:`hild.data.teachers.relu_teacher` builds its teacher).

The gradients are written out rather than taken by autograd because these runs are tens of
thousands of steps on a batch of one or two: a NumPy step of a 100-neuron network takes about
30 µs of CPU, an autograd step ten times more, and that decides whether a run fits the ci budget.
``tests/test_two_layer.py`` checks every gradient against ``torch.autograd`` and a SAM step of
:func:`train_sgd` against :class:`hild.optim.SAM`.

The loss is the mean squared error ``L = (1/n) Σ_i (f(x_i) − y_i)²`` (``torch.nn.functional.mse_loss``,
the loss of Ba et al. and of the SAM paper's code), without a factor ½.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..train import History

__all__ = ["ACTIVATIONS", "TwoLayer", "TwoLayerRun", "train_sgd"]

Array = np.ndarray


def _relu(z: Array) -> Array:
    return np.maximum(z, 0.0)


def _relu_prime(z: Array) -> Array:
    return (z > 0).astype(z.dtype)


def _tanh_prime(z: Array) -> Array:
    return 1.0 - np.tanh(z) ** 2


# name → (σ, σ′); σ′(0) of the ReLU is taken as 0, as autograd does.
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "tanh": (np.tanh, _tanh_prime),
    "relu": (_relu, _relu_prime),
    "linear": (lambda z: z, np.ones_like),
}


@dataclass
class TwoLayer:
    """``f(x) = scale · Σ_j a_j σ(w_jᵀx + b_j) + c`` for inputs ``x ∈ R^d`` and ``m`` hidden neurons.

    The parameters are float64 NumPy arrays, updated in place by :func:`train_sgd` (use
    :meth:`copy` to keep a snapshot).

    Attributes:
        W: (m, d) first-layer weights, one row ``w_j`` per neuron.
        a: (m,) second-layer weights.
        b: (m,) first-layer biases, or None for a network without them.
        c: () output bias (a 0-d array), or None.
        activation: a name from :data:`ACTIVATIONS`.
        scale: the output multiplier ``s`` (``1/√m`` in Ba et al.'s parameterisation).
    """

    W: Array
    a: Array
    b: Array | None = None
    c: Array | None = None
    activation: str = "tanh"
    scale: float = 1.0
    _sigma: Callable[[Array], Array] = field(init=False, repr=False)
    _sigma_prime: Callable[[Array], Array] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}: use one of {sorted(ACTIVATIONS)}")
        self.W = np.array(self.W, dtype=np.float64, ndmin=2)
        self.a = np.array(self.a, dtype=np.float64).reshape(-1)
        m = self.W.shape[0]
        if self.a.shape != (m,):
            raise ValueError(f"a must have one entry per row of W: W is {self.W.shape}, a is {self.a.shape}")
        if self.b is not None:
            self.b = np.array(self.b, dtype=np.float64).reshape(-1)
            if self.b.shape != (m,):
                raise ValueError(f"b must have one entry per neuron ({m}), got shape {self.b.shape}")
        if self.c is not None:
            self.c = np.array(self.c, dtype=np.float64).reshape(())
        self._sigma, self._sigma_prime = ACTIVATIONS[self.activation]

    @classmethod
    def gaussian(cls, d: int, width: int, *, activation: str = "tanh", w_std: float, a_std: float,
                 b_std: float | None = None, c_std: float | None = None, scale: float = 1.0,
                 rng: np.random.Generator) -> "TwoLayer":
        """Every parameter i.i.d. Gaussian: ``W_jk ~ N(0, w_std²)``, ``a_j ~ N(0, a_std²)``, and biases
        ``b_j ~ N(0, b_std²)``, ``c ~ N(0, c_std²)`` when their std is given (else no bias)."""
        W = w_std * rng.standard_normal((width, d))
        a = a_std * rng.standard_normal(width)
        b = b_std * rng.standard_normal(width) if b_std is not None else None
        c = c_std * rng.standard_normal() if c_std is not None else None
        return cls(W, a, b, c, activation=activation, scale=scale)

    # ------------------------------------------------------------------ shapes and parameters
    @property
    def width(self) -> int:
        return self.W.shape[0]

    @property
    def dim(self) -> int:
        return self.W.shape[1]

    @property
    def params(self) -> dict[str, Array]:
        """name → array for the parameters this network has (``W``, ``a`` and, if present, ``b``, ``c``)."""
        out = {"W": self.W, "a": self.a}
        if self.b is not None:
            out["b"] = self.b
        if self.c is not None:
            out["c"] = self.c
        return out

    def copy(self) -> "TwoLayer":
        return replace(self, W=self.W.copy(), a=self.a.copy(),
                       b=None if self.b is None else self.b.copy(), c=None if self.c is None else self.c.copy())

    def neuron_norms(self) -> Array:
        """(m,) the norm of each neuron's parameters ``‖(w_j, b_j, a_j)‖``."""
        sq = (self.W**2).sum(1) + self.a**2
        if self.b is not None:
            sq = sq + self.b**2
        return np.sqrt(sq)

    # ------------------------------------------------------------------ forward
    def preactivations(self, X: Array) -> Array:
        """(n, m) ``Xᵀw_j + b_j`` for inputs X of shape (n, d)."""
        Z = np.asarray(X, dtype=np.float64) @ self.W.T
        return Z if self.b is None else Z + self.b

    def features(self, X: Array) -> Array:
        """(n, m) hidden activations ``σ(Wx + b)``."""
        return self._sigma(self.preactivations(X))

    def __call__(self, X: Array) -> Array:
        """(n,) outputs ``f(x_i)``."""
        out = self.scale * (self.features(X) @ self.a)
        return out if self.c is None else out + self.c

    def loss(self, X: Array, y: Array) -> float:
        """Mean squared error ``(1/n) Σ (f(x_i) − y_i)²``."""
        return float(np.mean((self(X) - np.asarray(y, dtype=np.float64)) ** 2))

    # ------------------------------------------------------------------ gradients
    def gradients(self, X: Array, y: Array, *, params: Sequence[str] | None = None) -> dict[str, Array]:
        """Gradients of the mean squared error on (X, y), in closed form.

        With residuals ``r = f(X) − y`` and ``g = 2r/n``:
        ``∇_a = s·σ(Z)ᵀg``, ``∇_c = Σ g``, ``∇_W = [s·(g aᵀ) ⊙ σ′(Z)]ᵀ X`` and ``∇_b`` its column sums,
        where ``Z = XWᵀ + b``.

        Args:
            X: (n, d) inputs.  y: (n,) targets.
            params: which gradients to compute (default: all the network has).

        Returns:
            name → array of the parameter's shape.
        """
        X = np.asarray(X, dtype=np.float64)
        names = tuple(self.params) if params is None else tuple(params)
        unknown = set(names) - set(self.params)
        if unknown:
            raise ValueError(f"no parameter {sorted(unknown)} in this network: it has {sorted(self.params)}")
        Z = self.preactivations(X)
        H = self._sigma(Z)
        f = self.scale * (H @ self.a)
        if self.c is not None:
            f = f + self.c
        g = (2.0 / len(X)) * (f - np.asarray(y, dtype=np.float64))
        out: dict[str, Array] = {}
        if "a" in names:
            out["a"] = self.scale * (H.T @ g)
        if "c" in names:
            out["c"] = np.array(g.sum())
        if "W" in names or "b" in names:
            G = self.scale * np.outer(g, self.a) * self._sigma_prime(Z)  # (n, m): ∂L/∂Z
            if "W" in names:
                out["W"] = G.T @ X
            if "b" in names:
                out["b"] = G.sum(0)
        return out


@dataclass(frozen=True)
class TwoLayerRun:
    """A run of :func:`train_sgd`.

    Attributes:
        net: the trained network (a copy; the initial one is untouched).
        history: the recorded metrics (``history["loss"]`` is the full training loss), at
            ``history.steps``, step 0 included.
        diverged: True if the loss became NaN or infinite (the run stopped there).
    """

    net: TwoLayer
    history: History
    diverged: bool


def _batch_indices(n: int, batch_size: int, steps: int, rng: np.random.Generator) -> Array:
    """(steps, batch_size) indices: epoch-wise reshuffling (each epoch a fresh permutation)."""
    per_epoch = n // batch_size
    epochs = -(-steps // per_epoch)
    if epochs == 0:
        return np.zeros((0, batch_size), dtype=np.int64)
    perms = np.stack([rng.permutation(n)[: per_epoch * batch_size] for _ in range(epochs)])
    return perms.reshape(epochs * per_epoch, batch_size)[:steps]


def train_sgd(
    net: TwoLayer,
    X: Array,
    y: Array,
    *,
    lr: float,
    steps: int,
    batch_size: int | None = None,
    rho: float = 0.0,
    sam_steps: int | None = None,
    normalize: bool = True,
    params: Sequence[str] | None = None,
    seed: int = 0,
    record_every: int = 0,
    record: Callable[[TwoLayer], Mapping[str, float]] | None = None,
) -> TwoLayerRun:
    """SGD (or full-batch GD, or SAM) on the mean squared error of a copy of ``net``.

    Each step draws a mini-batch by epoch-wise reshuffling (``batch_size=None`` or ``n`` is
    full-batch gradient descent), computes the gradient ``g`` at the current parameters and, while
    SAM is on, the gradient at the perturbed point ``w + ρ g/‖g‖`` (``normalize=True``) or
    ``w + ρ g`` (``normalize=False``) on the same batch, and steps ``w ← w − lr · gradient``.

    Args:
        net: the initial network (not modified).
        X, y: (n, d) training inputs and (n,) targets.
        lr: the step size.  steps: the number of steps (not capped by ``HILD_MAX_STEPS``: pass
            ``hild.steps(n)``).
        batch_size: the mini-batch size B (default: full batch).
        rho: SAM's radius ρ; 0 is plain SGD.
        sam_steps: SAM is on for the first ``sam_steps`` steps, SGD afterwards (default: all).
        normalize: normalise SAM's ascent step (Foret et al.) or not ("unnormalised SAM").
        params: which parameters train (default: all; e.g. ``("W",)`` freezes the second layer).
        seed: seeds the batch order; runs with the same seed and batch size see the same batches.
        record_every: record the full training loss (and ``record(net)``) every this many steps
            and at the end; 0 records only at the start and the end.
        record: extra metrics, a function of the current network returning name → number.

    Returns:
        A :class:`TwoLayerRun` with the trained copy and the recorded history.
    """
    if lr <= 0 or steps < 0 or rho < 0:
        raise ValueError(f"need lr > 0, steps >= 0 and rho >= 0, got lr={lr}, steps={steps}, rho={rho}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(X)
    B = n if batch_size is None else int(batch_size)
    if not 0 < B <= n:
        raise ValueError(f"batch_size must be in 1..{n}, got {batch_size}")
    net = net.copy()
    names = tuple(net.params) if params is None else tuple(params)
    p = net.params
    sam_until = steps if sam_steps is None else int(sam_steps)
    batches = _batch_indices(n, B, steps, np.random.default_rng(seed)) if B < n else None
    history = History()

    def log(step: int) -> float:
        loss = net.loss(X, y)
        history.record(step, {"loss": loss, **(record(net) if record is not None else {})})
        return loss

    log(0)
    diverged = False
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is detected and reported
        for t in range(steps):
            xb, yb = (X, y) if batches is None else (X[batches[t]], y[batches[t]])
            g = net.gradients(xb, yb, params=names)
            if rho > 0 and t < sam_until:
                norm = np.sqrt(sum(float((v**2).sum()) for v in g.values())) if normalize else 1.0
                if norm > 0:
                    shift = {k: (rho / norm) * v for k, v in g.items()}
                    for k, v in shift.items():
                        p[k] += v
                    g = net.gradients(xb, yb, params=names)  # the gradient at the perturbed point
                    for k, v in shift.items():
                        p[k] -= v
            for k, v in g.items():
                p[k] -= lr * v
            if (record_every and (t + 1) % record_every == 0) or t + 1 == steps:
                if not np.isfinite(log(t + 1)):
                    diverged = True
                    break
    return TwoLayerRun(net=net, history=history, diverged=diverged)
