"""Fill the book's execution cache in parallel before ``jupyter-book build``.

    python -m hild.book.prefill [--jobs 2] [--path-output .]

Jupyter Book executes the chapters one after another; with about thirty chapters of half a minute
each, that serial pass is the slowest part of a build. This executes every chapter that is not
already cached, ``--jobs`` at a time, exactly as myst-nb would (the notebook read by myst-nb's
own MyST reader, the chapter's folder as working directory, the same timeout), and stores the
results in the same jupyter-cache. The build that follows finds every chapter cached and executes
nothing. A chapter that fails is reported and left uncached, so the build then runs it itself and
fails on it with the usual traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["main", "uncached_chapters"]


def _read(md: Path) -> Any:
    from myst_nb.core.read import read_myst_markdown_notebook

    return read_myst_markdown_notebook(md.read_text(encoding="utf-8"), add_source_map=True, path=str(md))


def _timeout(root: Path) -> int:
    import yaml

    cfg = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    return int((cfg.get("execute") or {}).get("timeout", 300))


def uncached_chapters(root: Path, cache_path: Path) -> list[Path]:
    """The chapters of _toc.yml whose current code is not in the cache."""
    from jupyter_cache import get_cache

    from .notebooks import toc_chapters

    cache = get_cache(str(cache_path))
    todo = []
    for md in toc_chapters(root):
        try:
            cache.match_cache_notebook(_read(md))
        except KeyError:
            todo.append(md)
    return todo


def _execute(md: str, timeout: int) -> tuple[str, Any, float, str | None]:
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    nb = _read(Path(md))
    result = single_nb_execution(nb, cwd=str(Path(md).parent), allow_errors=False, timeout=timeout, meta_override=True)
    error = None if result.err is None else f"{type(result.err).__name__}: {str(result.err)[-2000:]}"
    return md, nbformat.writes(nb), result.time, error


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hild.book.prefill", description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=2, help="chapters executed at once (default 2)")
    p.add_argument("--path-output", type=Path, default=Path("."), help="as jupyter-book build --path-output")
    args = p.parse_args(argv)

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    from .notebooks import find_root

    root = find_root()
    cache_path = args.path_output.resolve() / "_build" / ".jupyter_cache"
    todo = uncached_chapters(root, cache_path)
    print(f"prefill: {len(todo)} chapter(s) to execute with {args.jobs} job(s), cache {cache_path}", flush=True)
    if not todo:
        return 0
    cache = get_cache(str(cache_path))
    timeout = _timeout(root)
    failed = 0
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(_execute, str(md), timeout) for md in todo]
        for fut in futures:
            md, text, seconds, error = fut.result()
            rel = Path(md).relative_to(root)
            if error:
                failed += 1
                print(f"  FAILED {rel} ({seconds:.1f} s): {error.splitlines()[-1] if error else ''}", flush=True)
                continue
            stage = cache.add_nb_to_project(md, read_data={"type": "plugin", "name": "myst_nb_md"})
            cache.cache_notebook_bundle(CacheBundleIn(nbformat.reads(text, as_version=4), stage.uri,
                                                      data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            print(f"  {rel}: {seconds:.1f} s", flush=True)
    print(f"prefill: done in {time.perf_counter() - t0:.0f} s, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
