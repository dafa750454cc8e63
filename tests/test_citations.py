"""Chapter-local bibliographies: a key cited in two chapters is two citations with distinct
prefixed keys (sphinxcontrib-bibtex refuses one key in two bibliographies)."""

from hild.book.sphinx import citation_prefix, localise_citations

PAGE = """Text {cite:p}`jacot2018neural, lee2019wide` and {cite}`cohen2021gradient`.

```{bibliography}
:filter: docname in docnames
```
"""


def test_keys_and_bibliography_get_the_page_prefix():
    out = localise_citations("kernels/ntk", PAGE)
    p = citation_prefix("kernels/ntk")
    assert p == "kernels--ntk--"
    assert f"{{cite:p}}`{p}jacot2018neural,{p}lee2019wide`" in out
    assert f"{{cite}}`{p}cohen2021gradient`" in out
    assert f"```{{bibliography}}\n:keyprefix: {p}\n:filter: docname in docnames\n```" in out


def test_two_pages_citing_one_key_get_distinct_keys():
    a, b = localise_citations("a/x", PAGE), localise_citations("b/x", PAGE)
    assert "a--x--jacot2018neural" in a and "b--x--jacot2018neural" in b
    assert "a--x--" not in b


def test_a_page_without_its_own_bibliography_is_unchanged():
    text = "See {cite:t}`jacot2018neural`."
    assert localise_citations("intro", text) == text
