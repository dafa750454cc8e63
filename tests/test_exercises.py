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

from hild.book.notebooks import chapter_sources
from hild.checks import CheckFailed

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapter_sources(ROOT)
_ipy = TransformerManager()


def _exec(source: str, ns: dict) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(_ipy.transform_cell(source), "<cell>", "exec"), ns)


def _cleared(nb):
    from nbgrader.preprocessors import ClearSolutions

    stub = nbformat.from_dict(nb)
    ClearSolutions(enforce_metadata=False).preprocess(stub, {})
    return stub


@pytest.mark.parametrize("md", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_checks_pass_on_solutions_and_fail_on_stubs(md):
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = next(c for c in code if "setup" in c.metadata.get("tags", []))
    stubs = [c for c in _cleared(nb).cells if c.cell_type == "code"]
    exercises = [i for i, c in enumerate(code) if "### BEGIN SOLUTION" in c.source]
    assert exercises, f"{md.name} has no exercises"
    for i in exercises:
        check = code[i + 1].source
        ns: dict = {}
        _exec(setup.source, ns)
        assert "raise NotImplementedError" in stubs[i].source
        _exec(stubs[i].source, ns)
        with pytest.raises(CheckFailed, match="not answered yet"):
            _exec(check, ns)
        try:
            _exec(code[i].source, ns)
        except NameError as exc:
            pytest.fail(f"{md.name}: an exercise may use only the set-up cell's names ({exc})")
        _exec(check, ns)  # the solution passes
