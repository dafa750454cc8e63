"""Teachers for teacher-student experiments: single-index models and small two-layer networks.

* :class:`SingleIndex` (built by :func:`single_index`): ``y = g(κ·z) + noise·ε`` with ``z`` the
  input's projection on a unit direction β*, standardised so that ``z ~ N(0, 1)``. Inputs are
  Gaussian, isotropic or with one spiked direction, ``x ~ N(0, I + spike·uuᵀ)``; the spike ``u``
  may be aligned with β* or not (the structured data of Mousavi-Hosseini et al., NeurIPS 2023).
  This is the proportional-regime teacher of Ba et al. (NeurIPS 2022).
* :func:`teacher_network`: a two-layer network with unit-norm neurons, the teacher of the SAM
  paper's official two-layer notebook (ReLU, biases, ±1 output weights) and of the stochastic
  collapse chapter (two tanh neurons).
* :func:`sphere`: points uniform on the unit sphere (the SAM notebook's inputs).

Everything draws from a ``numpy.random.Generator`` passed in, so a chapter's seed fixes the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..models.two_layer import TwoLayer

__all__ = ["LINKS", "SingleIndex", "single_index", "gaussian_inputs", "sphere", "teacher_network"]

Array = np.ndarray

# Link functions g of a single-index model. "he2"/"he3" are the normalised Hermite polynomials
# He₂(z)/√2 and He₃(z)/√6 (unit variance, no linear part: information exponents 2 and 3).
LINKS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda z: z,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "he2": lambda z: (z**2 - 1.0) / np.sqrt(2.0),
    "he3": lambda z: (z**3 - 3.0 * z) / np.sqrt(6.0),
}


def gaussian_inputs(n: int, d: int, *, rng: np.random.Generator, spike: float = 0.0,
                    direction: Array | None = None) -> Array:
    """(n, d) samples of ``N(0, I + spike·uuᵀ)`` for a unit vector ``u = direction``.

    The variance along ``u`` is ``1 + spike``; every orthogonal direction has variance 1.
    """
    X = rng.standard_normal((n, d))
    if spike:
        if spike < 0 or direction is None:
            raise ValueError("a spiked covariance needs spike >= 0 and a unit direction u")
        u = np.asarray(direction, dtype=np.float64)
        X += (np.sqrt(1.0 + spike) - 1.0) * np.outer(X @ u, u)
    return X


def sphere(n: int, d: int, *, rng: np.random.Generator) -> Array:
    """(n, d) points uniform on the unit sphere of R^d."""
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@dataclass(frozen=True)
class SingleIndex:
    """A single-index teacher ``y = g(gain·z) + noise·ε``, ``z = ⟨β*, x⟩/√(β*ᵀΣβ*)`` (so ``z ~ N(0, 1)``).

    Attributes:
        beta: (d,) the unit target direction β*.
        link: a name from :data:`LINKS`.
        gain: the slope inside the link (``tanh(2z)`` is ``link="tanh", gain=2``).
        noise: standard deviation of the additive label noise.
        spike: the input covariance is ``I + spike·uuᵀ`` (0: isotropic inputs).
        direction: (d,) the unit spike direction ``u`` (β* itself unless given otherwise).
    """

    beta: Array
    link: str = "tanh"
    gain: float = 1.0
    noise: float = 0.0
    spike: float = 0.0
    direction: Array | None = None

    def __post_init__(self) -> None:
        if self.link not in LINKS:
            raise ValueError(f"unknown link {self.link!r}: use one of {sorted(LINKS)}")
        if not np.isclose(np.linalg.norm(self.beta), 1.0):
            raise ValueError("beta must be a unit vector")

    @property
    def d(self) -> int:
        return len(self.beta)

    @property
    def spike_direction(self) -> Array:
        return self.beta if self.direction is None else np.asarray(self.direction, dtype=np.float64)

    @property
    def z_std(self) -> float:
        """The standard deviation of ``⟨β*, x⟩``: ``√(1 + spike·⟨β*, u⟩²)``."""
        return float(np.sqrt(1.0 + self.spike * float(self.beta @ self.spike_direction) ** 2))

    def inputs(self, n: int, *, rng: np.random.Generator) -> Array:
        return gaussian_inputs(n, self.d, rng=rng, spike=self.spike, direction=self.spike_direction)

    def target(self, X: Array) -> Array:
        """(n,) the noise-free target ``g(gain·z)``."""
        z = (np.asarray(X, dtype=np.float64) @ self.beta) / self.z_std
        return LINKS[self.link](self.gain * z)

    def sample(self, n: int, *, rng: np.random.Generator) -> tuple[Array, Array]:
        """``(X, y)``: n fresh inputs and their noisy labels."""
        X = self.inputs(n, rng=rng)
        return X, self.target(X) + self.noise * rng.standard_normal(n)


def single_index(d: int, *, link: str = "tanh", gain: float = 1.0, noise: float = 0.0, spike: float = 0.0,
                 alignment: float = 1.0, rng: np.random.Generator) -> SingleIndex:
    """A single-index teacher with a uniformly random direction β* in R^d.

    Args:
        link, gain, noise, spike: see :class:`SingleIndex`.
        alignment: cosine between the covariance spike ``u`` and β* (1: the spike is β*; 0: it is
            orthogonal to β*).
        rng: the generator β* (and ``u``) are drawn from.
    """
    if not -1.0 <= alignment <= 1.0:
        raise ValueError(f"alignment is a cosine, in [-1, 1]; got {alignment}")
    beta = rng.standard_normal(d)
    beta /= np.linalg.norm(beta)
    direction = None
    if alignment != 1.0:
        other = rng.standard_normal(d)
        other -= (other @ beta) * beta
        other /= np.linalg.norm(other)
        direction = alignment * beta + np.sqrt(1.0 - alignment**2) * other
    return SingleIndex(beta, link=link, gain=gain, noise=noise, spike=spike, direction=direction)


def teacher_network(d: int, width: int, *, activation: str = "relu", bias: bool = True, signs: bool = True,
                    rng: np.random.Generator) -> TwoLayer:
    """A two-layer teacher with unit-norm neurons.

    Rows of ``W`` are uniform on the unit sphere; with ``bias`` the biases ``b_j`` and ``c`` are
    N(0, 1); the output weights are random signs ±1 (``signs=True``, as in the SAM paper's
    notebook) or all +1.
    """
    W = rng.standard_normal((width, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    b = rng.standard_normal(width) if bias else None
    a = np.sign(rng.standard_normal(width)) if signs else np.ones(width)
    c = rng.standard_normal() if bias else None
    return TwoLayer(W, a, b, c, activation=activation)
