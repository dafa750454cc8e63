"""Modular arithmetic tables, the data sets of grokking (Power et al., 2022; Thilak et al., 2022).

Every pair (a, b) of residues mod a prime p, labelled with a ∘ b mod p, split once into a training
and a test set::

    split = modular_arithmetic(31, op="add", train_fraction=0.5, seed=0)
    split.x_train    # (n_train, 2) int64 pairs (a, b);  split.y_train: (n_train,) answers
    split.tokens("train")   # (n_train, 4) sequences "a ∘ b =" for a transformer, ids below

Each valid pair appears exactly once across the two sets, and the training set holds exactly
``round(train_fraction · n_pairs)`` of them. Division is a · b⁻¹ mod p, so its pairs have b ≠ 0.
Token ids for :meth:`ModularSplit.tokens`: residues are 0 … p − 1, then ``op`` is p and ``=`` is
p + 1 (vocabulary p + 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["OPERATIONS", "ModularSplit", "modular_arithmetic", "modular_table"]

OPERATIONS = ("add", "sub", "mul", "div")
Op = Literal["add", "sub", "mul", "div"]


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % k for k in range(2, int(p**0.5) + 1))


def modular_table(p: int, op: Op = "add") -> tuple[torch.Tensor, torch.Tensor]:
    """All valid pairs (a, b) in row-major order and their answers a ∘ b mod p.

    Returns:
        pairs (n, 2) int64 and answers (n,) int64, with n = p² (p(p − 1) for ``div``).
    """
    if op not in OPERATIONS:
        raise ValueError(f"op={op!r}: use one of {OPERATIONS}")
    if not _is_prime(p):
        raise ValueError(f"p={p} is not prime: the residues mod p form a field only for prime p")
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.flatten(), b.flatten()
    if op == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
        inv = torch.tensor([pow(int(v), p - 2, p) for v in range(p)])  # Fermat: b⁻¹ = b^(p−2)
        y = a * inv[b] % p
    else:
        y = {"add": a + b, "sub": a - b, "mul": a * b}[op] % p
    return torch.stack([a, b], dim=1), y


@dataclass(frozen=True, eq=False)
class ModularSplit:
    """A modular-arithmetic table split into training and test pairs.

    Attributes:
        p: the prime modulus; op: the operation.
        x_train, x_test: (n, 2) int64 pairs (a, b).
        y_train, y_test: (n,) int64 answers a ∘ b mod p.
    """

    p: int
    op: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n_pairs(self) -> int:
        return len(self.x_train) + len(self.x_test)

    @property
    def train_fraction(self) -> float:
        return len(self.x_train) / self.n_pairs

    @property
    def vocab_size(self) -> int:
        """Residues, the operation token and ``=``: p + 2 token ids."""
        return self.p + 2

    def tokens(self, part: Literal["train", "test"]) -> torch.Tensor:
        """The pairs as sequences ``a ∘ b =`` of token ids, (n, 4); the answer follows ``=``."""
        x = {"train": self.x_train, "test": self.x_test}.get(part)
        if x is None:
            raise ValueError(f"part={part!r}: use 'train' or 'test'")
        n = len(x)
        op, eq = torch.full((n,), self.p, device=x.device), torch.full((n,), self.p + 1, device=x.device)
        return torch.stack([x[:, 0], op, x[:, 1], eq], dim=1)

    def to(self, device: torch.device | str) -> "ModularSplit":
        return ModularSplit(self.p, self.op, *(t.to(device) for t in
                                               (self.x_train, self.y_train, self.x_test, self.y_test)))


def modular_arithmetic(p: int, *, op: Op = "add", train_fraction: float = 0.5, seed: int = 0) -> ModularSplit:
    """Split all pairs of the table a ∘ b mod p at random into training and test sets.

    Args:
        p: a prime modulus.
        op: ``"add"``, ``"sub"``, ``"mul"`` or ``"div"``.
        train_fraction: the share of pairs used for training; the training set holds exactly
            ``round(train_fraction · n_pairs)`` pairs, and at least one pair is left on each side.
        seed: seeds the split (a ``torch.Generator``, independent of the global seed).
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    x, y = modular_table(p, op)
    n = len(x)
    n_train = min(max(round(train_fraction * n), 1), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:n_train], perm[n_train:]
    return ModularSplit(p, op, x[tr], y[tr], x[te], y[te])
