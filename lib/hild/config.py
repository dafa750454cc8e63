"""Scale, device, dtype and seed: the only global state of the book.

Every chapter runs at one of two scales, read once from the environment:

* ``HILD_SCALE=ci``: CPU, one thread, a minute at most, synthetic data or sklearn's bundled digits,
  never a download. This is what CI executes and what the rendered book shows.
* ``HILD_SCALE=full``: one GPU, up to about fifteen minutes, close to the paper's setting.

Without ``HILD_SCALE`` the scale is ``full`` when CUDA is available and ``ci`` otherwise.
``HILD_SEED`` (default 0) seeds every chapter, so any run can be replayed:
``HILD_SEED=3 pytest book/minimax/alternating-gda.ipynb``.

Two more variables are for tests and impatient readers:

* ``HILD_MAX_STEPS``: caps every loop that asks :func:`steps` for its length (the smoke test runs
  each chapter's full-scale configuration for a few steps on a CPU this way).
* ``HILD_PROGRESS``: ``1`` forces progress bars on, ``0`` off; by default they show at full scale only
  (a ci run is short and its bars would only clutter the rendered book).
"""

from __future__ import annotations

import os
import random
import warnings
from typing import Literal, TypeVar

import numpy as np
import torch

Scale = Literal["ci", "full"]
SCALES: tuple[str, ...] = ("ci", "full")
T = TypeVar("T")


def _read_scale() -> Scale:
    raw = os.environ.get("HILD_SCALE", "").strip().lower()
    if raw == "":
        return "full" if torch.cuda.is_available() else "ci"
    if raw not in SCALES:
        raise ValueError(
            f"HILD_SCALE={raw!r} is not a scale of this book: use 'ci' (CPU, one thread, about a "
            f"minute per chapter) or 'full' (one GPU, the paper's setting), or unset it."
        )
    return raw  # type: ignore[return-value]


def _read_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"{name}={value} must be non-negative")
    return value


SCALE: Scale = _read_scale()
SEED: int = _read_int("HILD_SEED", 0)  # type: ignore[assignment]
MAX_STEPS: int | None = _read_int("HILD_MAX_STEPS", None)
SMOKE: bool = MAX_STEPS is not None


def _limit_threads() -> None:
    """At ci scale, torch and the BLAS libraries under numpy use one thread.

    Threads on a small shared machine make torch 20-100x slower, and one thread makes the ci timings
    comparable between machines.
    """
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # threadpoolctl comes with scikit-learn; without it numpy keeps its threads
        pass


if SCALE == "ci":
    _limit_threads()


def scale() -> Scale:
    """The scale of this run, ``"ci"`` or ``"full"`` (read once from ``HILD_SCALE``)."""
    return SCALE


def is_full() -> bool:
    return SCALE == "full"


def by_scale(*, ci: T, full: T) -> T:
    """Pick the value for the current scale: ``cfg = hild.by_scale(ci=Config(...), full=Config(...))``."""
    return full if SCALE == "full" else ci


def device() -> torch.device:
    """``cuda`` at full scale when available, else ``cpu`` (ci runs always use the CPU)."""
    if SCALE == "full" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def device_name(dev: torch.device | str | None = None) -> str:
    """What a results table or a checkpoint's provenance should call the device: the GPU's name, or
    ``CPU (<model name>)`` from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    dev = torch.device(dev) if dev is not None else device()
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"CPU ({line.split(':', 1)[1].strip()})"
    except OSError:
        pass
    return f"CPU ({platform.processor() or platform.machine()})"


def seed() -> int:
    """The run's seed, from ``HILD_SEED`` (default 0)."""
    return SEED


def seed_everything(seed: int | None = None) -> int:
    """Seed Python, NumPy and torch (all devices) and return the seed used.

    Args:
        seed: the seed; by default the run's seed from ``HILD_SEED``.
    """
    s = SEED if seed is None else int(seed)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    return s


def steps(n: int) -> int:
    """The length of a loop: ``n``, or fewer when ``HILD_MAX_STEPS`` caps it (smoke tests)."""
    if n < 0:
        raise ValueError(f"a number of steps must be non-negative, got {n}")
    return n if MAX_STEPS is None else min(n, MAX_STEPS)


def progress_enabled() -> bool:
    """Whether loops show a progress bar (``HILD_PROGRESS``; by default at full scale only)."""
    raw = os.environ.get("HILD_PROGRESS", "").strip()
    if raw in ("0", "1"):
        return raw == "1"
    if raw:
        warnings.warn(f"HILD_PROGRESS={raw!r} is neither 0 nor 1; showing progress bars at full scale only")
    return SCALE == "full"


def describe() -> str:
    """One line for a chapter's set-up cell: scale, device, seed and library versions."""
    dev = device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    threads = torch.get_num_threads()
    extra = f", steps capped at {MAX_STEPS}" if SMOKE else ""
    return (
        f"scale={SCALE} · device={name} ({threads} thread{'s' if threads != 1 else ''}) · seed={SEED}"
        f" · torch {torch.__version__}{extra}"
    )
