"""Every exercise's check passes on its solution and fails on the unfilled stub.

Exercises depend on the chapter's set-up cell only (the contract), so this runs the set-up cell
and then, per exercise, the stub made by nbgrader's ClearSolutions (it must fail its check) and
the solution (it must pass), without re-running the chapter's experiments."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import matplotlib
import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from hild.assign import exercise_cells, student_notebook
from hild.book.notebooks import chapter_sources
from hild.checks import CheckFailed

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapter_sources(ROOT)
_ipy = TransformerManager()


def _exec(source: str, ns: dict) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(_ipy.transform_cell(source), "<cell>", "exec"), ns)




@pytest.mark.parametrize("md", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_checks_pass_on_solutions_and_fail_on_stubs(md):
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    setup = next(c for c in nb.cells if "setup" in c.metadata.get("tags", []))
    student = student_notebook(nb, slug=md.stem)
    stubs = {c.metadata["nbgrader"]["grade_id"]: c.source for c in student.cells if "nbgrader" in c.metadata}
    pairs = exercise_cells(nb)
    assert pairs, f"{md.name} has no exercises"
    for n, (i, j) in enumerate(pairs, start=1):
        solution, check = nb.cells[i].source, nb.cells[j].source
        stub = stubs[f"{md.stem}-exercise-{n}"]
        ns: dict = {}
        _exec(setup.source, ns)
        assert "raise NotImplementedError" in stub
        _exec(stub, ns)
        with pytest.raises(CheckFailed, match="not answered yet"):
            _exec(check, ns)
        try:
            _exec(solution, ns)
        except NameError as exc:
            pytest.fail(f"{md.name}: an exercise may use only the set-up cell's names ({exc})")
        _exec(check, ns)  # the solution passes
