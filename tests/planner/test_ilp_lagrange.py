"""Lagrangian decomposition by region (planner.ilp.lagrange): its bound never exceeds the
optimum of small instances solved to optimality, the plan it assembles verifies and costs
no less than the optimum, the planner uses it above its size threshold and says so, and the
Dask engine gives the same plan as the process pool."""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from typing import Any

import pytest

from planner.ilp.build import create_model
from planner.ilp.data import PlanningData
from planner.ilp.decompose import DecompositionResult, DecompositionSettings, decompose
from planner.ilp.dive import DivePlan, dive, integer_entries, reround, trim
from planner.ilp.highs_lp import HighsRelaxation
from planner.ilp.lagrange import solve_region
from planner.ilp.parallel import RegionPool
from planner.ilp.plan import SolverFacts
from planner.ilp.planner import estimated_variables, make_plan
from planner.ilp.readback import from_values
from planner.ilp.solve import SolverSettings, solve
from planner.ilp.verify import verify
from tests.planner.ilp_fixtures import tiny_data
from tests.planner.test_ilp_cuts import _two_type_config

EXACT = SolverSettings(time_limit_s=60, mip_gap=0.0)
# fixed iteration count, generous time: the run does not depend on the machine's speed
FIXED = DecompositionSettings(time_limit_s=120.0, gap=0.0, max_iterations=25)


def _instance(seed: int) -> PlanningData:
    rng = random.Random(seed)
    rows = [
        (t, r, k, rng.uniform(30, 420))
        for t in (1, 2, 3)
        for r in ("a", "b")
        for k in ("IW-F", "IW-N", "NIW")
        if rng.random() < 0.85
    ]
    return tiny_data(_two_type_config(seed), rows, minutes_before=rng.choice([0, 30]))


@pytest.mark.parametrize("seed", range(4))
def test_bound_below_optimum_and_plan_verifies(seed: int) -> None:
    data = _instance(seed)
    optimum = solve(create_model(data), EXACT)
    assert optimum.status == "optimal"
    with RegionPool(data, 1) as pool:
        result = decompose(data, FIXED, pool)
    assert result.iterations > 0
    tol = 1e-6 * max(1.0, abs(optimum.objective))
    assert result.lower_bound <= optimum.objective + tol
    assert all(h["bound"] <= optimum.objective + tol for h in result.history)
    assert result.lower_bound > 0  # a real bound, not −∞
    assert result.values is not None
    assert result.objective >= optimum.objective - 1e-6 * max(1.0, abs(optimum.objective))
    facts = SolverFacts("t", result.objective, result.gap, result.lower_bound, 0, 0, "", "h")
    plan = from_values(data, result.values, facts)
    check = verify(plan, data)
    assert check.ok, check.violations[:5]


def test_planner_decomposes_above_the_threshold_and_says_so() -> None:
    data = _instance(0)
    small = SolverSettings(time_limit_s=20, mip_gap=0.0, decompose_above_vars=None)
    whole, _ = make_plan(data, small)
    assert whole.solver.method == "monolithic SCIP"
    big = replace(small, decompose_above_vars=estimated_variables(data) - 1)
    plan, check = make_plan(data, big)
    assert check.ok, check.violations[:5]
    assert plan.solver.method.startswith("lagrangian decomposition")
    # the bound's source by name (the relaxation's safe bound or a Lagrangian round's)
    sources = ("LP relaxation (safe dual bound)", "Lagrangian (region MIPs)")
    assert plan.solver.bound_source in sources
    assert f"bound from the {plan.solver.bound_source}" in plan.solver.method
    assert plan.solver.dual_bound <= whole.solver.objective + 1e-6
    assert plan.solver.bound_source in plan.solver.gap_text()


def test_dask_gives_the_same_plan_as_the_process_pool() -> None:
    assert_dask_plan_equals_process_pool(replace(FIXED, max_iterations=6))


def assert_dask_plan_equals_process_pool(
    settings: DecompositionSettings,
) -> DecompositionResult:
    """The decomposition of one instance on a local Dask cluster and on the process pool
    gives the same bound, objective and values (the split relaxation's test reuses it);
    returns the process pool's result."""
    from distributed import LocalCluster

    data = _instance(2)
    with RegionPool(data, 2) as pool:
        local = decompose(data, settings, pool)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    with cluster, RegionPool(data, dask_address=cluster.scheduler_address) as pool:
        assert pool.engine.startswith("dask")
        remote = decompose(data, settings, pool)
    assert remote.lower_bound == pytest.approx(local.lower_bound, rel=1e-9)
    assert remote.objective == pytest.approx(local.objective, rel=1e-9)
    assert remote.values is not None and local.values is not None
    for family in ("y", "x", "f"):
        assert remote.values[family] == pytest.approx(local.values[family])
    return local


@pytest.mark.parametrize("seed", [0, 2])
def test_lp_start_bound_is_the_relaxation_checked_from_its_duals(seed: int) -> None:
    """The relaxation in HiGHS: its bound L(y), recomputed from the duals by arithmetic,
    equals the relaxation's optimum as SCIP solves it (the same rows, cuts included), and the
    prices start from its duals."""
    data = _instance(seed)
    lp = create_model(data, relax=True, valid_cuts=True)
    lp.model.optimize()
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    solved = relax.solve(30.0)
    assert solved.optimal and solved.row_dual is not None
    assert solved.bound == pytest.approx(lp.model.getObjVal(), rel=1e-6)
    # any other prices give a bound no higher (weak duality), the zero prices a lower one
    assert relax.dual_bound(0 * solved.row_dual) < solved.bound
    with RegionPool(data, 1) as pool:
        result = decompose(data, replace(FIXED, max_iterations=1), pool)
    assert result.start == "LP duals (HiGHS)"
    assert result.lower_bound >= solved.bound - 1e-9 * abs(solved.bound)
    cost_based = replace(FIXED, max_iterations=1, lp_start_max_vars=0)
    with RegionPool(data, 1) as pool:
        assert decompose(data, cost_based, pool).start == "cost-based prices"


def _optimum_and_dive(data: PlanningData) -> tuple[Any, HighsRelaxation, Any, DivePlan]:
    """The instance solved to optimality, its relaxation (with the valid cuts) solved, and
    the dive's plan from that relaxation."""
    optimum = solve(create_model(data), EXACT)
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    solved = relax.solve(30.0)
    assert solved.x is not None
    plan = dive(data, relax, relax.values(solved.x), time.perf_counter() + 60.0)
    assert plan is not None
    return optimum, relax, solved, plan


@pytest.mark.parametrize("seed", [1, 3])
def test_dive_plan_verifies_between_bound_and_rounding(seed: int) -> None:
    """The dive's plan is a verified plan, no cheaper than the optimum, and its objective is
    what the plan costs (the fixed-count LP's value)."""
    data = _instance(seed)
    optimum, relax, solved, plan = _optimum_and_dive(data)
    assert solved.bound - 1e-6 <= optimum.objective <= plan.objective + 1e-6
    assert plan.objective == pytest.approx(relax.objective_of(relax.point(plan.values)), rel=1e-9)
    facts = SolverFacts("t", plan.objective, 0.0, solved.bound, 0, 0, "", "h")
    check = verify(from_values(data, plan.values, facts), data)
    assert check.ok, check.violations[:5]


def test_trim_closes_idle_vms_and_the_plan_verifies() -> None:
    """A VM more than the dive's plan holds (of one region and type, every hour after the
    first, which the lead time rules out) is idle: the trim holds fewer VM-hours, the plan
    gets cheaper, stays no cheaper than the optimum and verifies."""
    data = _instance(1)
    optimum, relax, solved, plan = _optimum_and_dive(data)
    counts = integer_entries(data, plan.values)
    rg = min(data.quota, key=lambda k: (-data.quota[k], k))
    padded = {k: v + 1 if k[:2] == rg and k[2] > 1 else v for k, v in counts["y"].items()}
    fat = relax.fixed_count_plan({**counts, "y": padded}, 30.0)
    assert fat is not None and fat[1] > plan.objective + 1e-6
    trimmed = trim(data, relax, DivePlan(fat[0], fat[1], 1, "dive"), time.perf_counter() + 60)
    assert optimum.objective - 1e-6 <= trimmed.objective < fat[1] - 1e-6
    assert sum(trimmed.values["y"].values()) < sum(padded.values())
    facts = SolverFacts("t", trimmed.objective, 0.0, solved.bound, 0, 0, "", "h")
    check = verify(from_values(data, trimmed.values, facts), data)
    assert check.ok, check.violations[:5]


def test_reround_closes_a_padded_vm_and_instance_and_the_plan_verifies() -> None:
    """A plan padded with a VM of one region and type in every hour and an instance on it
    in the committed hour: rounded again from inside its box it is cheaper, holds fewer
    VM-hours, no cheaper than the optimum, and verifies."""
    data = _instance(0)  # VMs can be added in the first (committed) hour
    optimum, relax, solved, plan = _optimum_and_dive(data)
    counts = integer_entries(data, plan.values)
    spot = counts["z"]
    rg = next(  # a region and type with quota for a VM more in every hour
        rg
        for rg in sorted(data.quota)
        if all(
            v + spot.get(k, 0) + 1 <= data.quota[rg] for k, v in counts["y"].items() if k[:2] == rg
        )
    )
    padded = {k: v + 1 if k[:2] == rg else v for k, v in counts["y"].items()}
    pad = min(k for k in counts["x"] if (k[0], k[2]) == rg)
    extra = {**counts["x"], pad: counts["x"][pad] + 1}
    fat = relax.fixed_count_plan({**counts, "y": padded, "x": extra}, 30.0)
    assert fat is not None and fat[1] > plan.objective + 1e-6
    again = reround(data, relax, DivePlan(fat[0], fat[1], 1, "dive"), time.perf_counter() + 60)
    assert optimum.objective - 1e-6 <= again.objective < fat[1] - 1e-6
    assert sum(again.values["y"].values()) < sum(padded.values())
    facts = SolverFacts("t", again.objective, 0.0, solved.bound, 0, 0, "", "h")
    check = verify(from_values(data, again.values, facts), data)
    assert check.ok, check.violations[:5]


def test_spent_budget_stops_every_step() -> None:
    """The budget cuts every step off: a region reached after the deadline is not solved, and
    with the budget spent the decomposition returns without bound or plan (the planner then
    publishes the flagged greedy plan, verified)."""
    data = _instance(0)
    region = data.regions[0]
    late = solve_region(data, region, {}, {}, 30.0, 0.0, None, deadline=time.time() - 1)
    assert late.status == "skipped" and late.dual_bound == -math.inf and not late.integers
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    assert relax.solve(0.0).bound == -math.inf
    with RegionPool(data, 1) as pool:
        result = decompose(data, replace(FIXED, time_limit_s=1e-4), pool)
    assert result.values is None and result.lower_bound == -math.inf
    assert result.region_seconds == 0.0
    tight = SolverSettings(time_limit_s=1e-4, mip_gap=0.0, decompose_above_vars=1)
    plan, check = make_plan(data, tight)
    assert plan.solver.fallback and check.ok


def test_process_pool_workers_start_before_the_first_task() -> None:
    """The workers are spawned and given the planning data when the pool is made (while
    the caller builds its model), not when the first task arrives."""
    data = _instance(0)
    with RegionPool(data, 2) as pool:
        assert pool._pool is not None
        assert [f.result(timeout=60) for f in pool._warm] == [True, True]
        assert len(pool._pool._processes) == 2
