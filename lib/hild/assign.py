"""Course assignments from chapters: a student version and an instructor version.

    python -m hild.assign book/minimax/alternating-gda.md [more chapters ...] --out DIR

writes ``DIR/student/<slug>.ipynb`` and ``DIR/instructor/<slug>.ipynb``:

* **student**: every solution region (between ``### BEGIN SOLUTION`` and ``### END SOLUTION``) is
  replaced by a stub that raises ``NotImplementedError`` (nbgrader's own ``ClearSolutions``), the
  folded solution explanations are removed, the checks are kept, and all outputs are cleared.
  Each check fails with "not answered yet" until the student fills in the stub.
* **instructor**: the full notebook with nbgrader cell metadata (solution cells, and the check
  cells as graded, locked tests), ready for ``nbgrader generate_assignment`` / ``autograde``.

Both start from the chapter's clean notebook (the committed ``.ipynb``), so they read as plain
Markdown in Jupyter, Colab or nbgrader's formgrader.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any

import nbformat

__all__ = ["student_notebook", "instructor_notebook", "exercise_cells", "main"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
# the folded solution explanation the clean notebook carries (see hild.book.notebooks)
_SOLUTION_NOTE = re.compile(r"\n*<details><summary><b>Solution to .*?</details>\n*", re.S)


def exercise_cells(nb: Any) -> list[tuple[int, int]]:
    """(solution cell index, check cell index) for each exercise, in notebook cell indices.

    The check is the first code cell after the solution (the chapter contract).
    """
    out = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and BEGIN in cell.source:
            if END not in cell.source:
                raise ValueError(f"cell {i} has '{BEGIN}' without '{END}'")
            j = next((k for k in range(i + 1, len(cells)) if cells[k].cell_type == "code"), None)
            if j is None:
                raise ValueError(f"the solution in cell {i} has no check cell after it")
            out.append((i, j))
    return out


def _slug(nb_path: Path) -> str:
    return nb_path.stem


def instructor_notebook(nb: Any, *, slug: str) -> Any:
    """The full notebook with nbgrader metadata on solution and check cells; outputs cleared."""
    out = copy.deepcopy(nb)
    pairs = exercise_cells(out)
    if not pairs:
        raise ValueError(f"{slug} has no exercises (no cell with '{BEGIN}')")
    for n, (i, j) in enumerate(pairs, start=1):
        out.cells[i].metadata["nbgrader"] = {
            "grade": False, "solution": True, "locked": False, "task": False,
            "grade_id": f"{slug}-exercise-{n}", "schema_version": 3,
        }
        out.cells[j].metadata["nbgrader"] = {
            "grade": True, "solution": False, "locked": True, "task": False, "points": 1,
            "grade_id": f"{slug}-check-{n}", "schema_version": 3,
        }
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return out


def student_notebook(nb: Any, *, slug: str) -> Any:
    """Solutions replaced by ``raise NotImplementedError()`` stubs (nbgrader's ClearSolutions),
    solution explanations removed, checks kept, outputs cleared."""
    from nbgrader.preprocessors import ClearSolutions

    out = instructor_notebook(nb, slug=slug)
    ClearSolutions(enforce_metadata=True).preprocess(out, {})
    for cell in out.cells:
        if cell.cell_type == "markdown":
            cell.source = _SOLUTION_NOTE.sub("\n\n", cell.source).strip("\n")
    out.cells = [c for c in out.cells if c.cell_type != "markdown" or c.source.strip()]
    for cell in out.cells:
        if cell.metadata.get("nbgrader", {}).get("solution") and "raise NotImplementedError" not in cell.source:
            raise ValueError(f"{slug}: a solution cell was not cleared:\n{cell.source[:200]}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hild.assign", description=__doc__.split("\n\n")[0])
    p.add_argument("chapters", nargs="+", type=Path, help="chapter .md or .ipynb files")
    p.add_argument("--out", type=Path, required=True, help="output folder (student/ and instructor/ inside)")
    args = p.parse_args(argv)
    for kind in ("student", "instructor"):
        (args.out / kind).mkdir(parents=True, exist_ok=True)
    for chapter in args.chapters:
        nb_path = chapter.with_suffix(".ipynb")
        if not nb_path.exists():
            p.error(f"{nb_path} does not exist (run `python -m hild.book.notebooks sync`)")
        nb = nbformat.read(nb_path, as_version=4)
        slug = _slug(nb_path)
        nbformat.write(student_notebook(nb, slug=slug), args.out / "student" / f"{slug}.ipynb")
        nbformat.write(instructor_notebook(nb, slug=slug), args.out / "instructor" / f"{slug}.ipynb")
        n = len(exercise_cells(nb))
        print(f"{slug}: {n} exercise{'s' if n != 1 else ''} -> {args.out / 'student' / (slug + '.ipynb')}, "
              f"{args.out / 'instructor' / (slug + '.ipynb')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
