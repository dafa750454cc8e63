"""Course assignments (hild.assign): the student version fails every check on its stubs, the
instructor version passes. Run end to end on the reference chapter (a few seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "minimax" / "alternating-gda.md"


def _execute(path: Path, *, allow_errors: bool):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(CHAPTER.parent)}}).execute()
    return nb


def _errors(cell):
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]


def test_student_and_instructor_versions(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hild.assign", str(CHAPTER), "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    student_path = tmp_path / "student" / "alternating-gda.ipynb"
    instructor_path = tmp_path / "instructor" / "alternating-gda.ipynb"
    student = nbformat.read(student_path, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "### BEGIN SOLUTION" not in text and "Solution to Exercise" not in text
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")

    ran = _execute(student_path, allow_errors=True)
    checks = [c for c in ran.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert len(checks) >= 2
    for c in checks:  # every check fails, and says why
        errs = _errors(c)
        assert errs and errs[0].ename == "CheckFailed" and "not answered yet" in errs[0].evalue
    others = [c for c in ran.cells if c.cell_type == "code" and c not in checks]
    assert not [c.source[:80] for c in others if _errors(c)], "only the checks may fail in the student version"

    ran = _execute(instructor_path, allow_errors=False)  # raises if any cell fails
    assert all(any("✓" in o.get("text", "") for o in c.outputs) for c in ran.cells
               if c.metadata.get("nbgrader", {}).get("grade"))
