"""Turn a MyST chapter (``book/**/<slug>.md``) into the clean notebook readers open in Colab.

The ``.md`` is the source: the book renders it with its theorems, exercises and dropdowns. A
notebook made by plain ``jupytext --to ipynb`` would show those directives as raw text
(```` ```{prf:theorem} ````), so the committed ``.ipynb`` is made by :func:`md_to_notebook`
instead: code cells are kept exactly (same source, same tags), and Markdown cells are rewritten
so that Jupyter and Colab show plain Markdown:

===========================  =========================================================
MyST                         notebook
===========================  =========================================================
``{prf:theorem} Title``      **Theorem 1 (Title).** followed by the statement
``{admonition} At a glance`` a block quote headed **At a glance**
``{note}``, ``{tip}`` ...    a block quote headed **Note.**, **Tip.** ...
``{exercise-start}``         **Exercise 1** (the label becomes the number)
``{solution-start}``         a ``<details>`` block "Solution to Exercise 1"
``{cite}`key```              (Author et al., year), from book/references.bib
``{eq}``, ``{ref}``          the equation number or the link's text
``{colab}```...```           the Colab badge with the notebook's URL
``(label)=``                 dropped
===========================  =========================================================

``python -m hild.book.notebooks sync`` rewrites every chapter's notebook; ``check`` exits non-zero
when a committed notebook differs from what its ``.md`` gives (the pairing test does the same).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BookInfo", "md_to_notebook", "notebook_json", "chapter_sources", "toc_chapters", "find_root", "main"]

_FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*)$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
_ROLE = re.compile(r"\{(?P<name>[\w:-]+)\}`(?P<body>[^`]*)`")
_LABEL_LINE = re.compile(r"^\([\w:.-]+\)=[ \t]*$")
_MATH_LABEL = re.compile(r"\$\$[ \t]*\((?P<label>[\w:.-]+)\)[ \t]*$")

_ADMONITION_TITLES = {
    "note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important", "warning": "Warning",
    "caution": "Caution", "attention": "Attention", "danger": "Danger", "error": "Error", "seealso": "See also",
}
_PROOF_TITLES = {
    "prf:theorem": "Theorem", "prf:lemma": "Lemma", "prf:proposition": "Proposition", "prf:corollary": "Corollary",
    "prf:definition": "Definition", "prf:remark": "Remark", "prf:conjecture": "Conjecture",
    "prf:example": "Example", "prf:assumption": "Assumption", "prf:proof": "Proof", "prf:algorithm": "Algorithm",
    "prf:observation": "Observation", "prf:property": "Property", "prf:axiom": "Axiom",
}
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


@dataclass
class BookInfo:
    """What the conversion needs from the book: where notebooks live online, and the bibliography."""

    repository_url: str
    branch: str
    root: Path
    bib: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> "BookInfo":
        import yaml

        cfg = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
        repo = cfg.get("repository", {})
        url = str(repo.get("url", "")).rstrip("/")
        if not url:
            raise ValueError(f"{root / '_config.yml'} has no repository.url: the Colab links need it")
        bibfiles = cfg.get("bibtex_bibfiles") or ["book/references.bib"]
        bib: dict[str, str] = {}
        for b in bibfiles:
            bib.update(_bib_labels(root / b))
        return cls(repository_url=url, branch=str(repo.get("branch", "main")), root=root, bib=bib)

    def colab_url(self, notebook: Path) -> str:
        rel = notebook.resolve().relative_to(self.root.resolve()).as_posix()
        gh = self.repository_url.replace("https://github.com/", "")
        return f"https://colab.research.google.com/github/{gh}/blob/{self.branch}/{rel}"


def _bib_labels(path: Path) -> dict[str, str]:
    """key → "Author et al., 2024" for every entry of a BibTeX file."""
    if not path.exists():
        return {}
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        last = [" ".join(p.last_names) for p in people]
        last = [re.sub(r"[{}]", "", name) for name in last]
        if not last:
            who = re.sub(r"[{}]", "", entry.fields.get("title", key))
        elif len(last) == 1:
            who = last[0]
        elif len(last) == 2:
            who = f"{last[0]} and {last[1]}"
        else:
            who = f"{last[0]} et al."
        out[key] = f"{who}, {entry.fields.get('year', 'n.d.')}"
    return out


class _Context:
    """Numbering state while one chapter is converted."""

    def __init__(self, info: BookInfo, notebook_path: Path):
        self.info = info
        self.notebook_path = notebook_path
        self.counters: dict[str, int] = {}
        self.exercise_numbers: dict[str, int] = {}
        self.equations: dict[str, int] = {}

    def next_number(self, kind: str) -> int:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]


def _split_options(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(lines) and (m := _OPTION.match(lines[i].strip())):
        opts[m["key"]] = m["value"].strip()
        i += 1
    body = lines[i:]
    while body and not body[0].strip():
        body = body[1:]
    while body and not body[-1].strip():
        body = body[:-1]
    return opts, body


def _quote(text: str) -> str:
    return "\n".join(("> " + line) if line.strip() else ">" for line in text.splitlines())


def _convert_roles(text: str, ctx: _Context) -> str:
    def repl(m: re.Match[str]) -> str:
        name, body = m["name"], m["body"]
        if name in ("cite", "cite:p", "cite:t", "cite:ps", "cite:ts"):
            keys = [k.strip() for k in body.split(",") if k.strip()]
            labels = []
            for k in keys:
                if k not in ctx.info.bib:
                    raise ValueError(f"{{cite}}`{k}`: no such key in the book's bibliography")
                labels.append(ctx.info.bib[k])
            if name.startswith("cite:t"):
                return "; ".join(label.replace(", ", " (", 1) + ")" for label in labels)
            return "(" + "; ".join(labels) + ")"
        if name == "eq":
            return f"({ctx.equations.get(body, '?')})"
        if name in ("ref", "doc", "numref", "prf:ref", "download"):
            explicit = re.match(r"^(?P<text>.*?)\s*<(?P<target>[^>]+)>$", body)
            if explicit:
                return explicit["text"]
            if name == "prf:ref" or name == "ref":
                return ctx.exercise_numbers.get(body) and f"Exercise {ctx.exercise_numbers[body]}" or body
            return body
        if name == "math":
            return f"${body}$"
        if name == "colab":
            return f"[![Open In Colab]({COLAB_BADGE})]({ctx.info.colab_url(ctx.notebook_path)})"
        if name in ("abbr", "sub", "sup"):
            return body
        return m.group(0)

    return _ROLE.sub(repl, text)


def _convert_markdown(text: str, ctx: _Context) -> str:
    """Rewrite the directives and roles of one Markdown cell (recursively for nested blocks)."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _LABEL_LINE.match(line.strip()):
            i += 1
            continue
        m = _FENCE.match(line.strip())
        if not m:
            mm = _MATH_LABEL.search(line)
            if mm:
                ctx.equations[mm["label"]] = ctx.next_number("equation")
                line = line[: mm.start()] + "$$"
            out.append(line)
            i += 1
            continue
        fence, name, arg = m["fence"], m["name"], m["arg"].strip()
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        if j == len(lines):
            raise ValueError(f"unclosed directive {{{name}}} (fence {fence!r}) in:\n{text[:300]}")
        opts, body_lines = _split_options(lines[i + 1 : j])
        body = _convert_markdown("\n".join(body_lines), ctx) if body_lines else ""
        out.append(_render_directive(name, arg, opts, body, ctx))
        i = j + 1
    result = re.sub(r"\n{3,}", "\n\n", "\n".join(out))
    return _convert_roles(result, ctx).strip("\n")


def _render_directive(name: str, arg: str, opts: dict[str, str], body: str, ctx: _Context) -> str:
    if name in _PROOF_TITLES:
        kind = _PROOF_TITLES[name]
        if name == "prf:proof":
            return f"*Proof.* {body} ∎"
        n = ctx.next_number(kind)
        title = f" ({_convert_roles(arg, ctx)})" if arg else ""
        return f"**{kind} {n}{title}.** {body}"
    if name == "admonition":
        return _quote(f"**{_convert_roles(arg, ctx)}**\n\n{body}")
    if name in _ADMONITION_TITLES:
        title = _ADMONITION_TITLES[name] + (f": {_convert_roles(arg, ctx)}" if arg else "")
        return _quote(f"**{title}.** {body}" if "\n" not in body else f"**{title}.**\n\n{body}")
    if name in ("exercise-start", "exercise"):
        n = ctx.next_number("exercise")
        if "label" in opts:
            ctx.exercise_numbers[opts["label"]] = n
        title = f" ({_convert_roles(arg, ctx)})" if arg else ""
        return f"### Exercise {n}{title}\n\n{body}".rstrip()
    if name in ("exercise-end", "solution-end"):
        return ""
    if name in ("solution-start", "solution"):
        n = ctx.exercise_numbers.get(arg)
        target = f"Exercise {n}" if n else "the exercise"
        inner = f"\n\n{body}\n\n" if body else "\n\n"
        return f"<details><summary><b>Solution to {target}</b> (the code cells below)</summary>{inner}</details>"
    if name in ("math",):
        if "label" in opts:
            ctx.equations[opts["label"]] = ctx.next_number("equation")
        return f"$$\n{body}\n$$"
    if name in ("dropdown", "toggle"):
        return f"<details><summary>{_convert_roles(arg, ctx) or 'Details'}</summary>\n\n{body}\n\n</details>"
    if name in ("bibliography",):
        return "*(The references are listed in the book's bibliography.)*"
    if name in ("figure", "image"):
        return f"![{opts.get('alt', '')}]({arg})\n\n{body}".strip()
    if name in ("epigraph", "epigraph"):
        return _quote(body)
    if name in ("margin", "sidebar", "topic"):
        return _quote(f"**{arg}**\n\n{body}" if arg else body)
    raise ValueError(f"the notebook converter does not know the directive {{{name}}}: add it to hild.book.notebooks")


def is_chapter_source(md: Path) -> bool:
    """A MyST notebook source: a .md whose front matter has a jupytext header."""
    head = md.read_text(encoding="utf-8")[:400]
    return head.startswith("---") and "jupytext" in head


def chapter_sources(root: Path) -> list[Path]:
    """Every MyST notebook source under book/."""
    return [md for md in sorted((root / "book").rglob("*.md"))
            if not any(part.startswith((".", "_")) for part in md.relative_to(root).parts)
            and is_chapter_source(md)]


def toc_chapters(root: Path) -> list[Path]:
    """The chapter sources listed in _toc.yml, in its order."""
    import yaml

    found: list[Path] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    md = root / (node[key].removesuffix(".md") + ".md")
                    if md in sources and md not in found:
                        found.append(md)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    sources = set(chapter_sources(root))
    walk(yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8")))
    return found


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder above ``start`` holding _config.yml and book/."""
    p = (start or Path.cwd()).resolve()
    for cand in (p, *p.parents):
        if (cand / "_config.yml").exists() and (cand / "book").is_dir():
            return cand
    raise FileNotFoundError(f"no book root (a folder with _config.yml and book/) above {p}")


def md_to_notebook(md_path: Path, info: BookInfo | None = None) -> Any:
    """The clean notebook for one MyST chapter (an ``nbformat`` NotebookNode)."""
    import jupytext
    import nbformat

    md_path = Path(md_path)
    info = info or BookInfo.load(find_root(md_path.parent))
    nb = jupytext.read(md_path, fmt="md:myst")
    ctx = _Context(info, md_path.with_suffix(".ipynb"))
    cells = []
    for cell in nb.cells:
        source = cell.source
        if cell.cell_type == "markdown":
            source = _convert_markdown(source, ctx)
            if not source.strip():
                continue
            new = nbformat.v4.new_markdown_cell(source)
        elif cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(source)
            tags = cell.metadata.get("tags")
            if tags:
                new.metadata["tags"] = list(tags)
        else:
            new = nbformat.v4.new_raw_cell(source)
        new["id"] = f"c{len(cells):03d}"
        cells.append(new)
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    paper = nb.metadata.get("paper") or {}
    if paper.get("gpu_for_full_scale"):
        out.metadata["accelerator"] = "GPU"  # Colab opens it on a GPU runtime: full scale
        out.metadata["colab"] = {"gpuType": "T4", "provenance": []}
    return out


def notebook_json(nb: Any) -> str:
    """The notebook as the exact text that is committed (stable key order, one trailing newline)."""
    import nbformat

    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hild.book.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["sync", "check"], help="sync: rewrite the notebooks; check: report stale ones")
    parser.add_argument("paths", nargs="*", type=Path, help="chapter .md files (default: every chapter)")
    args = parser.parse_args(argv)
    root = find_root()
    info = BookInfo.load(root)
    sources = [p.resolve() for p in args.paths] or chapter_sources(root)
    stale = []
    for md in sources:
        if md.suffix == ".ipynb":
            md = md.with_suffix(".md")
        if not is_chapter_source(md):
            parser.error(f"{md} is not a chapter source (no jupytext header in its front matter): "
                         "plain pages have no notebook")
        text = notebook_json(md_to_notebook(md, info))
        target = md.with_suffix(".ipynb")
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if args.command == "sync":
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(root)}")
        else:
            stale.append(target)
    if stale:
        print("stale notebooks (run `python -m hild.book.notebooks sync`):", *[s.relative_to(root) for s in stale], sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
