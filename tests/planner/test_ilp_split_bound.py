"""The split portfolio's bound side (planner.ilp.split_portfolio, split_tasks.solve_whole):
the whole relaxation's first-order duals give a safe bound between the Lagrangian at
cost-based prices and the optimum of small instances solved to optimality; the block
re-solves (SplitRun.refine) raise a loose bound and say so; the dives from the whole
relaxation's point run when no plan exists yet, however long the first plan took; an
offered point that breaks a row or a column bound is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from planner.ilp import polish, split_portfolio
from planner.ilp.build import create_model
from planner.ilp.decompose import DecompositionSettings
from planner.ilp.highs_lp import HighsRelaxation
from planner.ilp.parallel import RegionPool
from planner.ilp.solve import SolverSettings, solve
from planner.ilp.split_lp import Split
from planner.ilp.split_portfolio import REFINED_BOUND, WHOLE_LP_BOUND, SplitRun
from planner.ilp.split_tasks import solve_priced, solve_whole
from planner.ilp.variables import FAMILIES
from tests.planner.test_ilp_lagrange import _instance
from tests.planner.test_ilp_safe_bound import loose_interior

EXACT = SolverSettings(time_limit_s=60, mip_gap=0.0)
# generous time: nothing below depends on the clock
SPLIT = DecompositionSettings(time_limit_s=120.0, gap=0.0, max_iterations=6, split_above_vars=0)


@pytest.mark.parametrize("seed", range(3))
def test_whole_first_order_bound_lies_between_the_lagrangian_and_the_optimum(seed: int) -> None:
    """solve_whole's duals (the portfolio's worker task, first-order PDLP at a loose
    tolerance) give a safe bound at most the integer optimum and at least the Lagrangian
    bound at the split's cost-based prices (the bound the split had without them)."""
    data = _instance(seed)
    optimum = solve(create_model(data), EXACT)
    assert optimum.status == "optimal"
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    split = Split.of(relax, 2)
    y0 = split.initial_prices(data)
    costs = split.priced_costs(y0)
    sols = [solve_priced(data, b, c, 30.0) for b, c in zip(split.blocks, costs, strict=True)]
    lagrangian = split.bound(y0, sols)
    sol = solve_whole(data, Split.whole_block(relax), 30.0, time.time() + 30.0, 0.0)
    assert sol.row_dual is not None and sol.x is not None
    bound = relax.dual_bound(sol.row_dual)
    tol = 1e-6 * abs(optimum.objective)
    assert lagrangian < bound <= optimum.objective + tol


@pytest.mark.parametrize("seed", [0, 2])
def test_refine_raises_a_loose_bound_below_the_optimum_and_names_it(seed: int) -> None:
    """SplitRun.refine on an interior point stopped at 3e-2 (no crossover): the bound it
    offers is at least the loose duals' own, at most the optimum, and its source says the
    blocks were re-solved."""
    data = _instance(seed)
    optimum = solve(create_model(data), EXACT)
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    y, x = loose_interior(relax, 3e-2)
    loose = relax.dual_bound(y)
    with RegionPool(data, 1) as pool:
        run = SplitRun(data, SPLIT, pool)
        assert np.array_equal(run.relax.cost, relax.cost)  # the same columns, same order
        run.out.offer_bound(loose, WHOLE_LP_BOUND)
        run.refine(y, x)
    tol = 1e-6 * abs(optimum.objective)
    assert run.out.bound_from == REFINED_BOUND
    assert loose < run.out.lower_bound <= optimum.objective + tol


def test_with_no_plan_yet_the_dives_from_the_whole_point_run_and_give_one() -> None:
    """The portfolio's guard (SplitRun.take_whole): the dives from the whole relaxation's
    point are skipped when the first plan's time says they would not fit, unless there is
    no plan yet. A run whose first round gave no plan (none offered) and took longer than
    the whole time limit still dives and ends with a plan, and its bound is the whole
    relaxation's."""
    data = _instance(0)
    optimum = solve(create_model(data), EXACT)
    with RegionPool(data, 2) as pool:
        run = SplitRun(data, SPLIT, pool)
        assert run.whole is not None  # the portfolio: the whole relaxation on a worker
        run.first_plan_s = 10 * SPLIT.time_limit_s  # its dives "expected" to take longer
        run.whole.result()
        run.take_whole()
    out = run.out
    assert out.values is not None
    assert out.plan_from.startswith("group dives from the whole relaxation's point")
    tol = 1e-6 * abs(optimum.objective)
    assert out.bound_from.startswith("LP relaxation (whole")
    assert out.lower_bound <= optimum.objective + tol <= out.objective + 2 * tol


def test_the_whole_bound_offered_is_the_safe_one_of_its_duals() -> None:
    """The bound the portfolio records for the whole relaxation is the safe bound of its row
    duals (relax.dual_bound), never the first-order point's objective (the point holds the
    rows only to the solver's tolerance, so its objective can lie above the optimum)."""
    data = _instance(0)
    with RegionPool(data, 2) as pool:
        run = SplitRun(data, SPLIT, pool)
        sol = run.whole.result()
        run.take_whole()
    assert sol.row_dual is not None
    assert run.out.history[0]["bound"] == run.relax.dual_bound(sol.row_dual)


def test_a_failed_polish_keeps_the_plan_as_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """A polish that raises (e.g. out of memory on a large window: injected here) leaves the
    plan it was given: the run still offers it, verified by its rows, unpolished."""

    def fails(*_: object) -> None:
        raise MemoryError("injected: a window's MIP ran out of memory")

    monkeypatch.setattr(split_portfolio, "polish_plan", fails)
    with _whole_taken() as run:
        assert run.out.values is not None
        assert "polished" not in run.out.plan_from


def test_a_failed_polish_program_build_keeps_the_run_and_its_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The polish's program is built at the first offer, inside the polish's guard: a build
    that raises (e.g. out of memory on a large rung: injected here) neither ends the split
    run nor loses its plans; they are offered unpolished, checked on the relaxation's own
    rows and bounds, and the build is not tried again."""
    tried: list[int] = []

    def fails(*args: object) -> None:
        tried.append(1)
        _fails(*args)

    monkeypatch.setattr(polish.Polisher, "of", classmethod(fails))
    with _whole_taken() as run:
        assert run.out.values is not None and run.polisher_failed
        x = _plan_point(run)
        run.offer(x, "the same plan again")
    assert "polished" not in run.out.plan_from and tried == [1]
    assert polish.violation(run.relax, x) <= 1e-5


@contextmanager
def _whole_taken(seed: int = 0) -> Iterator[SplitRun]:
    """A split run on two workers (the portfolio) whose whole relaxation has ended and been
    taken: its first plan offered."""
    data = _instance(seed)
    with RegionPool(data, 2) as pool:
        run = SplitRun(data, SPLIT, pool)
        assert run.whole is not None
        run.whole.result()
        run.take_whole()
        yield run


def _plan_point(run: SplitRun) -> np.ndarray:
    """The run's plan as a point of its relaxation (model units)."""
    plan = run.out.values
    assert plan is not None
    keys = run.split.family_key
    return np.asarray([plan[f][k] / FAMILIES[f].scale if f else 0.0 for f, k in keys])


def _fails(*_: object) -> None:
    raise MemoryError("injected: the polish's program ran out of memory")


def test_a_split_run_builds_the_polish_program_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The polish's program (polish.Program: the relaxation's arrays, integrality) and its
    windows are built once per split run, not once per offered plan: two plans offered,
    one Program built."""
    built: list[int] = []
    real = polish.Program.of

    def counted(_cls: type, *args: object) -> polish.Program:
        built.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(polish.Program, "of", classmethod(counted))
    with _whole_taken() as run:
        assert run.out.values is not None
        run.offer(_plan_point(run), "the same plan again")
    assert len(built) == 1


@pytest.mark.parametrize("build", ["built", "fails"])
@pytest.mark.parametrize("breaks", ["a row", "a column bound"])
def test_offer_refuses_a_cheaper_point_that_breaks_a_row_or_a_bound(
    breaks: str, build: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SplitRun.offer checks every point it is given (rows and column bounds, Program's
    violation) before it takes it: a point cheaper than the run's plan that breaks the
    packing rows (no VMs at all), or that holds every row but takes a cost-bearing column
    below its lower bound of 0, is refused and the plan stands. So it is when the polish's
    program could not be built (injected): the check runs on the relaxation's arrays."""
    if build == "fails":
        monkeypatch.setattr(polish.Polisher, "of", classmethod(_fails))
    with _whole_taken() as run:
        plan, objective, source = run.out.values, run.out.objective, run.out.plan_from
        assert plan is not None
        keys = run.split.family_key
        x = _plan_point(run)
        prog = polish.Program.of(run.relax, keys)
        bad = _off_its_rows(keys, x) if breaks == "a row" else _below_a_bound(prog, x)
        assert run.relax.objective_of(bad) < objective
        ax = prog.matrix @ bad
        rows = float(np.maximum(prog.row_lo - ax, ax - prog.row_hi).max())
        assert (rows > 1e-5) == (breaks == "a row") and prog.violation(bad) > 1e-5
        run.offer(bad, "a point that breaks " + breaks)
    assert run.out.objective == objective and run.out.plan_from == source


def _off_its_rows(keys: list[tuple[str, tuple[object, ...]]], x: np.ndarray) -> np.ndarray:
    """``x`` with no on-demand VMs: cheaper, its packing rows broken."""
    return np.where([f == "y" for f, _k in keys], 0.0, x)


def _below_a_bound(prog: polish.Program, x: np.ndarray) -> np.ndarray:
    """``x`` with one cost-bearing column at 0 moved below 0 by half the room its rows'
    slack leaves it (at most 0.5): cheaper, every row still held."""
    ax, csc = prog.matrix @ x, prog.matrix.tocsc()
    for j in np.flatnonzero((prog.cost > 0) & (x == 0.0) & (prog.col_lo == 0.0)):
        rows, coef = (
            csc.indices[csc.indptr[j] : csc.indptr[j + 1]],
            csc.data[csc.indptr[j] : csc.indptr[j + 1]],
        )
        slack = np.where(coef > 0, ax[rows] - prog.row_lo[rows], prog.row_hi[rows] - ax[rows])
        room = float((slack / np.abs(coef)).min(initial=np.inf))
        if room > 1e-3:
            out = x.copy()
            out[j] = -min(room, 1.0) / 2
            return out
    raise AssertionError("no cost-bearing column at 0 has room below it")
