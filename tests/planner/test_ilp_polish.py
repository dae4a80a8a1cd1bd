"""Fix-and-optimise (planner.ilp.polish): on a hand-made program it finds the known cheaper
integer point and leaves the columns outside the neighbourhood alone; it never returns a
dearer point, nor one that breaks a row, and gives way when the whole relaxation finishes;
a greedy plan of small instances comes back cheaper, never below the optimum, and still
verifies."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from scipy import sparse

from planner.ilp import polish as polish_module
from planner.ilp.build import create_model
from planner.ilp.greedy import greedy_values
from planner.ilp.highs_lp import HighsRelaxation
from planner.ilp.plan import SolverFacts
from planner.ilp.polish import (
    Polisher,
    Program,
    hour_windows,
    improve,
    neighbourhoods,
    polish,
    polish_plan,
    snap,
)
from planner.ilp.readback import from_values
from planner.ilp.solve import SolverSettings, solve
from planner.ilp.split_lp import column_keys
from planner.ilp.verify import verify
from tests.planner.test_ilp_lagrange import _instance


def _program() -> Program:
    """min 3·y1 + 2·y2 + s  s.t.  y1 + y2 + s ≥ 2,  y2 + 2·s ≤ 2.5,  y integer in [0, 4],
    s in [0, 1]. With s held at 0.5 the cheapest integer point is y = (1, 1), cost 5.5 (the
    LP's y = (0, 1.5) rounded up breaks the second row); with s free, cost 4."""
    matrix = sparse.csc_matrix(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]]))
    return Program(
        cost=np.array([3.0, 2.0, 1.0]),
        matrix=matrix,
        row_lo=np.array([2.0, -np.inf]),
        row_hi=np.array([np.inf, 2.5]),
        col_lo=np.zeros(3),
        col_hi=np.array([4.0, 4.0, 1.0]),
        integer=np.array([True, True, False]),
    )


def test_polish_finds_the_cheaper_integer_point_and_keeps_the_rest() -> None:
    prog = _program()
    x0 = np.array([2.0, 0.0, 0.5])  # cost 6.5, feasible
    x, step = improve(prog, x0, np.array([0, 1]), 10.0)
    assert np.allclose(x, [1.0, 1.0, 0.5])  # s stays where the plan has it
    assert step.saved == pytest.approx(1.0)
    assert prog.violation(x) <= 1e-9
    assert x0.tolist() == [2.0, 0.0, 0.5]  # the plan given is not modified


def test_the_violation_counts_rows_and_column_bounds() -> None:
    """Program.violation, the one check of a point (the polish's steps, every plan the split
    run offers): the largest excess over a row's or a column's bounds."""
    prog = _program()
    assert prog.violation(np.array([1.0, 1.0, 0.5])) == 0.0
    assert prog.violation(np.array([1.0, 0.0, 0.5])) == pytest.approx(0.5)  # row 1: 1.5 < 2
    assert prog.violation(np.array([2.0, 0.0, 1.25])) == pytest.approx(0.25)  # s > 1


def test_polish_never_returns_a_dearer_point() -> None:
    prog = _program()
    best = np.array([1.0, 1.0, 0.5])
    x, steps = polish(prog, best, [np.array([0, 1]), np.array([0, 1, 2])], 1e12, 10.0)
    # with s free the optimum costs 4: cheaper, and taken
    assert prog.cost @ x == pytest.approx(4.0)
    assert [s.saved for s in steps] == [0.0, pytest.approx(1.5)]
    again, steps = polish(prog, x, [np.array([0, 1, 2])], 1e12, 10.0)
    assert again.tolist() == x.tolist() and steps[0].saved == 0.0


def test_polish_leaves_a_point_that_breaks_a_row_as_it_is() -> None:
    prog = _program()
    bad = np.array([4.0, 4.0, 1.0])  # y2 + 2·s = 6 > 2.5, and dear: a MIP would move it
    relax = _Arrays(prog)
    keys = [("y", ("a", "g", 1)), ("y", ("b", "g", 1)), ("sa", ("a", "m", 1))]
    x, source = polish_plan(Polisher.of(relax, keys), bad, "greedy", time.perf_counter() + 60.0)
    assert x is bad and source == "greedy"


def test_polish_stops_when_the_whole_relaxation_finishes() -> None:
    """In a portfolio the polish gives way to the whole relaxation's bound: once its future
    is done no further MIP starts (here it finishes right after the polish begins, so no
    step is taken; without the future the same call finds the point costing 4)."""
    prog = _program()
    x0 = np.array([2.0, 0.0, 0.5])
    keys = [("y", ("a", "g", 1)), ("y", ("b", "g", 1)), ("sa", ("a", "m", 1))]
    whole = _Finishing()
    x, source = polish_plan(
        Polisher.of(_Arrays(prog), keys), x0, "dives", time.perf_counter() + 60.0, whole
    )
    assert x is x0 and source == "dives" and whole.calls >= 2
    x, source = polish_plan(
        Polisher.of(_Arrays(prog), keys), x0, "dives", time.perf_counter() + 60.0
    )
    assert prog.cost @ x == pytest.approx(4.0) and source.startswith("dives, polished")


class _Finishing:
    """A future that is running when first asked, done from then on."""

    def __init__(self) -> None:
        self.calls = 0

    def done(self) -> bool:
        self.calls += 1
        return self.calls > 1


def test_snap_clears_the_specks_a_mip_leaves_within_the_bounds() -> None:
    """Specks (a MIP's ~1e-12) become 0 where 0 is allowed, so the read-back's routing
    weights, which drop them from a row but counted them in its total, sum to 1; values
    leave no bound."""
    values = np.array([3e-12, -2e-13, 0.5, 1e-12, 7.0])
    lo = np.array([0.0, 0.0, 0.0, 1e-12, 0.0])
    hi = np.array([1.0, 1.0, 0.4, 1.0, 5.0])
    assert snap(values, lo, hi).tolist() == [0.0, 0.0, 0.4, 1e-12, 5.0]


def test_hour_windows_take_the_edges_first() -> None:
    assert hour_windows(range(1, 6), (1, 3)) == [
        [5],
        [1],
        [4],
        [2],
        [3],
        [3, 4, 5],
        [1, 2, 3],
        [2, 3, 4],
    ]


@pytest.mark.parametrize("seed", [2, 3])
def test_polished_greedy_plan_is_cheaper_verifies_and_stays_above_the_optimum(seed: int) -> None:
    data = _instance(seed)
    optimum = solve(create_model(data), SolverSettings(time_limit_s=60, mip_gap=0.0))
    assert optimum.status == "optimal"
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    keys = column_keys(relax)
    x0 = relax.point(greedy_values(data))
    x, source = polish_plan(Polisher.of(relax, keys), x0, "greedy", time.perf_counter() + 60.0)
    before, after = relax.objective_of(x0), relax.objective_of(x)
    assert after < before - 1.0 and source.startswith("greedy, polished")
    assert after >= optimum.objective - 1e-6 * max(1.0, abs(optimum.objective))
    facts = SolverFacts("t", after, 0.0, 0.0, 0, 0, "", "h")
    check = verify(from_values(data, relax.values(x), facts), data)
    assert check.ok, check.violations[:5]


class _Arrays:
    """The arrays of a HighsRelaxation, for a hand-made program (one committed hour)."""

    def __init__(self, prog: Program) -> None:
        self.cost, self.matrix = prog.cost, prog.matrix
        self.row_lo, self.row_hi = prog.row_lo, prog.row_hi
        self.col_lo, self.col_hi = prog.col_lo, prog.col_hi
        self.built = type("Built", (), {"data": type("Data", (), {"committed": _first})})()


def _first(t: int) -> bool:
    return t <= 1


def test_a_window_frees_its_hours_but_never_routes_or_unmet() -> None:
    """The neighbourhood of hours {1} and of {2}: every column of those hours but the routes
    (f) and the unmet demand (e); other hours' columns stay held."""
    keys = [
        ("f", ("a", "b", "m", "k", 1)),
        ("e", ("a", "m", "k", 1)),
        ("w", ("a", "m", "g", "k", 1)),
        ("y", ("a", "g", 2)),
        ("x", ("a", "m", "g", 1)),
    ]
    assert [h.tolist() for h in neighbourhoods(keys, [[1], [2]])] == [[2, 4], [3]]


def test_only_committed_instances_are_integer() -> None:
    keys = [("x", ("a", "g", 1)), ("x", ("b", "g", 2)), ("sa", ("a", "m", 1))]
    assert Program.of(_Arrays(_program()), keys).integer.tolist() == [True, False, False]


def test_no_step_once_the_deadline_has_passed() -> None:
    prog = _program()
    x0 = np.array([2.0, 0.0, 0.5])
    x, steps = polish(prog, x0, [np.array([0, 1])], time.perf_counter() - 1.0, 10.0)
    assert steps == [] and x is x0


@pytest.mark.parametrize("running", [None, "done", "running"])
def test_only_single_hours_unless_the_whole_relaxation_is_running(
    running: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """polish_plan tries the three-hour windows only while the whole relaxation runs (the
    portfolio's main process is idle); with no portfolio or once it has finished, only the
    single hours (the real polish runs; the windows it is given are recorded)."""
    given: list[list[list[int]]] = []
    real = polish_module.polish

    def recorded(prog: Program, x: np.ndarray, hoods: list[np.ndarray], *rest: Any) -> Any:
        given.append([h.tolist() for h in hoods])
        return real(prog, x, hoods, *rest)

    monkeypatch.setattr(polish_module, "polish", recorded)
    keys = [("y", ("a", "g", 1)), ("y", ("b", "g", 2)), ("sa", ("a", "m", 3))]
    polisher = Polisher.of(_Arrays(_program()), keys)
    assert [h.tolist() for h in polisher.hoods] == [[2], [0], [1], [0, 1, 2]]
    future = None if running is None else _Running(running == "running")
    polish_plan(polisher, np.array([2.0, 0.0, 0.5]), "dives", time.perf_counter() + 60.0, future)
    assert given == [[[2], [0], [1], [0, 1, 2]] if running == "running" else [[2], [0], [1]]]


class _Running:
    """The whole relaxation's future, running or done."""

    def __init__(self, running: bool) -> None:
        self.running = running

    def done(self) -> bool:
        return not self.running
