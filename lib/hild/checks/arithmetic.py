"""Checks for the exercises of the length-generalization chapters (Part "Length generalization")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data import arithmetic as A
from . import _call, _fail, check, check_function

__all__ = ["coupled_ids", "query_maps", "scratchpad", "multilevel_ids"]

_ADDITIONS = ["$368+020=8830$", "$5+7=21$", "$0+0=00$", "$00123+98765=88889$", "$99999999+00000001=000000001$",
              "$12+34="]


def coupled_ids(fn: Callable[[str], Any]) -> None:
    """Exercise: ``fn(text)`` returns the coupled position ids (start 1) of an addition sequence."""
    __tracebackhide__ = True
    check_function(lambda text: np.asarray(fn(text), dtype=float), reference=A.coupled_positions,
                   cases=[(t,) for t in _ADDITIONS], name="coupled_ids",
                   hint="'$' gets 0; '+' and '=' get 1; a digit of significance i (units: i = 0) gets 2 + i. "
                        "Operands are written most significant digit first, the answer least significant first.")


def query_maps(fn: Callable[[int], Any], *, max_position: int = 24, n: int = 100) -> None:
    """Exercise: ``fn(P)`` returns the two heads' query maps, each (P + 1, P + 1), that make
    :func:`hild.models.transformer.addition_construction` add; checked by running it."""
    __tracebackhide__ = True
    import torch

    from ..models.transformer import addition_construction

    P = max_position
    maps = _call(fn, (P,), {}, "query_maps")
    try:
        m1, m2 = (torch.as_tensor(np.asarray(m, dtype=np.float32)) for m in maps)
    except (TypeError, ValueError):
        _fail("query_maps", f"expected two ({P + 1}, {P + 1}) matrices, got {type(maps).__name__}")
    for name, m in (("head 1", m1), ("head 2", m2)):
        if tuple(m.shape) != (P + 1, P + 1):
            _fail("query_maps", f"the {name} map has shape {tuple(m.shape)}, expected ({P + 1}, {P + 1})")
    model = addition_construction(P, query_maps=(m1, m2))
    task = A.AdditionTask(digits=(1, P - 2), max_position=P)
    lengths = [1, 2, 3, 5, 8, 13, P - 2]
    scores = A.evaluate(model, task, digits=lengths, n=n, seed=2024)
    exact = scores.exact[0]
    bad = [f"{d} digits: {e:.2f}" for d, e in zip(lengths, exact) if e < 1.0]
    check("query_maps", not bad,
          detail=(f"the hand-built model adds exactly at {', '.join(map(str, lengths))} digits ({n} problems each)"
                  if not bad else "exact match below 1 at " + "; ".join(bad)),
          hint="the query of the token with id p must point at e_(p+1) for head 1 (the next significance: the "
               "operand digits to add) and at e_p for head 2 (the same significance: the previous column, "
               "for the carry); column p of the matrix is the image of e_p.")


def _strings(fn: Callable[..., Any], reference: Callable[..., str], cases: list[tuple], name: str, hint: str) -> None:
    __tracebackhide__ = True
    for args in cases:
        got = _call(fn, args, {}, name)
        want = reference(*args)
        if got != want:
            _fail(name, f"on {args}: got {got!r}, expected {want!r}", hint)
    print(f"✓ {name}: the exact sequence on {len(cases)} cases")


def scratchpad(fn: Callable[[list[int]], str]) -> None:
    """Exercise: ``fn(numbers)`` writes the scratchpad sequence of a multi-operand addition."""
    __tracebackhide__ = True
    cases = [([57, 8, 136],), ([1, 2],), ([999, 999, 999, 999],), ([0, 0, 0],), ([12345, 67890, 5, 777, 31415, 9],),
             ([9] * 11,)]
    _strings(fn, A.scratchpad_text, cases, "scratchpad",
             "W is the number of digits of k·(10ⁿ − 1) for k operands of n digits; operands are zero-padded to W "
             "digits, most significant first; the running sums 0, S₁, ..., S_k are W digits, least significant "
             "first, joined by '>'; the sequence starts and ends with '$'.")


def multilevel_ids(fn: Callable[[str], Any]) -> None:
    """Exercise: ``fn(text)`` returns the (significance, operand) ids, start (1, 1), of a scratchpad sequence."""
    __tracebackhide__ = True
    texts = [A.scratchpad_text(x) for x in ([57, 8, 136], [1, 2], [3141, 5926, 5358, 9793], [7] * 10)]
    check_function(lambda text: np.asarray(fn(text), dtype=float),
                   reference=lambda text: np.asarray(A.multilevel_positions(text), dtype=float),
                   cases=[(t,) for t in texts], name="multilevel_ids",
                   hint="significance: as for coupled ids ('+', '=', '>' get 1, a digit of significance i gets "
                        "2 + i); operand: operand j (from 0) and the '+' after it get 1 + j, the running sum S_j and "
                        "the '=' or '>' before it get 1 + j; both '$' get (0, 0).")
