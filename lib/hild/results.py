"""Machine-readable claim numbers.

A chapter prints its result line for the reader and hands the same numbers to :func:`report`. When
``HILD_REPORT`` names a file, every call appends one JSON line to it (with the scale, seed and
device), which is how ``python -m hild.seeds`` collects a chapter's numbers over seeds 0-4 to write
the margins table in its summary. Without ``HILD_REPORT`` the call only returns the numbers.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from . import config


def _plain(value: Any) -> Any:
    """Numbers as plain floats/ints (tensors, numpy scalars), containers recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"report() takes numbers, got {type(value).__name__}: {value!r}") from None
    return f if math.isfinite(f) else str(f)


def report(**numbers: Any) -> dict[str, Any]:
    """Record a chapter's measured numbers (``report(sim_iters=1966, alt_iters=74)``).

    Returns:
        The numbers as plain Python values.
    """
    if not numbers:
        raise ValueError("report() needs at least one keyword, e.g. report(ratio=0.3)")
    plain = {k: _plain(v) for k, v in numbers.items()}
    path = os.environ.get("HILD_REPORT", "").strip()
    if path:
        record = {
            "scale": config.SCALE,
            "seed": config.SEED,
            "device": str(config.device()),
            "time": time.time(),
            "numbers": plain,
        }
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    return plain
