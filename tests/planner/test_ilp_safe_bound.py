"""The safe dual bound (planner.ilp.safe_bound): from the exact duals of a relaxation solved to
optimality it is the relaxation's optimum; from any perturbation of them (an approximate dual)
it stays at most the integer optimum and, for small perturbations, close to it; a wrong-signed
multiplier is projected, not trusted; the box implied by the rows keeps the LP's optimum."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from planner.ilp.build import create_model
from planner.ilp.highs_lp import HighsRelaxation
from planner.ilp.safe_bound import implied_bounds, safe_lower_bound
from planner.ilp.solve import SolverSettings, solve
from planner.ilp.split_lp import Split
from planner.ilp.split_tasks import _highs, _run, solve_priced
from tests.planner.test_ilp_lagrange import _instance

EXACT = SolverSettings(time_limit_s=60, mip_gap=0.0)


@pytest.mark.parametrize("seed", range(3))
def test_exact_duals_give_the_lp_value_and_perturbed_ones_stay_below_the_optimum(
    seed: int,
) -> None:
    data = _instance(seed)
    optimum = solve(create_model(data), EXACT)
    assert optimum.status == "optimal"
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    solved = relax.solve(30.0)
    assert solved.optimal and solved.row_dual is not None
    tol = 1e-6 * max(1.0, abs(solved.objective))
    assert abs(relax.dual_bound(solved.row_dual) - solved.objective) <= tol
    y = solved.row_dual
    rng = np.random.default_rng(seed)
    scale = np.abs(y).max()
    close = []
    for size in (1e-9, 1e-7, 1e-5, 1e-3, 1e-1, 1.0):
        for _ in range(5):
            noisy = y + size * scale * rng.standard_normal(len(y))
            bound = relax.dual_bound(noisy)
            assert bound <= solved.objective + tol <= optimum.objective + 2 * tol
            close.append((size, bound))
    # an approximate dual near the optimum keeps a finite bound near it (the implied box:
    # with the declared bounds, almost every column is unbounded above and the bound −inf)
    for size, bound in close:
        if size <= 1e-7:
            assert bound >= solved.objective - 1e-3 * abs(solved.objective)


def loose_interior(relax: HighsRelaxation, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """The whole relaxation by interior point without crossover, stopped at ``tolerance``:
    its row duals and its point (a loose solve, as the portfolio's whole LP used to be)."""
    h = _highs(Split.whole_block(relax), relax.cost)
    h.setOptionValue("run_crossover", "off")
    h.setOptionValue("ipm_optimality_tolerance", tolerance)
    _status, _x, sol = _run(h, "ipm", 30.0)
    assert sol.dual_valid
    return np.asarray(sol.row_dual), np.asarray(sol.col_value)


def test_an_interior_point_without_crossover_at_a_loose_tolerance_gives_a_valid_bound() -> None:
    data = _instance(1)
    optimum = solve(create_model(data), EXACT)
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    exact = relax.solve(30.0)
    bound = relax.dual_bound(loose_interior(relax, 1e-3)[0])
    assert exact.objective - 1e-2 * abs(exact.objective) <= bound
    assert bound <= exact.objective + 1e-6 * abs(exact.objective) <= optimum.objective + 1e-3


def test_a_wrong_signed_multiplier_is_projected_not_trusted() -> None:
    """min x over x ≥ −5, 0 ≤ x ≤ 10: the optimum is 0. y = −1 on the ≥ row (a wrong sign)
    taken at face value gives −1·(−5) + min(2·0, 2·10) = 5 > 0; projected to 0 it gives 0."""
    a = sparse.csc_matrix(np.array([[1.0]]))
    rows = (np.array([-5.0]), np.array([np.inf]))
    cols = (np.array([0.0]), np.array([10.0]))
    cost = np.array([1.0])
    wrong = safe_lower_bound(cost, a, rows, cols, np.array([-1.0]))
    assert wrong <= 0.0
    assert wrong == safe_lower_bound(cost, a, rows, cols, np.array([0.0]))
    # an equality row takes either sign: there y = −1 is trusted (x = −5 is infeasible)
    eq = (np.array([-5.0]), np.array([-5.0]))
    assert safe_lower_bound(cost, a, eq, cols, np.array([-1.0])) > 0.0


def test_a_column_unbounded_on_its_reduced_costs_side_gives_no_bound() -> None:
    """min x₁ + x₂ over x₁ + x₂ ≥ 1, x ≥ 0 (optimum 1): y = 2 leaves r = −1 on both columns,
    unbounded above, so no bound; the rows imply none either (x only helps the row, but
    raising it beyond 1 is never needed: the implied box gives x ≤ 1 and a bound ≤ 1)."""
    a = sparse.csc_matrix(np.array([[1.0, 1.0]]))
    rows = (np.array([1.0]), np.array([np.inf]))
    cols = (np.zeros(2), np.full(2, np.inf))
    cost = np.ones(2)
    assert safe_lower_bound(cost, a, rows, cols, np.array([2.0])) == -math.inf
    box = implied_bounds(cost, a, rows, cols)
    assert np.all(box[1] <= 1.0 + 1e-6)
    assert -math.inf < safe_lower_bound(cost, a, rows, box, np.array([2.0])) <= 1.0


def test_a_helping_column_free_below_in_free_rows_gets_no_cap_not_nan() -> None:
    """A column with cost 0, lower bound −∞, only in a free row: nothing caps it (its need is
    −∞ and so is its lower bound); the box keeps it unbounded above, never NaN or −∞ (review:
    −∞ + ∞ gave NaN)."""
    a = sparse.csc_matrix(np.array([[1.0, 1.0]]))
    rows = (np.array([-np.inf]), np.array([np.inf]))
    cols = (np.array([-np.inf, 0.0]), np.array([np.inf, 5.0]))
    lo, hi = implied_bounds(np.array([0.0, 1.0]), a, rows, cols)
    assert not np.isnan(hi).any() and not np.isnan(lo).any()
    assert hi[0] == np.inf and lo[0] == -np.inf


@pytest.mark.parametrize("seed", [0, 2])
def test_the_implied_box_keeps_the_relaxations_optimum(seed: int) -> None:
    relax = HighsRelaxation(create_model(_instance(seed), relax=True, valid_cuts=True))
    whole = Split.whole_block(relax)
    lo, hi = relax.box
    assert np.all(np.isfinite(hi)) and np.all(lo >= relax.col_lo) and np.all(hi <= relax.col_hi)
    _st, x, _ = _run(_highs(whole, relax.cost), "ipm", 30.0)
    boxed = type(whole)(**{**whole.__dict__, "col_lo": lo, "col_hi": hi})
    _st, x_box, _ = _run(_highs(boxed, relax.cost), "ipm", 30.0)
    assert x is not None and x_box is not None
    assert abs(relax.cost @ x_box - relax.cost @ x) <= 1e-6 * abs(relax.cost @ x)


@pytest.mark.parametrize("seed", range(3))
def test_blocks_re_solved_at_loose_duals_raise_the_bound_and_stay_below_the_optimum(
    seed: int,
) -> None:
    """The whole relaxation by interior point stopped at a loose tolerance (the portfolio's),
    then every block solved at the prices its duals set on the coupling rows, over the implied
    box (Split.refined): the bound from the assembled duals is at least the loose duals' own,
    at most the relaxation's optimum, and closes most of the loose duals' distance to it
    (the blocks hold every row but the coupling ones)."""
    data = _instance(seed)
    optimum = solve(create_model(data), EXACT)
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    exact = relax.solve(30.0)
    assert exact.optimal
    y, x = loose_interior(relax, 3e-2)
    loose = relax.dual_bound(y)
    split = Split.of(relax)
    y_c = split.project(y[split.coupling])
    costs = split.priced_costs(y_c)
    sols = [
        solve_priced(data, b, c, 30.0, None, False)
        for b, c in zip(split.boxed_blocks(), costs, strict=True)
    ]
    refined = relax.dual_bound(split.refined(y, sols))
    tol = 1e-6 * abs(exact.objective)
    assert loose - tol <= refined <= exact.objective + tol <= optimum.objective + 2 * tol
    assert exact.objective - refined <= 0.5 * (exact.objective - loose) + tol
    # the losses say where the room is: the blocks' parts sum to the point's objective less
    # the bound before its rounding allowance
    losses = split.block_losses(y, x)
    assert np.all(np.isfinite(losses))
