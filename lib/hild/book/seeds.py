"""Run a chapter over several seeds and print the table of its claim's numbers.

    python -m hild.book.seeds book/minimax/alternating-gda.md --seeds 0-4 [--jobs 2] [--scale ci]

Each seed executes the chapter's notebook in a fresh kernel with ``HILD_SEED`` set and
``HILD_REPORT`` pointing at a scratch file, so every ``hild.report(...)`` call of the chapter is
collected. The output is a Markdown table (one row per seed, one column per reported number, plus
the run's wall time) followed by the min and max of each column: the margins a chapter's summary
writes down. A seed whose claim check fails is listed with the error, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["run_seed", "parse_seeds", "format_table", "main"]


def parse_seeds(spec: str) -> list[int]:
    """'0-4' → [0, 1, 2, 3, 4]; '0,2,7' → [0, 2, 7]."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    if not out:
        raise ValueError(f"no seeds in {spec!r}: use e.g. 0-4 or 0,2,7")
    return out


def run_seed(notebook: str, seed: int, scale: str, timeout: int = 900) -> dict[str, Any]:
    """Execute ``notebook`` with HILD_SEED=seed; returns {"seed", "seconds", "numbers", "error"}."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as fh:
        report = fh.name
    os.environ.update(HILD_SEED=str(seed), HILD_REPORT=report, HILD_SCALE=scale, OMP_NUM_THREADS="1",
                      HILD_PROGRESS="0", MPLBACKEND="Agg")
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(notebook).parent)}})
    t0 = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        error = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else "error")
    seconds = time.perf_counter() - t0
    numbers: dict[str, Any] = {}
    with open(report, encoding="utf-8") as fh:
        for line in fh:
            numbers.update(json.loads(line)["numbers"])
    os.unlink(report)
    return {"seed": seed, "seconds": seconds, "numbers": numbers, "error": error}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
            return f"{v:.2e}"
        return f"{v:.4g}"
    return str(v)


def format_table(results: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in results:
        keys += [k for k in r["numbers"] if k not in keys]
    head = "| seed | " + " | ".join(keys) + " | seconds |"
    rows = [head, "|" + "---|" * (len(keys) + 2)]
    for r in sorted(results, key=lambda r: r["seed"]):
        cells = [_fmt(r["numbers"].get(k, "")) for k in keys]
        rows.append(f"| {r['seed']} | " + " | ".join(cells) + f" | {r['seconds']:.1f} |")
    for name, fn in (("min", min), ("max", max)):
        cells = []
        for k in keys:
            vals = [r["numbers"][k] for r in results if isinstance(r["numbers"].get(k), (int, float))]
            cells.append(_fmt(fn(vals)) if vals else "")
        secs = fn(r["seconds"] for r in results)
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {secs:.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hild.book.seeds", description=__doc__.split("\n\n")[0])
    p.add_argument("chapter", type=Path, help="the chapter's .md or .ipynb")
    p.add_argument("--seeds", default="0-4", help="e.g. 0-4 (default) or 0,3,7")
    p.add_argument("--jobs", type=int, default=2, help="kernels at once (default 2)")
    p.add_argument("--scale", default="ci", choices=["ci", "full"])
    args = p.parse_args(argv)
    nb = args.chapter.with_suffix(".ipynb").resolve()
    if not nb.exists():
        p.error(f"{nb} does not exist: run `python -m hild.book.notebooks sync` first")
    seeds = parse_seeds(args.seeds)
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run_seed, [str(nb)] * len(seeds), seeds, [args.scale] * len(seeds)))
    print(f"{nb.name}, scale={args.scale}, seeds {args.seeds}\n")
    print(format_table(results))
    failed = [r for r in results if r["error"]]
    for r in failed:
        print(f"\nseed {r['seed']} FAILED: {r['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
