"""The chapters as documents: each .md has its clean notebook, follows the chapter contract, and
reads cleanly outside the book (no MyST directive reaches a notebook)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from hild.book.notebooks import BookInfo, chapter_sources, md_to_notebook, notebook_json

ROOT = Path(__file__).resolve().parents[1]
INFO = BookInfo.load(ROOT)
CHAPTERS = chapter_sources(ROOT)
IDS = [p.relative_to(ROOT / "book").as_posix() for p in CHAPTERS]
PAPER_KEYS = {"title", "authors", "venue", "year", "arxiv", "code", "bib", "gpu_for_full_scale"}


def _front_matter(md: Path) -> dict:
    text = md.read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---", 2)[1])


def test_there_are_chapters():
    assert CHAPTERS, "no chapter sources found under book/"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_notebook_is_generated_from_its_md(md):
    nb_path = md.with_suffix(".ipynb")
    assert nb_path.exists(), f"{nb_path.name} is missing: run `python -m hild.book.notebooks sync`"
    expected = notebook_json(md_to_notebook(md, INFO))
    assert nb_path.read_text(encoding="utf-8") == expected, (
        f"{nb_path.relative_to(ROOT)} differs from its .md: run `python -m hild.book.notebooks sync`")


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_notebook_reads_cleanly(md):
    nb = nbformat.read(md.with_suffix(".ipynb"), as_version=4)
    for i, cell in enumerate(nb.cells):
        assert not cell.get("outputs"), f"cell {i} of {md.name}'s notebook has outputs: commit it stripped"
        if cell.cell_type == "markdown":
            raw = re.search(r"\{[\w:-]+\}`|^\s*(```|:::)\{[\w:-]+\}|^\([\w:.-]+\)=\s*$", cell.source, re.M)
            assert raw is None, f"cell {i} of {md.name}'s notebook shows MyST syntax: {raw.group(0)!r}"


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_chapter_contract(md):
    """The ten points of DESIGN.md that a machine can check."""
    text = md.read_text(encoding="utf-8")
    fm = _front_matter(md)
    assert fm.get("kernelspec", {}).get("name") == "python3"
    paper = fm.get("paper")
    assert isinstance(paper, dict) and PAPER_KEYS <= set(paper), f"front matter `paper:` needs {sorted(PAPER_KEYS)}"
    assert paper["bib"] in INFO.bib, f"paper.bib {paper['bib']!r} is not in book/references.bib"
    results = fm.get("results")
    assert isinstance(results, dict) and {"claim", "paper", "ci", "full"} <= set(results), (
        "front matter `results:` needs claim, paper, ci, full (the appendix's results table)")
    assert re.search(r"^\(" + re.escape(md.stem) + r"\)=\s*$", text, re.M), f"label ({md.stem})= above the title"
    assert ":::{admonition} At a glance" in text, "an 'At a glance' box"
    assert "{colab}`" in text, "a Colab badge ({colab}`Open in Colab`) in the At a glance box"
    nb = md_to_notebook(md, INFO)
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = [c for c in code if "setup" in c.metadata.get("tags", [])]
    assert len(setup) == 1, "exactly one code cell tagged `setup`"
    assert "import hild" in setup[0].source and "%pip install" in setup[0].source
    assert re.search(r"except ImportError", setup[0].source), "install hild only when `import hild` fails"
    assert "torch" not in re.findall(r"%pip install[^\n]*", setup[0].source)[0], "never (re)install torch"
    assert any(re.search(r"^assert ", c.source, re.M) for c in code), "a claim check: an assert on measured numbers"
    assert any("hild.report(" in c.source for c in code), "the claim's numbers go to hild.report(...)"
    assert any("plot.explorer(" in c.source for c in code), "an explorer (plot.explorer with ipywidgets)"
    solutions = [i for i, c in enumerate(code) if "### BEGIN SOLUTION" in c.source]
    assert len(solutions) >= 2, "at least two exercises with nbgrader-marked solutions"
    for i in solutions:
        assert "### END SOLUTION" in code[i].source
        assert i + 1 < len(code) and "checks" in code[i + 1].source, "each solution is followed by its check cell"
    assert text.count("{exercise-start}") >= 2 and text.count("{solution-start}") >= 2
    assert "## Summary" in text and "{bibliography}" in text


@pytest.mark.parametrize("md", CHAPTERS, ids=IDS)
def test_install_line_uses_the_configured_repository(md):
    """The repository URL is written once, in _config.yml; the set-up cell must agree with it."""
    urls = re.findall(r"git\+(https://github\.com/[\w.-]+/[\w.-]+)", md.read_text(encoding="utf-8"))
    assert urls and set(urls) == {INFO.repository_url}, f"set-up cell installs from {urls}, _config.yml says {INFO.repository_url}"


def test_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"file:\s*(\S+)", toc))
    missing = [md.relative_to(ROOT).with_suffix("").as_posix() for md in CHAPTERS
               if md.relative_to(ROOT).with_suffix("").as_posix() not in listed]
    assert not missing, f"chapters missing from _toc.yml: {missing}"


def test_converter_rewrites_directives(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/o/r\n  branch: main\nbibtex_bibfiles: [book/r.bib]\n")
    (book / "r.bib").write_text("@article{a2020x, title={T}, author={Ab, C. and De, F. and Gh, I.}, year={2020}}\n")
    md = book / "ch.md"
    md.write_text(
        "---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n"
        "(ch)=\n# Title\n\n:::{admonition} At a glance\nSee {cite}`a2020x`. {colab}`Open`\n:::\n\n"
        "```{prf:theorem} Main\n:label: t1\nAll is well, $x$.\n```\n\n"
        "```{exercise-start}\n:label: e1\n```\nDo it.\n```{exercise-end}\n```\n\n"
        "```{solution-start} e1\n:class: dropdown\n```\n\n```{code-cell} ipython3\nx = 1\n```\n\n```{solution-end}\n```\n"
    )
    nb = md_to_notebook(md, BookInfo.load(tmp_path))
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "(Ab et al., 2020)" in text
    assert "https://colab.research.google.com/github/o/r/blob/main/book/ch.ipynb" in text
    assert "**Theorem 1 (Main).** All is well, $x$." in text
    assert "### Exercise 1" in text and "Solution to Exercise 1" in text
    assert "{" not in text.replace("{colab}", "")  # nothing of MyST's syntax is left
    assert [c.source for c in nb.cells if c.cell_type == "code"] == ["x = 1"]
