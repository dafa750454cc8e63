"""hild.checks: verdicts on right, wrong and missing answers."""

import numpy as np
import pytest

from hild.checks import CheckFailed, check, check_close, check_function
from hild.checks import games as game_checks


def test_check_close_passes_and_fails(capsys):
    check_close("sum", 3.0000000001, 3.0)
    assert capsys.readouterr().out.startswith("✓ sum")
    with pytest.raises(CheckFailed, match="got 2.5, expected 3"):
        check_close("sum", 2.5, 3.0, hint="add them")
    with pytest.raises(CheckFailed, match="shape"):
        check_close("vec", [1, 2], [1, 2, 3])
    with pytest.raises(CheckFailed, match="not answered yet"):
        check_close("vec", None, [1.0])


def test_check_function_reports_the_failing_case():
    ref = lambda a, b: a * b  # noqa: E731
    check_function(lambda a, b: b * a, reference=ref, cases=[(1, 2), (3.0, 4.0)])
    with pytest.raises(CheckFailed, match=r"on \(3, 4\)"):
        check_function(lambda a, b: a + b if a > 1 else a * b, reference=ref, cases=[(1, 2), (3, 4)])


def test_stub_and_crash_are_reported_without_traceback_noise():
    def stub(a):
        raise NotImplementedError

    with pytest.raises(CheckFailed, match="not answered yet"):
        check_function(stub, reference=lambda a: a, cases=[(1,)])
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        check_function(lambda a: 1 / 0, reference=lambda a: a, cases=[(1,)])


def test_check_condition(capsys):
    check("ordering", True, detail="3 < 4")
    assert "✓ ordering: 3 < 4" in capsys.readouterr().out
    with pytest.raises(CheckFailed):
        check("ordering", False, detail="4 < 3")


def test_game_exercise_checks_accept_exact_and_reject_sim():
    def alt(a, b, c, alpha, beta):
        M = np.array([[1 - alpha * a, -alpha * b], [beta * b * (1 - alpha * a), 1 - beta * c - alpha * beta * b * b]])
        return np.max(np.abs(np.linalg.eigvals(M)))

    def sim(a, b, c, alpha, beta):  # the common mistake: y sees the old x
        M = np.array([[1 - alpha * a, -alpha * b], [beta * b, 1 - beta * c]])
        return np.max(np.abs(np.linalg.eigvals(M)))

    game_checks.alt_gda_radius(alt)
    with pytest.raises(CheckFailed):
        game_checks.alt_gda_radius(sim)
    with pytest.raises(CheckFailed, match="not answered"):
        game_checks.alex_best_extrapolation(lambda grid: (_ for _ in ()).throw(NotImplementedError()))
