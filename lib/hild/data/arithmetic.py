"""Arithmetic tasks for the length-generalization chapters: formats, position ids, batches, scores.

One format covers everything, following the official code of Cho et al. (github
HanseulJo/position-coupling, tasks ``addition_coupled`` and ``multiple_addition_scratchpad_coupled``):

* operands are written most significant digit first and zero-padded to their common length ``n``;
* the answer is written least significant digit first (reversed) and zero-padded to ``W`` digits,
  the length of the largest possible sum (``W = n + 1`` for two to ten operands);
* with a *scratchpad*, the answer is the list of running sums ``S_0 = 0, S_1, ..., S_k`` separated
  by ``>``, and the operands too are padded to ``W`` digits, so that every digit of every running
  sum has an operand digit of its significance;
* ``$`` starts and ends every sequence, ``_`` pads a batch on the right.

::

    2-operand addition      $368+020=8830$                       (368 + 20 = 388, reversed 8830)
    3 operands, scratchpad  $0057+0008+0136=0000>7500>5600>1020$ (57 + 8 + 136 = 201)

Position ids (the official code's "coupled" scheme, with start ``s``):

* **coupled / significance ids**: an operand or answer digit of significance ``i`` (``i = 0`` for
  the units) gets ``s + 1 + i``; ``+``, ``=`` and ``>`` get ``s``; both ``$`` get 0;
* **operand ids** (the second stream of *multi-level* coupling): operand ``j`` (from 0) and the
  ``+`` after it get ``s + j``; the running sum ``S_j`` and the ``=`` or ``>`` before it get ``s + j``,
  so that ``S_(j+1)`` is written one operand id after both of its summands ``S_j`` and operand ``j``.

In training both starts are drawn at random so that the ids of long test problems have been seen.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

__all__ = [
    "TOKENS", "VOCAB_SIZE", "EOS", "PAD", "IGNORE", "encode", "decode",
    "addition_text", "scratchpad_text", "answer_width",
    "coupled_positions", "operand_positions", "multilevel_positions",
    "multiplication_text", "multiplication_positions", "MultiplicationTask",
    "AdditionTask", "Batch", "LengthScores", "scored_rows", "next_token_loss", "score", "evaluate",
]

TOKENS = "0123456789+=>*$_"
"""The vocabulary, one character per token: the digits have ids 0-9."""
VOCAB_SIZE = len(TOKENS)
EOS = TOKENS.index("$")  # start and end of a sequence (the official code's bos_to_eos)
PAD = TOKENS.index("_")
IGNORE = -100  # target id of tokens that carry no loss (F.cross_entropy's ignore_index)
_ID = {c: i for i, c in enumerate(TOKENS)}
_PLUS, _EQ, _SEP = _ID["+"], _ID["="], _ID[">"]
_CHARS = "digits 0-9, '+', '=', '>', '*', '$' (start/end) and '_' (padding)"

Position = Literal["absolute", "coupled", "multilevel", "none"]


def encode(text: str) -> torch.Tensor:
    """Token ids of ``text``, one per character: ``encode("$1+2=30$")``."""
    ids = []
    for i, c in enumerate(text):
        if c not in _ID:
            raise ValueError(f"{c!r} at index {i} of {text!r} is not a token: the vocabulary is {_CHARS}")
        ids.append(_ID[c])
    return torch.tensor(ids, dtype=torch.long)


def decode(ids) -> str:
    """The text of a sequence of token ids (a tensor, array or list)."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    bad = [i for i in ids if not 0 <= int(i) < VOCAB_SIZE]
    if bad:
        raise ValueError(f"token ids {bad[:5]} are outside the vocabulary 0..{VOCAB_SIZE - 1}")
    return "".join(TOKENS[int(i)] for i in ids)


# ------------------------------------------------------------------ formats


def answer_width(n_digits: int, n_operands: int = 2) -> int:
    """W: digits of the largest sum of ``n_operands`` numbers of ``n_digits`` digits (n + 1 for 2-10)."""
    if n_digits < 1 or n_operands < 1:
        raise ValueError(f"need n_digits >= 1 and n_operands >= 1, got {n_digits} and {n_operands}")
    return len(str(n_operands * (10**n_digits - 1)))


def _check_numbers(numbers, n_digits):
    numbers = [int(x) for x in numbers]
    if len(numbers) < 2:
        raise ValueError(f"an addition needs at least two numbers, got {numbers}")
    if any(x < 0 for x in numbers):
        raise ValueError(f"the tasks add non-negative integers, got {numbers}")
    longest = max(len(str(x)) for x in numbers)
    n = longest if n_digits is None else int(n_digits)
    if n < longest:
        raise ValueError(f"n_digits={n} is shorter than the longest number ({longest} digits) in {numbers}")
    return numbers, n


def addition_text(numbers, n_digits: int | None = None) -> str:
    """The sequence of an addition without scratchpad: ``addition_text([368, 20]) == "$368+020=8830$"``.

    Args:
        numbers: two or more non-negative integers.
        n_digits: operand length n (default: the longest number); operands are zero-padded to n
            digits, the reversed answer to W = :func:`answer_width` digits.
    """
    numbers, n = _check_numbers(numbers, n_digits)
    w = answer_width(n, len(numbers))
    return "$" + "+".join(f"{x:0{n}d}" for x in numbers) + "=" + f"{sum(numbers):0{w}d}"[::-1] + "$"


def scratchpad_text(numbers, n_digits: int | None = None) -> str:
    """The sequence of a multi-operand addition with running sums ``S_0 = 0, S_1, ..., S_k``.

    ``scratchpad_text([57, 8, 136]) == "$0057+0008+0136=0000>7500>5600>1020$"``: every number is W
    digits wide (W = :func:`answer_width`), operands most significant digit first, running sums
    least significant first.
    """
    numbers, n = _check_numbers(numbers, n_digits)
    w = answer_width(n, len(numbers))
    sums = [sum(numbers[:j]) for j in range(len(numbers) + 1)]
    return ("$" + "+".join(f"{x:0{w}d}" for x in numbers) + "="
            + ">".join(f"{s:0{w}d}"[::-1] for s in sums) + "$")


_FORMAT = re.compile(r"^\$(?P<ops>\d+(?:\+\d+)+)=(?P<ans>[\d>]*)(?P<end>\$?)$")


def _parse(text: str) -> tuple[list[str], list[str], bool]:
    """Operands and answer numbers of a (possibly unfinished) addition sequence, checked."""
    for i, c in enumerate(text):
        if c not in _ID:
            raise ValueError(f"{c!r} at index {i} of {text!r} is not a token: the vocabulary is {_CHARS}")
    m = _FORMAT.match(text)
    if m is None:
        raise ValueError(
            f"{text!r} is not an addition sequence: expected '$', operands joined by '+', '=', the answer "
            f"(numbers joined by '>' for a scratchpad) and optionally the closing '$', e.g. '$368+020=8830$'")
    ops = m["ops"].split("+")
    if len({len(o) for o in ops}) != 1:
        raise ValueError(f"operands {ops} of {text!r} differ in length: zero-pad them to the same number "
                         f"of digits (e.g. '$368+020=...')")
    answers = m["ans"].split(">") if m["ans"] else []
    if m["end"] and (not answers or any(len(a) == 0 for a in answers)):
        raise ValueError(f"{text!r} ends with '$' but its answer is missing or has an empty number")
    return ops, answers, bool(m["end"])


# ------------------------------------------------------------------ position ids


def coupled_positions(text: str, start: int = 1) -> list[int]:
    """Coupled position ids: a digit of significance i gets ``start + 1 + i``.

    Operands (most significant digit first) count down to ``start + 1``; answer numbers (least
    significant first) count up from ``start + 1``; ``+``, ``=`` and ``>`` get ``start``; both ``$``
    get 0. ``coupled_positions("$368+020=8830$")`` is ``[0, 4, 3, 2, 1, 4, 3, 2, 1, 2, 3, 4, 5, 0]``.
    The text may stop anywhere after ``=`` (a prompt, or a partly generated answer).
    """
    if start < 1:
        raise ValueError(f"start must be at least 1 (0 is the id of '$'), got {start}")
    ops, answers, end = _parse(text)
    ids = [0]
    for op in ops:
        ids += [start + len(op) - i for i in range(len(op))] + [start]  # '+' after it, '=' after the last
    for j, a in enumerate(answers):
        ids += ([start] if j else []) + [start + 1 + i for i in range(len(a))]
    return ids + ([0] if end else [])


def operand_positions(text: str, start: int = 1) -> list[int]:
    """Operand ids, the second stream of multi-level coupling.

    Operand j (from 0) and the ``+`` after it get ``start + j``; running sum S_j and the ``=`` or ``>``
    before it get ``start + j``; both ``$`` get 0.
    """
    if start < 1:
        raise ValueError(f"start must be at least 1 (0 is the id of '$'), got {start}")
    ops, answers, end = _parse(text)
    ids = [0]
    for j, op in enumerate(ops[:-1]):
        ids += [start + j] * (len(op) + 1)
    ids += [start + len(ops) - 1] * len(ops[-1])
    for j, a in enumerate(answers):
        ids += [start + j] * (len(a) + 1)  # '=' or '>' and the digits of S_j
    if not answers:
        ids.append(start)  # the '=' of a bare prompt
    return ids + ([0] if end else [])


def multilevel_positions(text: str, start: tuple[int, int] = (1, 1)) -> list[tuple[int, int]]:
    """(significance id, operand id) of every token: :func:`coupled_positions` and
    :func:`operand_positions` side by side."""
    return list(zip(coupled_positions(text, start[0]), operand_positions(text, start[1])))


# ------------------------------------------------------------------ batches


@dataclass(frozen=True)
class Batch:
    """Token sequences with their position ids and next-token targets.

    Attributes:
        tokens: (B, T) int64, right-padded with PAD.
        positions: (B, T) or (B, T, 2) int64 position ids (0 on padding), or None for NoPE.
        targets: (B, T) int64: at index t the token t + 1 where it is scored (the answer and the final
            ``$``), IGNORE elsewhere. ``F.cross_entropy(logits.transpose(1, 2), targets)`` is the loss.
        prompt_len: (B,) int64: tokens up to and including ``=``.
        n_digits, n_operands: (B,) int64: each row's operand length and count.
    """

    tokens: torch.Tensor
    positions: torch.Tensor | None
    targets: torch.Tensor
    prompt_len: torch.Tensor
    n_digits: torch.Tensor
    n_operands: torch.Tensor

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def texts(self) -> list[str]:
        return [decode(row).rstrip("_") for row in self.tokens]


def _add_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sum of two (B, W) digit arrays, least significant digit first (no overflow past W)."""
    out = np.empty_like(x)
    carry = np.zeros(x.shape[0], dtype=x.dtype)
    for i in range(x.shape[1]):
        s = x[:, i] + y[:, i] + carry
        out[:, i], carry = s % 10, s // 10
    return out


class _Task:
    """What the arithmetic tasks share: batches of mixed lengths built from one layout per group."""

    position: str
    digits: tuple[int, int]
    operands: tuple[int, int]

    @property
    def n_streams(self) -> int:
        """Position-id streams per token (one table each in the model)."""
        return 1

    def length(self, n_digits: int, n_operands: int, *, check: bool = False) -> int:
        raise NotImplementedError

    def _rows(self, n: int, k: int, size: int, rng: np.random.Generator, train: bool):
        raise NotImplementedError

    def batch(self, size: int, *, rng: np.random.Generator | int, n_digits: int | None = None,
              n_operands: int | None = None, train: bool = True) -> Batch:
        """``size`` random problems (lengths and counts uniform on the task's ranges unless fixed).

        Args:
            rng: a NumPy generator or a seed.
            n_digits, n_operands: fix the length / count (test problems may exceed the training ranges).
            train: draw random position starts (True) or start at 1 (False, test).
        """
        rng = np.random.default_rng(rng)
        ns = np.full(size, n_digits) if n_digits is not None else rng.integers(self.digits[0], self.digits[1] + 1, size)
        ks = np.full(size, n_operands) if n_operands is not None else rng.integers(self.operands[0], self.operands[1] + 1, size)
        groups = sorted(set(zip(ns.tolist(), ks.tolist())))
        for n, k in groups:
            self.length(n, k, check=True)
        order = np.arange(size)
        rows = []
        for n, k in groups:
            idx = order[(ns == n) & (ks == k)]
            tok, pos, tgt, prompt = self._rows(n, k, len(idx), rng, train)
            rows.append((idx, tok, pos, tgt, prompt))
        T = max(r[1].shape[1] for r in rows)
        S = self.n_streams
        tokens = np.full((size, T), PAD, dtype=np.int64)
        targets = np.full((size, T), IGNORE, dtype=np.int64)
        positions = np.zeros((size, T, S), dtype=np.int64)
        prompt_len = np.zeros(size, dtype=np.int64)
        for idx, tok, pos, tgt, prompt in rows:
            L = tok.shape[1]
            tokens[idx, :L], targets[idx, :L], prompt_len[idx] = tok, tgt, prompt
            if pos is not None:
                positions[idx, :L] = pos.reshape(len(idx), L, S)
        as_t = torch.from_numpy
        pos_t = None if self.position == "none" else as_t(positions if S > 1 else positions[..., 0])
        return Batch(as_t(tokens), pos_t, as_t(targets), as_t(prompt_len), as_t(ns.astype(np.int64)),
                     as_t(ks.astype(np.int64)))

    def batches(self, size: int, *, seed: int = 0):
        """A function step -> training batch, the same batch for the same (seed, step) (replayable)."""
        return lambda step: self.batch(size, rng=np.random.default_rng([seed, step]))


@dataclass(frozen=True)
class AdditionTask(_Task):
    """Additions of ``n_operands`` numbers of ``n_digits`` digits, both drawn uniformly from a range.

    Every operand is a uniform random string of exactly n digits (leading zeros allowed, which is
    the zero-padding). The lengths and counts are drawn per problem, uniformly on the given
    (inclusive) ranges, so each length is equally frequent in training.

    Attributes:
        digits: (min, max) operand length in training.
        operands: (min, max) operand count in training ((2, 2): plain addition).
        scratchpad: write the running sums S_0..S_k instead of the sum alone.
        position: which ids :meth:`batch` returns: "coupled" (significance ids), "multilevel"
            (significance and operand ids), "absolute" (0, then s, s+1, ... per token), "none".
        max_position: the largest significance id (coupled, multilevel) or token id (absolute)
            the model's table holds; training starts are drawn so that every id stays within it.
        max_operand_position: the largest operand id (multilevel).
        random_start: draw the starts at random in training (at test they are 1).
    """

    digits: tuple[int, int] = (1, 5)
    operands: tuple[int, int] = (2, 2)
    scratchpad: bool = False
    position: Position = "coupled"
    max_position: int = 20
    max_operand_position: int = 0
    random_start: bool = True

    def __post_init__(self) -> None:
        (d0, d1), (k0, k1) = self.digits, self.operands
        if not 1 <= d0 <= d1:
            raise ValueError(f"digits must be a range 1 <= min <= max, got {self.digits}")
        if not 2 <= k0 <= k1:
            raise ValueError(f"operands must be a range 2 <= min <= max, got {self.operands}")
        if self.position not in ("absolute", "coupled", "multilevel", "none"):
            raise ValueError(f"position={self.position!r}: use 'absolute', 'coupled', 'multilevel' or 'none'")
        if self.position == "multilevel" and not self.scratchpad:
            raise ValueError("multilevel ids index the running sums: use them with scratchpad=True")
        if self.position == "multilevel" and self.max_operand_position < k1 + 1:
            raise ValueError(f"max_operand_position={self.max_operand_position} cannot hold the operand ids of "
                             f"{k1} operands: it needs at least {k1 + 1}")
        self.length(d1, k1, check=True)

    @property
    def n_streams(self) -> int:
        return 2 if self.position == "multilevel" else 1

    # layout ---------------------------------------------------------------------------------
    def width(self, n_digits: int, n_operands: int) -> int:
        return answer_width(n_digits, n_operands)

    def length(self, n_digits: int, n_operands: int, *, check: bool = False) -> int:
        """Tokens in a sequence of ``n_operands`` numbers of ``n_digits`` digits (the ids it needs
        are checked against the tables with ``check=True``)."""
        w = self.width(n_digits, n_operands)
        prompt = 1 + n_operands * (w + 1)
        answer = (n_operands + 1) * (w + 1) if self.scratchpad else w + 1
        total = prompt + answer
        if check:
            need = {"absolute": total - 2, "coupled": w + 1, "multilevel": w + 1, "none": 0}[self.position]
            if need > self.max_position:
                raise ValueError(
                    f"{n_operands} operands of {n_digits} digits need position ids up to {need} with "
                    f"position={self.position!r}, but max_position={self.max_position}: raise max_position")
            if self.position == "multilevel" and n_operands + 1 > self.max_operand_position:
                raise ValueError(
                    f"{n_operands} operands need operand ids up to {n_operands + 1}, but "
                    f"max_operand_position={self.max_operand_position}: raise max_operand_position")
        return total

    def template(self, n_digits: int, n_operands: int) -> tuple[str, np.ndarray, np.ndarray]:
        """The text of an all-zero problem and its significance and operand ids (start 1)."""
        numbers = [0] * n_operands
        text = (scratchpad_text if self.scratchpad else addition_text)(numbers, n_digits)
        return text, np.array(coupled_positions(text)), np.array(operand_positions(text))

    # sampling -------------------------------------------------------------------------------
    def _rows(self, n: int, k: int, size: int, rng: np.random.Generator, train: bool):
        """``size`` problems of k operands with n digits: tokens, ids, targets (numpy)."""
        text, sig, opi = self.template(n, k)
        w = self.width(n, k)
        n_in = w if self.scratchpad else n  # digits written per operand
        digits = rng.integers(0, 10, size=(size, k, n))
        ops = np.zeros((size, k, n_in), dtype=np.int64)
        ops[:, :, n_in - n:] = digits  # most significant first, zero-padded on the left
        lsb = np.zeros((size, k, w), dtype=np.int64)
        lsb[:, :, :n] = digits[:, :, ::-1]
        sums = [np.zeros((size, w), dtype=np.int64)]
        for j in range(k):
            sums.append(_add_columns(sums[-1], lsb[:, j]))
        pieces = [np.full((size, 1), EOS)]
        for j in range(k):
            pieces += [ops[:, j], np.full((size, 1), _PLUS if j < k - 1 else _EQ)]
        answers = sums if self.scratchpad else [sums[-1]]
        for j, s in enumerate(answers):
            pieces += ([np.full((size, 1), _SEP)] if j else []) + [s]
        pieces.append(np.full((size, 1), EOS))
        tokens = np.concatenate(pieces, axis=1)
        assert tokens.shape[1] == len(text), (tokens.shape, text)
        prompt = 1 + k * (n_in + 1)
        targets = np.full_like(tokens, IGNORE)
        targets[:, prompt - 1:-1] = tokens[:, prompt:]
        T = tokens.shape[1]

        def starts(hi: int) -> np.ndarray:  # (size, 1): uniform on 1..hi in training, 1 at test
            if train and self.random_start and hi > 1:
                return rng.integers(1, hi + 1, size=(size, 1))
            return np.ones((size, 1), dtype=np.int64)

        if self.position == "absolute":
            hi = self.max_position - (T - 2)
            s = starts(hi)
            pos = np.concatenate([np.zeros((size, 1), dtype=np.int64),
                                  s + np.arange(T - 1)[None, :]], axis=1)
            pos[:, -1] = 0  # the final '$' is never an input that is scored; keep its id in range
        elif self.position in ("coupled", "multilevel"):
            hi = self.max_position - (w + 1) + 1
            s = starts(hi)
            pos = sig[None, :] + (s - 1) * (sig[None, :] > 0)
            if self.position == "multilevel":
                hi2 = self.max_operand_position - (k + 1) + 1
                s2 = starts(hi2)
                pos2 = opi[None, :] + (s2 - 1) * (opi[None, :] > 0)
                pos = np.stack([pos, pos2], axis=-1)
        else:
            pos = None
        return tokens, pos, targets, prompt

# ------------------------------------------------------------------ multiplication
# The scratchpad of Cho et al. (ICLR 2025; official code: src/data/multiplication.py and
# configs/task/multiplication_scratchpad_coupled.yaml): operands most significant digit first,
# everything after '=' least significant first; first the partial products P_j = a * b_j, one per digit
# b_j of b, each n + 1 digits; then the running sums C_j = P_0 + 10 P_1 + ... + 10^(j-1) P_(j-1),
# each n + m digits; C_m = a * b. Multiplying is reduced to adding m shifted operands, so the
# multiplier's length m plays the part of the operand count.


def multiplication_text(a: int, b: int, n_digits: int | None = None, m_digits: int | None = None) -> str:
    """The scratchpad sequence of ``a * b`` (a zero-padded to n digits, b to m).

    ``multiplication_text(57, 21) == "$57*21=750+411=7500>7911$"``: 57 * 1 = 57 (``750``) and
    57 * 2 = 114 (``411``), then C_1 = 57 (``7500``) and C_2 = 57 + 1140 = 1197 (``7911``).
    """
    a, b = int(a), int(b)
    if a < 0 or b < 0:
        raise ValueError(f"the tasks multiply non-negative integers, got {a} and {b}")
    n = len(str(a)) if n_digits is None else int(n_digits)
    m = len(str(b)) if m_digits is None else int(m_digits)
    if n < len(str(a)) or m < len(str(b)):
        raise ValueError(f"{a} * {b} does not fit in n_digits={n}, m_digits={m}")
    bs = [int(c) for c in f"{b:0{m}d}"[::-1]]
    partials = [f"{a * d:0{n + 1}d}"[::-1] for d in bs]
    sums = [f"{sum(a * d * 10**i for i, d in enumerate(bs[:j + 1])):0{n + m}d}"[::-1] for j in range(m)]
    return "$" + f"{a:0{n}d}" + "*" + f"{b:0{m}d}" + "=" + "+".join(partials) + "=" + ">".join(sums) + "$"


_MUL_FORMAT = re.compile(r"^\$(?P<a>\d+)\*(?P<b>\d+)=(?P<ans>[\d+=>]*?)(?P<end>\$?)$")


def _parse_multiplication(text: str) -> tuple[str, str, list[str], list[str], bool]:
    """Operands, partial products and running sums of a (possibly unfinished) scratchpad, checked."""
    for i, c in enumerate(text):
        if c not in _ID:
            raise ValueError(f"{c!r} at index {i} of {text!r} is not a token: the vocabulary is {_CHARS}")
    m = _MUL_FORMAT.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a multiplication sequence: expected '$', a, '*', b, '=', the "
                         f"partial products joined by '+', '=', the running sums joined by '>' and "
                         f"optionally '$', e.g. '$57*21=750+411=7500>7911$'")
    parts = m["ans"].split("=") if m["ans"] else []
    if len(parts) > 2:
        raise ValueError(f"{text!r} has more than two '=' after the prompt")
    partials = parts[0].split("+") if parts else []
    sums = parts[1].split(">") if len(parts) == 2 else []
    if ">" in (parts[0] if parts else "") or (len(parts) == 2 and "+" in parts[1]):
        raise ValueError(f"{text!r}: '+' joins the partial products, '>' the running sums")
    return m["a"], m["b"], partials, sums, bool(m["end"])


def multiplication_positions(text: str, start: tuple[int, int, int] = (1, 1, 1)) -> list[tuple[int, int, int]]:
    """Three streams of ids for a multiplication scratchpad: (digit, operand, product-digit).

    With starts (s, o, t): digit i of a gets (s + 1 + i, 0, 0), digit j of b (0, o + j, 0); digit i
    of P_j gets (s + 1 + i, o + j, t + 1 + i + j), the separator before it (s, o + j, t + j); digit i
    of C_j (j = 1..m) gets (0, o + j - 1, t + 1 + i), the separator before it (0, o + j - 1, t);
    ``$`` and ``*`` get (0, 0, 0). So the token that predicts digit i of P_j finds a_i one id ahead
    in the first stream and b_j at its own id in the second; the token that predicts digit i of C_j
    finds both summands (C_(j-1) and the shifted P_(j-1)) one id ahead in the third stream, told
    apart by the second.
    """
    s, o, t = (int(x) for x in start)
    if min(s, o, t) < 1:
        raise ValueError(f"starts must be at least 1 (0 marks tokens outside a stream), got {start}")
    a, b, partials, sums, end = _parse_multiplication(text)
    ids = [(0, 0, 0)] + [(s + 1 + i, 0, 0) for i in reversed(range(len(a)))] + [(0, 0, 0)]
    ids += [(0, o + j, 0) for j in reversed(range(len(b)))]  # operands: most significant digit first
    ids.append((s, o, t))  # '=': predicts P_0's first digit
    for j, p in enumerate(partials):
        if j:
            ids.append((s, o + j, t + j))  # '+' before P_j
        ids += [(s + 1 + i, o + j, t + 1 + i + j) for i in range(len(p))]
    for j, c in enumerate(sums, start=1):
        ids.append((0, o + j - 1, t))  # '=' before C_1, '>' before the others
        ids += [(0, o + j - 1, t + 1 + i) for i in range(len(c))]
    return ids + ([(0, 0, 0)] if end else [])


@dataclass(frozen=True)
class MultiplicationTask(_Task):
    """Products of an n-digit and an m-digit number, written with the partial-product scratchpad.

    Attributes:
        digits: (min, max) length n of the multiplicand a in training.
        operands: (min, max) length m of the multiplier b in training: the number of partial
            products, the operand count of the addition that follows.
        position: "multilevel" (the three id streams of :func:`multiplication_positions`),
            "absolute" or "none".
        max_position: the largest digit id (streams 1 and 3) or token id (absolute).
        max_operand_position: the largest operand id (stream 2).
        random_start: draw the three starts at random in training (at test they are 1).
    """

    digits: tuple[int, int] = (1, 3)
    operands: tuple[int, int] = (1, 3)
    position: Position = "multilevel"
    max_position: int = 20
    max_operand_position: int = 10
    random_start: bool = True

    def __post_init__(self) -> None:
        (d0, d1), (k0, k1) = self.digits, self.operands
        if not 1 <= d0 <= d1:
            raise ValueError(f"digits must be a range 1 <= min <= max, got {self.digits}")
        if not 1 <= k0 <= k1:
            raise ValueError(f"operands (the multiplier's length) must be a range 1 <= min <= max, got {self.operands}")
        if self.position not in ("absolute", "multilevel", "none"):
            raise ValueError(f"position={self.position!r}: a multiplication uses 'multilevel' (three id streams), "
                             f"'absolute' or 'none'")
        self.length(d1, k1, check=True)

    @property
    def n_streams(self) -> int:
        return 3 if self.position == "multilevel" else 1

    def length(self, n_digits: int, n_operands: int, *, check: bool = False) -> int:
        """Tokens in the sequence of an n-digit times an m-digit number (ids checked with ``check``)."""
        n, m = int(n_digits), int(n_operands)
        if n < 1 or m < 1:
            raise ValueError(f"need n_digits >= 1 and n_operands >= 1, got {n} and {m}")
        total = n + m + 3 + m * (2 * n + m + 3)
        if check:
            need = {"absolute": total - 2, "multilevel": n + max(2, m + 1), "none": 0}[self.position]
            if need > self.max_position:
                raise ValueError(f"{n} x {m} digits need position ids up to {need} with position="
                                 f"{self.position!r}, but max_position={self.max_position}: raise max_position")
            if self.position == "multilevel" and m > self.max_operand_position:
                raise ValueError(f"a {m}-digit multiplier needs operand ids up to {m}, but max_operand_position="
                                 f"{self.max_operand_position}: raise max_operand_position")
        return total

    def _rows(self, n: int, m: int, size: int, rng: np.random.Generator, train: bool):
        a = rng.integers(0, 10, size=(size, n))  # least significant digit first
        b = rng.integers(0, 10, size=(size, m))
        partials = np.zeros((size, m, n + 1), dtype=np.int64)
        for j in range(m):
            carry = np.zeros(size, dtype=np.int64)
            for i in range(n):
                v = a[:, i] * b[:, j] + carry
                partials[:, j, i], carry = v % 10, v // 10
            partials[:, j, n] = carry
        sums, total = [], np.zeros((size, n + m), dtype=np.int64)
        for j in range(m):
            shifted = np.zeros((size, n + m), dtype=np.int64)
            shifted[:, j:j + n + 1] = partials[:, j]
            total = _add_columns(total, shifted)
            sums.append(total)
        col = lambda v: np.full((size, 1), v)  # noqa: E731
        pieces = [col(EOS), a[:, ::-1], col(_ID["*"]), b[:, ::-1], col(_EQ)]
        for j in range(m):
            pieces += ([col(_PLUS)] if j else []) + [partials[:, j]]
        for j in range(m):
            pieces += [col(_EQ if j == 0 else _SEP), sums[j]]
        pieces.append(col(EOS))
        tokens = np.concatenate(pieces, axis=1)
        prompt = n + m + 3
        targets = np.full_like(tokens, IGNORE)
        targets[:, prompt - 1:-1] = tokens[:, prompt:]
        T = tokens.shape[1]

        def starts(hi: int) -> np.ndarray:
            if train and self.random_start and hi > 1:
                return rng.integers(1, hi + 1, size=(size, 1))
            return np.ones((size, 1), dtype=np.int64)

        if self.position == "absolute":
            s = starts(self.max_position - (T - 2))
            pos = np.concatenate([np.zeros((size, 1), dtype=np.int64), s + np.arange(T - 1)[None, :]], axis=1)
            pos[:, -1] = 0
        elif self.position == "multilevel":
            ids = np.array(_multiplication_template(n, m))  # (T, 3) at starts 1
            hi = (self.max_position - n - 1, self.max_operand_position - m + 1, self.max_position - n - m)
            shift = np.stack([starts(h)[:, 0] - 1 for h in hi], axis=1)  # (size, 3)
            pos = ids[None] + shift[:, None, :] * (ids[None] > 0)
        else:
            pos = None
        return tokens, pos, targets, prompt


@functools.lru_cache(maxsize=256)
def _multiplication_template(n: int, m: int) -> tuple[tuple[int, int, int], ...]:
    return tuple(multiplication_positions(multiplication_text(0, 0, n, m)))


# ------------------------------------------------------------------ scores


def scored_rows(targets: torch.Tensor) -> torch.Tensor:
    """(B, R): each row's scored positions (target not IGNORE) in order, padded with unscored ones.

    R is the most scored positions of any row; ``targets.gather(1, rows)`` keeps every scored target
    and pads with IGNORE.
    """
    scored = targets != IGNORE
    R = int(scored.sum(1).max()) if targets.numel() else 0
    return torch.argsort((~scored).to(torch.int8), dim=1, stable=True)[:, :R]


def next_token_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Cross-entropy of the scored next tokens (the answer and the final ``$``).

    The model computes logits at the scored positions only (``rows=``): the same loss as
    ``F.cross_entropy(model(tokens, positions).transpose(1, 2), targets)`` for less work.
    """
    rows = scored_rows(batch.targets)
    logits = model(batch.tokens, batch.positions, rows=rows)
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch.targets.gather(1, rows),
                                             ignore_index=IGNORE)


@torch.no_grad()
def score(model: torch.nn.Module, batch: Batch, *, use_cache: bool = True
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy-decode the answers of a batch whose rows share one layout; per-row scores.

    The format fixes the answer's length (W digits per number), so the answer is read off the
    first tokens generated after ``=``; whether the model then also ends with ``$`` is scored apart.

    Returns:
        exact: (B,) bool, every answer token right (all digits, and the ``>`` of a scratchpad).
        token_acc: (B,) float, the fraction of answer digits right (separators excluded).
        stops: (B,) bool, the token after the answer is the end token ``$``.
    """
    from ..models.transformer import greedy_decode

    p = int(batch.prompt_len[0])
    if not bool((batch.prompt_len == p).all()) or bool((batch.tokens == PAD).any()):
        raise ValueError("score() needs rows of one layout: build the batch with fixed n_digits and n_operands")
    was_training = model.training
    model.eval()
    want = batch.tokens[:, p:]
    got = greedy_decode(model, batch.tokens[:, :p], want.shape[1], positions=batch.positions, use_cache=use_cache)
    model.train(was_training)
    right = (got == want)[:, :-1]  # the answer, without the final '$'
    digit = want[:, :-1] < 10
    stops = got[:, -1] == EOS
    return right.all(dim=1).numpy(), ((right & digit).sum(1) / digit.sum(1)).numpy(), stops.numpy()


@dataclass(frozen=True)
class LengthScores:
    """Exact match and digit accuracy on a grid of operand counts (rows) and lengths (columns).

    Attributes:
        digits: (L,) operand lengths; operands: (K,) operand counts.
        exact, token_acc, stops: (K, L) fractions of ``n`` test problems per cell (see :func:`score`).
    """

    digits: np.ndarray
    operands: np.ndarray
    exact: np.ndarray
    token_acc: np.ndarray
    stops: np.ndarray
    n: int

    def at(self, n_digits: int, n_operands: int | None = None, *, metric: str = "exact") -> float:
        k = 0 if n_operands is None else int(np.flatnonzero(self.operands == n_operands)[0])
        return float(getattr(self, metric)[k, int(np.flatnonzero(self.digits == n_digits)[0])])

    def mean(self, digits, n_operands: int | None = None, *, metric: str = "exact") -> float:
        return float(np.mean([self.at(d, n_operands, metric=metric) for d in digits]))


def evaluate(model: torch.nn.Module, task: AdditionTask, *, digits, operands=None, n: int = 200,
             seed: int = 0, batch_size: int = 500, random_start: bool = False) -> LengthScores:
    """Exact match and digit accuracy of greedy decoding, per (operand count, length).

    Test problems are the same for every model given the same ``seed``. Their position ids start at
    1 (the paper's convention), or, with ``random_start=True`` and a task trained with random starts,
    at a start drawn as in training: uniform over the starts whose ids fit the tables (for the
    longest problems only start 1 fits).
    """
    digits = np.atleast_1d(np.asarray(digits, dtype=np.int64))
    operands = np.atleast_1d(np.asarray(operands if operands is not None else [task.operands[0]], dtype=np.int64))
    out = np.zeros((3, len(operands), len(digits)))
    for a, k in enumerate(operands):
        for b, d in enumerate(digits):
            rows = []
            for c, lo in enumerate(range(0, n, batch_size)):
                rng = np.random.default_rng([seed, int(k), int(d), c])
                batch = task.batch(min(batch_size, n - lo), rng=rng, n_digits=int(d), n_operands=int(k),
                                   train=random_start)
                rows.append(score(model, batch))
            out[:, a, b] = [np.concatenate(r).mean() for r in zip(*rows)]
    return LengthScores(digits, operands, out[0], out[1], out[2], n)
