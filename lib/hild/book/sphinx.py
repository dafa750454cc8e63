"""Sphinx extension of the book: the ``{colab}`` role.

``{colab}`Open in Colab``` renders the Colab badge linking to this page's notebook in the
repository; the URL comes from ``_config.yml`` (``repository.url`` and ``repository.branch``,
which Jupyter Book passes on as ``html_theme_options``), so it is written in one place only. The
badge image ships with the book (``_static/colab-badge.svg``): the rendered book loads no
third-party image.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxRole

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


def _write_badge(app: Sphinx) -> None:
    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    (static / "colab-badge.svg").write_text(_BADGE, encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_role("colab", ColabRole())
    app.connect("builder-inited", _write_badge)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
