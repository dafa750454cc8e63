"""Checks for the exercises: print what is right or wrong and why, raise on a wrong answer.

Each chapter's exercises have their checks in a module of this package named after the chapter's
topic (``hild.checks.games`` for the minimax chapters). They are built from three pieces:

* :func:`check` for a condition with an explanation,
* :func:`check_close` for a number or array against the exact answer,
* :func:`check_function` for a function the reader wrote, called on cases against a reference.

A passing check prints one line starting with ``✓``; a failing one raises :class:`CheckFailed`
(an ``AssertionError``, so nbgrader counts it as a failed test) whose message says which case
failed, what was expected and, where given, a hint. An exercise that is not answered yet (the
stub still raises ``NotImplementedError``) fails with "not answered yet".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["CheckFailed", "check", "check_close", "check_function", "as_array"]


class CheckFailed(AssertionError):
    """A wrong (or missing) answer to an exercise."""


def as_array(value: Any) -> np.ndarray:
    """A float64 NumPy array from a number, list, NumPy array or torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _fail(name: str, message: str, hint: str = "") -> None:
    __tracebackhide__ = True
    text = f"✗ {name}: {message}"
    if hint:
        text += f"\n  Hint: {hint}"
    raise CheckFailed(text)


def check(name: str, passed: bool, *, detail: str, hint: str = "") -> None:
    """Pass or fail on a condition.

    Args:
        name: what is checked, e.g. ``"Exercise 2"``.
        passed: the condition.
        detail: what was checked and measured, shown either way.
        hint: shown on failure only.
    """
    __tracebackhide__ = True
    if not passed:
        _fail(name, detail, hint)
    print(f"✓ {name}: {detail}")


def _compare(answer: Any, expected: Any, rtol: float, atol: float) -> tuple[bool, str]:
    a, e = as_array(answer), as_array(expected)
    if a.shape != e.shape:
        return False, f"shape {a.shape}, expected {e.shape}"
    if not np.all(np.isfinite(a)):
        return False, f"contains NaN or inf: {a}"
    err = np.abs(a - e)
    ok = bool(np.all(err <= atol + rtol * np.abs(e)))
    if a.size == 1:
        return ok, f"got {a.item():.6g}, expected {e.item():.6g}"
    worst = int(np.argmax(err - rtol * np.abs(e)))
    return ok, f"largest error {err.flat[worst]:.3g} at index {np.unravel_index(worst, a.shape)}"


def check_close(
    name: str, answer: Any, expected: Any, *, rtol: float = 1e-6, atol: float = 1e-12, hint: str = ""
) -> None:
    """Pass if ``answer`` equals ``expected`` within ``atol + rtol·|expected|`` elementwise."""
    __tracebackhide__ = True
    if answer is None or answer is Ellipsis:
        _fail(name, "not answered yet: fill in the cell above and run it again")
    ok, detail = _compare(answer, expected, rtol, atol)
    if not ok:
        _fail(name, detail, hint)
    print(f"✓ {name}: {detail}")


def _call(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], name: str) -> Any:
    __tracebackhide__ = True
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        _fail(name, "not answered yet: the function still raises NotImplementedError")
    except CheckFailed:
        raise
    except Exception as exc:  # the reader's code failed: say how, without a long traceback
        _fail(name, f"calling it with {_show_case(args, kwargs)} raised {type(exc).__name__}: {exc}")


def _show_case(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    def short(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0:
            return f"<array {tuple(v.shape)}>"
        return repr(v)

    parts = [short(a) for a in args] + [f"{k}={short(v)}" for k, v in kwargs.items()]
    return "(" + ", ".join(parts) + ")"


def check_function(
    fn: Callable[..., Any],
    *,
    reference: Callable[..., Any],
    cases: Iterable[Sequence[Any] | tuple[Sequence[Any], Mapping[str, Any]]],
    name: str | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-12,
    hint: str = "",
) -> None:
    """Call ``fn`` and ``reference`` on each case and compare the results.

    Args:
        fn: the reader's function.
        reference: the exact answer, as a function of the same arguments.
        cases: positional-argument tuples, or ``(args, kwargs)`` pairs.
        name: shown in the verdict; by default the function's name.
    """
    __tracebackhide__ = True
    label = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        _fail(label, f"expected a function, got {type(fn).__name__}")
    n = 0
    worst = 0.0
    for case in cases:
        if len(case) == 2 and isinstance(case[1], Mapping):
            args, kwargs = case  # type: ignore[misc]
        else:
            args, kwargs = case, {}
        got = _call(fn, args, kwargs, label)
        want = reference(*args, **kwargs)
        ok, detail = _compare(got, want, rtol, atol)
        if not ok:
            _fail(label, f"on {_show_case(args, kwargs)}: {detail}", hint)
        scale = float(np.max(np.abs(as_array(want)))) or 1.0
        worst = max(worst, float(np.max(np.abs(as_array(got) - as_array(want)))) / scale)
        n += 1
    if n == 0:
        raise ValueError("check_function needs at least one case")
    rel = "0" if worst == 0 else f"{worst:.1e}"
    print(f"✓ {label}: matches the exact answer on {n} case{'s' if n != 1 else ''} (largest relative error {rel})")


def is_close(a: float, b: float, rtol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-15)
