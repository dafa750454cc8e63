"""pytest plugin, loaded by pyproject's addopts in every run (also ``pytest book/x.ipynb``).

Every chapter runs at ci scale on one thread, and nbval's per-notebook execution times are
written to ``_build/timings.md`` (a table, not an assertion)."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

# Set before any kernel starts: nbval's kernels inherit this process's environment.
os.environ.setdefault("HILD_SCALE", "ci")
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("HILD_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

ROOT = Path(__file__).resolve().parents[1]
_durations: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):  # runs on the controller for every worker's report
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _durations[path] += report.duration


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput") or not _durations:
        return  # an xdist worker: the controller writes the table
    out = ROOT / "_build" / "timings.md"
    out.parent.mkdir(exist_ok=True)
    rows = sorted(_durations.items(), key=lambda kv: -kv[1])
    lines = [
        f"# Chapter execution times (nbval, HILD_SCALE={os.environ['HILD_SCALE']}, "
        f"seed {os.environ.get('HILD_SEED', '0')}, {time.strftime('%Y-%m-%d %H:%M')})",
        "",
        "| chapter | seconds |",
        "|---|---:|",
        *[f"| {p} | {d:.1f} |" for p, d in rows],
        "",
        f"Total {sum(_durations.values()):.0f} s over {len(rows)} chapters "
        f"(mean {sum(_durations.values()) / len(rows):.1f} s).",
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def pytest_runtest_setup(item):
    """Library tests share a worker process (``--dist loadfile``): a test module that changes
    torch's default dtype at import leaks it into the next file's tests. Fail where it leaked."""
    if item.nodeid.split("::", 1)[0].endswith(".ipynb"):
        return
    import torch

    if torch.get_default_dtype() != torch.float32:
        raise RuntimeError(
            f"torch's default dtype is {torch.get_default_dtype()} before {item.nodeid}: a test module "
            "set it globally; set it in a fixture that restores it")
