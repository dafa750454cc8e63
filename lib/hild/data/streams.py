"""Data that arrives in chunks from a fixed distribution, and a synthetic source for it.

A :class:`ChunkedStream` splits a training set into equal chunks in a random order; stage ``i``
of an experiment sees ``stream.seen(i)``, all data of chunks 0..i (the stationary, incremental
setting of Ash and Adams 2020 and Shin et al. 2024: the model is retrained after each chunk on
everything seen so far). :func:`gaussian_classes` is a synthetic classification task with a known
signal: x = s·f_y + ε, one random unit vector f_y per class and isotropic noise ε ~ N(0, I), so a
network can either learn the d-dimensional class directions or memorise the noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .real import Split

__all__ = ["ChunkedStream", "gaussian_classes", "dataset_tensors"]


def gaussian_classes(n_train: int, n_test: int, *, d: int, n_classes: int, signal: float, seed: int = 0,
                     dtype: torch.dtype = torch.float32) -> Split:
    """x = signal·f_y + N(0, I_d) with f_y a random unit vector per class and y uniform.

    Args:
        n_train, n_test: examples in each part (drawn independently from the same distribution).
        d: input dimension.
        n_classes: number of classes.
        signal: the norm of the class direction in each input (the noise has norm about √d).
        seed: seeds the class directions, labels and noise (a fresh generator).
    """
    if min(n_train, n_test, d, n_classes) < 1:
        raise ValueError("n_train, n_test, d and n_classes must be positive")
    g = torch.Generator().manual_seed(int(seed))
    f = torch.randn(n_classes, d, generator=g, dtype=torch.float64)
    f = f / f.norm(dim=1, keepdim=True)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, n_classes, (n,), generator=g)
        x = signal * f[y] + torch.randn(n, d, generator=g, dtype=torch.float64)
        return x.to(dtype), y

    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    return Split(xtr, ytr, xte, yte, n_classes)


def dataset_tensors(dataset, *, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole (small) data set as two tensors ``(x, y)``, e.g. CIFAR-10 from
    :func:`hild.data.torchvision_dataset`, so that training can index batches on the GPU.

    A torchvision image set with uint8 ``data`` of shape (N, H, W, C) is converted directly to
    floats in [0, 1] of shape (N, C, H, W) (what ``ToTensor`` gives, without a Python loop);
    anything else is read item by item.
    """
    data = getattr(dataset, "data", None)
    targets = getattr(dataset, "targets", None)
    if hasattr(data, "dtype") and str(data.dtype) == "uint8" and getattr(data, "ndim", 0) == 4 and targets is not None:
        x = torch.as_tensor(data).permute(0, 3, 1, 2).float().div_(255)
        y = torch.as_tensor(targets, dtype=torch.int64)
    else:
        xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
        x, y = torch.stack(list(xs)), torch.as_tensor([int(v) for v in ys], dtype=torch.int64)
    return (x.to(device), y.to(device)) if device is not None else (x, y)


@dataclass(frozen=True)
class ChunkedStream:
    """A training set cut into ``n_chunks`` equal chunks in a random order.

    ``stream.chunk(i)`` is the i-th chunk and ``stream.seen(i)`` the union of chunks 0..i, both as
    ``(x, y)``; iterating yields ``(i, x_seen, y_seen)`` for i = 0..n_chunks-1. Examples left over
    when ``n`` is not divisible by ``n_chunks`` are dropped (as ``random_split`` into equal parts
    would need).

    Attributes:
        x, y: the whole training set.
        n_chunks: number of chunks.
        order: (n_chunks·chunk_size,) the permutation of example indices, chunk after chunk.
    """

    x: torch.Tensor
    y: torch.Tensor
    n_chunks: int
    order: torch.Tensor

    @classmethod
    def split(cls, x: torch.Tensor, y: torch.Tensor, n_chunks: int, *, seed: int = 0) -> "ChunkedStream":
        """Shuffle ``(x, y)`` with ``seed`` and cut it into ``n_chunks`` equal chunks."""
        n = len(x)
        if len(y) != n:
            raise ValueError(f"x has {n} examples but y has {len(y)}")
        if not 1 <= n_chunks <= n:
            raise ValueError(f"n_chunks must be between 1 and the number of examples ({n}), got {n_chunks}")
        size = n // n_chunks
        order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[: size * n_chunks]
        return cls(x, y, int(n_chunks), order)

    @property
    def chunk_size(self) -> int:
        return len(self.order) // self.n_chunks

    def __len__(self) -> int:
        return self.n_chunks

    def _check(self, i: int) -> None:
        if not 0 <= i < self.n_chunks:
            raise IndexError(f"chunk {i} out of range 0..{self.n_chunks - 1}")

    def chunk(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples of chunk ``i`` alone."""
        self._check(i)
        idx = self.order[i * self.chunk_size : (i + 1) * self.chunk_size].to(self.x.device)
        return self.x[idx], self.y[idx]

    def seen(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """All examples of chunks 0..i, the training set of stage ``i``."""
        self._check(i)
        idx = self.order[: (i + 1) * self.chunk_size].to(self.x.device)
        return self.x[idx], self.y[idx]

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        for i in range(self.n_chunks):
            yield (i, *self.seen(i))
