"""A character corpus that needs no download: the Python standard library's own source files.

Every Python installation carries a few megabytes of its standard library as ``.py`` text, so a
character-level language model can train on real, structured text offline::

    data = python_source(200_000)                  # (200000,) int64 byte values 0-127
    get = text_windows(data, batch=16, context=32, seed=0)
    x, y = get(step)                               # (16, 32) inputs and next-character targets

The files are read in sorted order from the running interpreter's ``stdlib`` directory (top level
only), so a corpus is fixed for a given Python version; another version gives similar text, not
the same bytes. Bytes above 127 (rare: non-ASCII characters in comments) are mapped to 127, so the
vocabulary is 128.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["VOCAB", "python_source", "text_windows"]

VOCAB = 128


def python_source(n_chars: int = 200_000, *, directory: str | Path | None = None) -> torch.Tensor:
    """The first ``n_chars`` bytes of the standard library's ``*.py`` files, in sorted order.

    Args:
        n_chars: corpus length.
        directory: read another directory's ``*.py`` files instead (tests).

    Returns:
        (n_chars,) int64 tensor of values in 0..127.
    """
    if n_chars < 2:
        raise ValueError(f"n_chars must be at least 2, got {n_chars}")
    root = Path(directory) if directory is not None else Path(sysconfig.get_paths()["stdlib"])
    chunks, total = [], 0
    for f in sorted(root.glob("*.py")):
        chunks.append(f.read_bytes())
        total += len(chunks[-1])
        if total >= n_chars:
            break
    if total < n_chars:
        raise ValueError(f"only {total} bytes of *.py files under {root}; ask for fewer than {n_chars}")
    raw = b"".join(chunks)[:n_chars]
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.int64).clamp_(max=VOCAB - 1)


def text_windows(data: torch.Tensor, *, batch: int, context: int, seed: int = 0) -> Callable[[int], tuple]:
    """Random windows of the corpus as a function of the step (the same step gives the same batch).

    ``text_windows(data, batch=16, context=32)(step)`` returns ``(x, y)``, both (batch, context), with
    ``y`` the character after each character of ``x``. Two runs with the same seed see identical
    batches, which is how the chapters compare two models on the same data.
    """
    if data.ndim != 1 or len(data) <= context + 1:
        raise ValueError(f"data must be 1-D and longer than context + 1 = {context + 1}")
    if batch < 1 or context < 1:
        raise ValueError(f"batch and context must be positive, got {batch}, {context}")
    offsets = torch.arange(context + 1)

    def get(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(0, len(data) - context - 1, (batch,), generator=g)
        chunk = data[(starts[:, None] + offsets).to(data.device)]
        return chunk[:, :-1], chunk[:, 1:]

    return get
