"""Sphinx extension of the book: the ``{colab}`` role and the generated appendix tables.

``{colab}`Open in Colab``` renders the Colab badge linking to this page's notebook in the
repository; the URL comes from ``_config.yml`` (``repository.url`` and ``repository.branch``,
which Jupyter Book passes on as ``html_theme_options``), so it is written in one place only. The
badge image ships with the book (``_static/colab-badge.svg``): the rendered book loads no
third-party image.

Each chapter ends in its own bibliography (``:filter: docname in docnames``); a key cited in two
chapters would be two citations of one key, which sphinxcontrib-bibtex refuses. So the key of every
citation and the chapter's bibliography get the chapter's name as a ``keyprefix``, as the
sphinxcontrib-bibtex documentation suggests for local bibliographies, but at read time: authors
write the plain key, ``{cite:p}`jacot2018neural```, in every chapter.

``{papers-table}`` and ``{results-table}`` build the appendix tables from every chapter's front
matter (``paper:`` and ``results:``), so a new chapter appears there without editing the page.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import yaml
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective, SphinxRole

_BADGE = """<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20" role="img" aria-label="Open in Colab">
<rect width="117" height="20" rx="3" fill="#555"/><rect x="21" width="96" height="20" rx="3" fill="#f9ab00"/>
<rect x="21" width="6" height="20" fill="#f9ab00"/>
<g fill="none" stroke="#f9ab00" stroke-width="2.4"><path d="M9.2 6.2a4.6 4.6 0 1 0 0 7.6"/><path d="M11.8 6.2a4.6 4.6 0 1 1 0 7.6"/></g>
<text x="69" y="14" fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">Open in Colab</text>
</svg>
"""


def colab_url(config: Any, docname: str) -> str:
    opts = config.html_theme_options or {}
    repo = str(opts.get("repository_url", "")).rstrip("/")
    if not repo.startswith("https://github.com/"):
        raise ValueError(f"the Colab link needs a GitHub repository URL in _config.yml, got {repo!r}")
    branch = opts.get("repository_branch", "main")
    prefix = str(opts.get("path_to_docs", "")).strip("/")
    path = f"{prefix}/{docname}.ipynb" if prefix else f"{docname}.ipynb"
    return f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/{branch}/{path}"


class ColabRole(SphinxRole):
    def run(self) -> tuple[list[nodes.Node], list[nodes.system_message]]:
        url = colab_url(self.config, self.env.docname)
        src = "../" * self.env.docname.count("/") + "_static/colab-badge.svg"
        alt = html.escape(self.text or "Open in Colab")
        # raw HTML: the badge is a file the extension writes, not a source image Sphinx should copy
        tag = f'<a class="colab-badge" href="{html.escape(url)}"><img src="{src}" alt="{alt}" height="20"></a>'
        return [nodes.raw("", tag, format="html")], []


_CITE = re.compile(r"(\{cite(?::[a-z]+)?\}`)([^`]+)(`)")
_BIBLIOGRAPHY = re.compile(r"^(```+|:::+)\{bibliography\}[^\n]*\n", re.MULTILINE)


def citation_prefix(docname: str) -> str:
    return docname.replace("/", "--") + "--"


def localise_citations(docname: str, text: str) -> str:
    """``text`` with its citations and its bibliography directive given the page's key prefix;
    unchanged when the page has no bibliography of its own."""
    if not _BIBLIOGRAPHY.search(text):
        return text
    prefix = citation_prefix(docname)

    def cite(m: re.Match[str]) -> str:
        keys = ",".join(prefix + k.strip() for k in m.group(2).split(","))
        return f"{m.group(1)}{keys}{m.group(3)}"

    text = _CITE.sub(cite, text)
    return _BIBLIOGRAPHY.sub(lambda m: f"{m.group(0)}:keyprefix: {prefix}\n", text)


def _local_citations(app: Sphinx, docname: str, source: list[str]) -> None:
    source[0] = localise_citations(docname, source[0])


def _chapters(env: Any) -> list[tuple[str, dict[str, Any]]]:
    """(docname, front matter) of every chapter (a page whose front matter has ``paper:``), in
    the order of the table of contents."""
    out = []
    order = {d: i for i, d in enumerate(env.found_docs)}
    toc_order = getattr(env, "hild_toc_order", None) or order
    for docname in sorted(env.found_docs, key=lambda d: toc_order.get(d, len(toc_order))):
        path = Path(env.doc2path(docname))
        if path.suffix != ".md":
            continue
        text = path.read_text(encoding="utf-8")
        if not text.startswith("---"):
            continue
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
        if isinstance(meta.get("paper"), dict):
            env.note_dependency(str(path))
            out.append((docname, meta))
    return out


def _title(env: Any, docname: str) -> str:
    t = env.titles.get(docname)
    return t.astext() if t is not None else docname.rsplit("/", 1)[-1]


def _doc_link(docname: str, text: str) -> nodes.Node:
    ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget="/" + docname, refexplicit=False,
                                refwarn=True)
    ref += nodes.inline(text, text)
    return ref


def _table(headers: list[str], rows: list[list[nodes.Node | str]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["hild-table", "colwidths-given"])  # the writer emits the widths
    group = nodes.tgroup(cols=len(headers))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for h in headers:
        row += nodes.entry("", nodes.paragraph(text=h))
    head += row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for c in cells:
            para = nodes.paragraph()
            para += c if isinstance(c, nodes.Node) else nodes.Text(str(c))
            row += nodes.entry("", para)
        body += row
    return table


def _link(url: str | None, text: str) -> nodes.Node | str:
    if not url:
        return "—"
    return nodes.reference(text, text, refuri=url)


class PapersTable(SphinxDirective):
    """Every paper of the book: title, authors, venue, arXiv, official code, chapter."""

    def run(self) -> list[nodes.Node]:
        rows = []
        for docname, meta in _chapters(self.env):
            p = meta["paper"]
            arxiv = str(p.get("arxiv") or "")
            rows.append([
                p.get("title", ""),
                ", ".join(p.get("authors", [])),
                f"{p.get('venue', '')}",
                _link(f"https://arxiv.org/abs/{arxiv}" if arxiv else None, arxiv),
                _link(p.get("code"), "code"),
                _doc_link(docname, _title(self.env, docname)),
            ])
        return [_table(["Paper", "Authors", "Venue", "arXiv", "Code", "Chapter"], rows, [24, 21, 17, 14, 8, 16])]


class ResultsTable(SphinxDirective):
    """Each chapter's claim, the paper's number, ours at ci scale and at full scale (with device)."""

    def run(self) -> list[nodes.Node]:
        rows = []
        for docname, meta in _chapters(self.env):
            r = meta.get("results") or {}
            rows.append([_doc_link(docname, _title(self.env, docname)), r.get("claim", "—"),
                         r.get("paper", "—"), r.get("ci", "—"), r.get("full", "—")])
        return [_table(["Chapter", "Claim", "Paper", "Ours, ci scale (seeds 0-4)", "Ours, full scale"], rows,
                       [18, 30, 18, 20, 14])]


def _toc_order(app: Sphinx, env: Any, docnames: list[str]) -> None:
    """Remember the order of _toc.yml (Jupyter Book passes it as ``external_toc_path``)."""
    order: dict[str, int] = {}
    path = Path(app.srcdir) / str(getattr(app.config, "external_toc_path", "_toc.yml"))
    if path.exists():
        import re

        for i, f in enumerate(re.findall(r"(?:file|root):\s*(\S+)", path.read_text(encoding="utf-8"))):
            order[f.removesuffix(".md")] = i
    env.hild_toc_order = order


# The appendix tables have five or six text columns: at the theme's font size and automatic layout
# the last one is clipped; a fixed layout keeps the column widths the directives give.
_CSS = """table.hild-table { font-size: 0.82rem; table-layout: fixed; width: 100%; }
table.hild-table td, table.hild-table th { padding: 0.35rem 0.5rem; vertical-align: top; overflow-wrap: break-word; }
"""


def _write_static(app: Sphinx) -> None:
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    (static / "colab-badge.svg").write_text(_BADGE, encoding="utf-8")
    (static / "hild.css").write_text(_CSS, encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_role("colab", ColabRole())
    app.add_directive("papers-table", PapersTable)
    app.add_directive("results-table", ResultsTable)
    app.connect("env-before-read-docs", _toc_order)
    app.connect("source-read", _local_citations)
    app.connect("builder-inited", _write_static)
    app.add_css_file("hild.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
