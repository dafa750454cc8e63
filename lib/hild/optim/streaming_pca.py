"""Streaming PCA by the noisy power method, and its fair version (FNPM).

Hardt and Price, *The Noisy Power Method* (NeurIPS 2014): keep a d x k orthonormal V and, for each
block of b fresh samples, replace it by QR(Σ̂_block V) where Σ̂_block V = (1/b) Σ x (xᵀV) is
accumulated one sample at a time. Memory is O(dk) whatever the stream's length.

Lee, Cho, Yun and Yun, *Fair Streaming Principal Component Analysis* (NeurIPS 2023; official code
github HanseulJo/fair-streaming-pca): the fair noisy power method (FNPM) first learns the *unfair
subspace* N from labelled samples (x, s) (the mean gap f = μ₁ − μ₀, and with ``mode="all"`` also
the top-r eigenvectors of the second-moment gap, found by a noisy power method of its own), then
runs the noisy power method on P Σ̂ P with P = I − NNᵀ, so the learned subspace is orthogonal to
N: the projected groups have (nearly) equal means (and second moments).

Also here: the offline fair PCA it approximates (an eigendecomposition), the fairness and
optimality metrics, and principal angles between subspaces. The streaming functions are
generators: they consume a stream of (x, s) chunks and yield their state after every block.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "StreamingPCAState",
    "noisy_power_method",
    "fair_noisy_power_method",
    "fair_pca",
    "unfair_subspace",
    "principal_angles",
    "explained_variance_ratio",
    "mean_gap",
    "covariance_gap",
]

Mode = Literal["mean", "all"]
Stream = Iterable[tuple[np.ndarray, np.ndarray]]


@dataclass
class StreamingPCAState:
    """Everything a streaming PCA keeps between samples (its memory is :attr:`nbytes`).

    Attributes:
        V: (d, k) the current orthonormal basis.
        acc: (d, k) the running sum Σ x(xᵀV) of the current block (for FNPM: of P x).
        N: (d, m) orthonormal basis of the unfair subspace (m = 0 for vanilla PCA).
        means: (2, d) running group means (FNPM's first phase).
        counts: (2,) samples seen per group in the first phase.
        W: (d, r) the second-moment gap's top eigenvectors (FNPM ``mode="all"``).
        W_acc: (2, d, r) its block accumulators, one per group.
        samples: samples consumed so far; blocks: blocks completed (of the current phase).
        phase: "gap" while learning N, "pca" while learning V.
    """

    V: np.ndarray
    acc: np.ndarray
    N: np.ndarray
    means: np.ndarray = field(default_factory=lambda: np.zeros((2, 0)))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.int64))
    W: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    W_acc: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    samples: int = 0
    blocks: int = 0
    phase: str = "pca"

    @property
    def nbytes(self) -> int:
        """Bytes held by the state's arrays: O(dk + dr + d), independent of the stream's length."""
        return sum(a.nbytes for a in (self.V, self.acc, self.N, self.means, self.counts, self.W, self.W_acc))


def _random_basis(d: int, k: int, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q


def _chunks(stream: Stream, d: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for x, s in stream:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        s = np.atleast_1d(np.asarray(s))
        if x.shape[1] != d or len(s) != len(x):
            raise ValueError(f"stream chunks must be x of shape (m, {d}) and s of shape (m,), got {x.shape}, {s.shape}")
        yield x, s


def _pieces(stream: Iterator[tuple[np.ndarray, np.ndarray]], block: int, count: int,
            carry: list) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """Cut a stream of chunks into ``count`` blocks of exactly ``block`` samples, piece by piece.

    Yields (x, s, last): pieces of the stream's chunks, ``last`` marking a block's final piece. A
    chunk that straddles a block boundary is split and its remainder kept in ``carry`` (one chunk at
    most) for the next block or the next phase, so no sample is dropped or reused and nothing larger
    than one chunk is ever held.
    """
    for _ in range(count):
        need = block
        while need:
            if carry:
                x, s = carry.pop()
            else:
                try:
                    x, s = next(stream)
                except StopIteration:
                    raise ValueError("the stream ended before the requested number of blocks") from None
            take = min(need, len(x))
            if take < len(x):
                carry.append((x[take:], s[take:]))
            need -= take
            yield x[:take], s[:take], need == 0


def noisy_power_method(
    stream: Stream, k: int, *, blocks: int, block_size: int, d: int, seed: int = 0,
    projector: np.ndarray | None = None,
) -> Iterator[StreamingPCAState]:
    """Vanilla streaming PCA: V ← QR(Σ̂_block V) for each block; yields the state after each block.

    Args:
        stream: an iterable of (x, s) chunks, x of shape (m, d) (s is ignored here).
        k: the subspace dimension; d: the data dimension.
        blocks: the number of blocks (power iterations); block_size: samples per block.
        seed: seeds the random starting basis.
        projector: an optional fixed (d, d) projector P: the iteration becomes V ← QR(PΣ̂PV).
    """
    rng = np.random.default_rng(seed)
    state = StreamingPCAState(V=_random_basis(d, k, rng), acc=np.zeros((d, k)), N=np.zeros((d, 0)))
    yield from _power_phase(state, _chunks(stream, d), [], blocks=blocks, block_size=block_size,
                            projector=projector)


def _project(x: np.ndarray, N: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Rows of x times P = I − λNNᵀ: x − λ(xN)Nᵀ (λ = 1 projects span(N) out entirely)."""
    return x - strength * (x @ N) @ N.T if N.size else x


def _power_phase(state: StreamingPCAState, chunks: Iterator, carry: list, *, blocks: int, block_size: int,
                 projector: np.ndarray | None = None, tradeoff: float = 1.0) -> Iterator[StreamingPCAState]:
    state.phase, state.blocks = "pca", 0
    state.acc[:] = 0.0
    for x, _, last in _pieces(chunks, block_size, blocks, carry):
        if projector is not None:
            x = x @ projector
        else:
            x = _project(x, state.N, tradeoff)  # P x, never forming the d x d matrix P
        state.acc += x.T @ (x @ state.V)  # Σ (Px)(Px)ᵀV = b·PΣ̂PV, accumulated piece by piece
        state.samples += len(x)
        if last:
            state.V, _ = np.linalg.qr(state.acc / block_size)
            state.acc[:] = 0.0
            state.blocks += 1
            yield state


def fair_noisy_power_method(
    stream: Stream, k: int, *, d: int, gap_blocks: int, gap_block_size: int, blocks: int, block_size: int,
    mode: Mode = "mean", rank: int = 0, tradeoff: float = 1.0, seed: int = 0,
) -> Iterator[StreamingPCAState]:
    """FNPM: learn the unfair subspace N from the stream, then run the noisy power method on PΣ̂P.

    Phase 1 ("gap", ``gap_blocks`` blocks of ``gap_block_size`` labelled samples): running group
    means give f̂ = μ̂₁ − μ̂₀; with ``mode="all"`` a noisy power method on the second-moment gap,
    W ← QR((n₀/b)·M̂₁W − (n₁/b)·M̂₀W) with M̂_g the block's group-g second moments (the official
    code's update), learns its top-``rank`` eigenvectors W. Then N = orth([f̂, W]) (N = f̂/‖f̂‖ for
    ``mode="mean"``). Phase 2 ("pca", ``blocks`` blocks of ``block_size`` samples): V ← QR(PΣ̂PV)
    with P = I − NNᵀ. Yields the state after every block of both phases.

    Args:
        stream: an iterable of (x, s) chunks (x: (m, d), s: (m,) in {0, 1}).
        k: the subspace dimension; d: the data dimension.
        mode: ``"mean"`` (match the projected group means) or ``"all"`` (means and second moments).
        rank: r, the number of second-moment-gap directions removed (``mode="all"``).
        tradeoff: λ in P = I − λNNᵀ (the official code's ``fairness_tradeoff``): 1 removes the
            unfair subspace, 0 is vanilla PCA, values between trade fairness for variance.
        seed: seeds the random starting bases.
    """
    if mode not in ("mean", "all"):
        raise ValueError(f"unknown mode {mode!r}: use 'mean' or 'all'")
    if mode == "all" and not 0 < rank < d:
        raise ValueError(f"mode='all' needs 0 < rank < d, got rank={rank}")
    if mode == "mean":
        rank = 0
    rng = np.random.default_rng(seed)
    W = _random_basis(d, rank, rng) if rank else np.zeros((d, 0))
    # N is allocated at its final size (f and W) from the start: the state never grows
    state = StreamingPCAState(V=_random_basis(d, k, rng), acc=np.zeros((d, k)), N=np.zeros((d, 1 + rank)),
                              means=np.zeros((2, d)), counts=np.zeros(2, dtype=np.int64), W=W,
                              W_acc=np.zeros((2, d, rank)), phase="gap")
    chunks, carry = _chunks(stream, d), []
    block_counts = np.zeros(2, dtype=np.int64)
    for x, s, last in _pieces(chunks, gap_block_size, gap_blocks, carry):
        for g in (0, 1):
            xg = x[s == g]
            if not len(xg):
                continue
            state.counts[g] += len(xg)
            state.means[g] += (xg.sum(0) - len(xg) * state.means[g]) / state.counts[g]  # running mean
            block_counts[g] += len(xg)
            if rank:
                state.W_acc[g] += xg.T @ (xg @ state.W)  # b·M̂_g W, the block's group-g second moment
        state.samples += len(x)
        if last:
            if rank:
                # the official update: each group's second moment weighted by the other's share
                b = gap_block_size
                G = (block_counts[0] * state.W_acc[1] - block_counts[1] * state.W_acc[0]) / b**2
                state.W, _ = np.linalg.qr(G)
                state.W_acc[:] = 0.0
            block_counts[:] = 0
            state.blocks += 1
            yield state
    f = state.means[1] - state.means[0]
    norm = np.linalg.norm(f)
    if norm == 0:
        raise ValueError("the groups' estimated means are equal: no mean gap to remove (did both groups appear?)")
    state.N[:] = np.linalg.qr(np.column_stack([f, state.W]))[0]  # f/‖f‖ for mode="mean"
    yield from _power_phase(state, chunks, carry, blocks=blocks, block_size=block_size, tradeoff=tradeoff)


# --------------------------------------------------------------------------- offline and metrics
def unfair_subspace(f: np.ndarray, second_moment_gap: np.ndarray | None = None, rank: int = 0) -> np.ndarray:
    """The exact unfair subspace N: f/‖f‖, or orth([top-``rank`` |eigen|vectors of the gap, f]).

    The second-moment gap is symmetric and indefinite; its directions of largest |eigenvalue| are
    the top eigenvectors of its square, as in the official code.
    """
    f = np.asarray(f, dtype=np.float64)
    if rank == 0:
        return (f / np.linalg.norm(f))[:, None]
    if second_moment_gap is None:
        raise ValueError("rank > 0 needs the second-moment gap")
    vals, vecs = np.linalg.eigh(second_moment_gap)
    W = vecs[:, np.argsort(-np.abs(vals))[:rank]]
    f_rest = f - W @ (W.T @ f)
    if np.linalg.norm(f_rest) < 1e-12 * max(1.0, np.linalg.norm(f)):
        return W
    return np.column_stack([W, f_rest / np.linalg.norm(f_rest)])


def fair_pca(
    Sigma: np.ndarray, N: np.ndarray | None, k: int, *, tradeoff: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Offline (fair) PCA: the top-k eigenvectors of PΣP with P = I − λNNᵀ (plain PCA if N is None).

    Returns:
        (V, eigenvalues): V of shape (d, k), orthonormal (and orthogonal to N when λ = 1); the k
        eigenvalues, largest first.
    """
    Sigma = np.asarray(Sigma, dtype=np.float64)
    P = np.eye(len(Sigma)) if N is None or N.size == 0 else np.eye(len(Sigma)) - tradeoff * N @ N.T
    vals, vecs = np.linalg.eigh(P @ Sigma @ P)
    order = np.argsort(vals)[::-1][:k]
    return vecs[:, order], vals[order]


def principal_angles(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between span(U) and span(V), both (d, k) orthonormal."""
    Qu, _ = np.linalg.qr(U)
    Qv, _ = np.linalg.qr(V)
    cos = np.linalg.svd(Qu.T @ Qv, compute_uv=False)
    return np.sort(np.arccos(np.clip(cos, -1.0, 1.0)))


def explained_variance_ratio(V: np.ndarray, Sigma: np.ndarray, *, top: float | None = None) -> float:
    """tr(VᵀΣV) over the sum of Σ's top-k eigenvalues: 1 for the PCA subspace itself.

    Args:
        top: that sum, if already known (saves an eigendecomposition per call in a loop).
    """
    if top is None:
        top = float(np.sort(np.linalg.eigvalsh(Sigma))[::-1][: V.shape[1]].sum())
    return float(np.trace(V.T @ Sigma @ V) / top)


def mean_gap(V: np.ndarray, f: np.ndarray) -> float:
    """‖Vᵀf‖: the distance between the projected group means."""
    return float(np.linalg.norm(V.T @ f))


def covariance_gap(V: np.ndarray, covariance_gap: np.ndarray) -> float:
    """‖Vᵀ(Σ₁ − Σ₀)V‖_F: how different the projected group covariances are."""
    return float(np.linalg.norm(V.T @ covariance_gap @ V))
