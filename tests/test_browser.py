"""The rendered book in a real browser (Playwright driving Debian's chromium).

Serves ``_build/html`` on localhost and visits every page: every image loads, no page shows raw
MyST syntax, an error/traceback output or a Python warning, each chapter's Colab button links to
its notebook in the repository, every internal link resolves, math is typeset, and the search
page finds a chapter by a word in it. Skipped when the book is not built or chromium is missing,
unless ``HILD_REQUIRE_BROWSER=1`` (set by .ci/run, which builds first).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from hild.book.notebooks import BookInfo

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = os.environ.get("HILD_REQUIRE_BROWSER") == "1"
PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if not p.relative_to(HTML).as_posix().startswith(("_", "genindex", "search", "prf-", "index.html"))
               ) if HTML.exists() else []  # index.html only redirects to the intro
RAW_MYST = re.compile(r"```\{|:::\{|\{(cite|doc|ref|eq|prf:ref|colab|numref)\}`|\{prf:|\{exercise|\{solution")


def _unavailable() -> str | None:
    if not (HTML / "index.html").exists():
        return "the book is not built (jupyter-book build --all .)"
    if not CHROMIUM.exists():
        return "no /usr/bin/chromium (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


@pytest.fixture(scope="module")
def site():
    why = _unavailable()
    if why:
        if REQUIRED:
            pytest.fail(f"HILD_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield f"http://127.0.0.1:{server.server_address[1]}/", browser
        browser.close()
    server.shutdown()


def _open(site, path: str):
    base, browser = site
    page = browser.new_page()
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1).*"), lambda route: route.abort())  # no third-party loads
    page.goto(base + path, wait_until="load")
    page.wait_for_timeout(300)
    return page


@pytest.mark.parametrize("path", PAGES)
def test_page(site, path):
    page = _open(site, path)
    try:
        broken = page.evaluate("""() => Array.from(document.images)
            .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src)""")
        assert not broken, f"{path}: images that did not load: {broken}"
        text = page.inner_text("article")
        raw = RAW_MYST.search(text)
        assert raw is None, f"{path}: raw MyST syntax on the page: {raw.group(0)!r}"
        assert page.locator(".output.traceback, .output.error").count() == 0, f"{path}: an error output"
        stderr = page.locator(".output.stderr")
        assert stderr.count() == 0, f"{path}: a stderr output: {stderr.first.inner_text()[:200]}"
        assert not re.search(r"\b\w+Warning: ", text), f"{path}: a Python warning is shown"
        if page.locator("article .math, article mjx-container").count() or "\\(" in text:
            page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0", timeout=15000)
            assert "\\(" not in page.inner_text("article"), f"{path}: untypeset math"
        base = site[0]
        for href in set(page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")):
            url = urljoin(base + path, href)
            if not url.startswith(base) or href.startswith("#"):
                continue
            target = HTML / unquote(urlparse(url).path[len(urlparse(base).path):])
            if target.is_dir():
                target = target / "index.html"
            assert target.exists(), f"{path}: broken internal link {href}"
    finally:
        page.close()


CHAPTER_PAGES = [p for p in PAGES if (ROOT / p).with_suffix(".ipynb").exists()]


@pytest.mark.parametrize("path", CHAPTER_PAGES)
def test_colab_links_point_at_the_notebook(site, path):
    page = _open(site, path)
    try:
        hrefs = set(page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)"))
    finally:
        page.close()
    info = BookInfo.load(ROOT)
    expected = info.colab_url(ROOT / Path(path).with_suffix(".ipynb"))
    assert expected in hrefs, f"{path}: no Colab link to {expected} (found {sorted(hrefs)})"
    assert all(h == expected for h in hrefs), f"{path}: a Colab link points elsewhere: {sorted(hrefs)}"


def test_search_finds_a_chapter(site):
    page = _open(site, "search.html?q=extrapolation")
    try:
        page.wait_for_selector("#search-results li", timeout=20000)
        results = page.inner_text("#search-results")
    finally:
        page.close()
    assert "Alex-GDA" in results or "alternat" in results.lower(), results[:500]


@pytest.mark.parametrize("path", ["book/appendix/papers.html", "book/appendix/results.html"])
def test_appendix_tables_fit_the_page(site, path):
    """The generated tables keep every column inside the article at a laptop's width."""
    page = _open(site, path)
    try:
        page.set_viewport_size({"width": 1280, "height": 800})
        overflow = page.evaluate("""() => Array.from(document.querySelectorAll('table.hild-table'))
            .map(t => t.scrollWidth - t.parentElement.clientWidth)""")
    finally:
        page.close()
    assert overflow, f"{path}: no generated table"
    assert max(overflow) <= 1, f"{path}: the table is {max(overflow)} px wider than the article"
