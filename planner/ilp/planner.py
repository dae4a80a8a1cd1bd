"""One planning run: build the program, solve it (warm-started from the previous plan), read
the Plan back, fall back to the greedy plan when SCIP has no incumbent, verify."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from planner.config import FleetConfig
from planner.ilp.build import create_model
from planner.ilp.data import PlanningData
from planner.ilp.greedy import greedy_values
from planner.ilp.packing import packed_starts
from planner.ilp.plan import Plan, SolverFacts
from planner.ilp.readback import from_values
from planner.ilp.rounding import lp_rounding_start, timed_out_lps
from planner.ilp.solve import SolverSettings, scip_version, solve
from planner.ilp.variables import INTEGER_FAMILIES, Values
from planner.ilp.verify import Verification, verify

if TYPE_CHECKING:
    from planner.ilp.decompose import DecompositionResult

log = logging.getLogger(__name__)
# shares of the time limit the LP-rounding start and the repacked starts may take; the rest
# is SCIP's
ROUNDING_SHARE = 0.4
PACKING_SHARE = 0.2
# SCIP statuses whose incumbent is a plan: proven optimal, within the gap, or the best found in
# the time (or, with a work limit, node) limit. Anything else (unbounded, infeasible,
# inforunbd, userinterrupt, ...) is never published as a normal plan: the flagged greedy
# fallback is.
PLAN_STATUSES = frozenset({"optimal", "gaplimit", "timelimit", "nodelimit"})


def solver_settings(cfg: FleetConfig) -> SolverSettings:
    """The solver's settings; with ``planner.work_limit`` its node limit, and its cap as the
    time limit (a safety cap: binding it is reported, :func:`make_plan`)."""
    p, work = cfg.planner, cfg.planner.work_limit
    return SolverSettings(
        p.time_limit_s if work is None else work.cap_s,
        p.mip_gap,
        p.threads,
        p.seed,
        p.decompose_above_vars,
        p.workers,
        p.dask_address,
        node_limit=None if work is None else work.nodes,
        root_cut_rounds=-1 if work is None else work.root_cut_rounds,
    )


def estimated_variables(data: PlanningData) -> int:
    """The program's size before building it: per placement and hour x, u and the tiers'
    assignments, plus the routes (within a few % of the built count on the bench rungs)."""
    from planner.ilp.lagrange import data_size

    return data_size(data)


def choose_method(data: PlanningData, settings: SolverSettings) -> str:
    """ "monolithic SCIP" up to ``decompose_above_vars`` estimated variables (default 20k:
    SCIP's root LP does not finish on the 8×10×3 rung's ~39k), "lagrangian decomposition"
    (planner.ilp.decompose: the relaxation in HiGHS, a dive, region rounds) beyond (README:
    measured figures)."""
    limit = settings.decompose_above_vars
    if limit is None or len(data.regions) < 2 or estimated_variables(data) <= limit:
        return "monolithic SCIP"
    return "lagrangian decomposition"


def warm_start_from(previous: Plan, data: PlanningData) -> dict[str, dict[tuple[Any, ...], float]]:
    """The previous plan's VMs and instances for the hours both plans cover."""
    out: dict[str, dict[tuple[Any, ...], float]] = {f: {} for f in INTEGER_FAMILIES}
    for t, hour in enumerate(data.hours, start=1):
        view = previous.at(hour)
        for (r, g), (od, sp) in view.vms.items():
            out["y"][(r, g, t)], out["z"][(r, g, t)] = od, sp
        for (r, m, g), (n, ns) in view.instances.items():
            out["x"][(r, m, g, t)], out["xs"][(r, m, g, t)] = n, ns
    return out


def make_plan(
    data: PlanningData,
    settings: SolverSettings,
    previous: Plan | None = None,
    primal_starts: bool = True,
    valid_cuts: bool = True,
) -> tuple[Plan, Verification]:
    """The plan for ``data``. ``primal_starts`` hands SCIP the LP-rounding and greedy plans as
    first incumbents (see planner.ilp.rounding), and those and the previous plan with small
    models moved into idle VM slots (planner.ilp.packing); without them SCIP may end its time limit
    without a solution, and the greedy plan is then the (flagged) fallback. ``valid_cuts``
    False leaves out planner.ilp.cuts (to measure what they add). With a work limit
    (``settings.deterministic``) nothing depends on elapsed time unless the safety cap binds,
    which the plan's notes and the log report (:func:`_cap_note`)."""
    if choose_method(data, settings) == "lagrangian decomposition":
        return decomposed_plan(data, settings)
    started = time.perf_counter()
    built = create_model(data, valid_cuts=valid_cuts)
    warm = warm_start_from(previous, data) if previous is not None else None
    greedy = greedy_values(data)
    with timed_out_lps() as timed_out:
        starts = _primal_starts(data, settings, greedy, warm, valid_cuts) if primal_starts else []
    # the time limit is the planning budget: SCIP gets what building and the starts left
    # (under a work limit the cap as it is: SCIP's parameters never depend on the clock)
    spent = time.perf_counter() - started
    left = settings.time_limit_s if settings.deterministic else settings.time_limit_s - spent
    budget = replace(settings, time_limit_s=max(left, 0.0))
    result = solve(built, budget, warm, starts)
    facts = result.facts
    notes = _cap_note(settings, facts.status, len(timed_out))
    if result.has_solution and result.status in PLAN_STATUSES:
        plan = from_values(data, result.values, facts, notes)
    else:
        what = "a solution" if result.has_solution else "no solution"
        reason = f"SCIP returned {what} with status {result.status}; greedy plan"
        log.warning(reason)
        facts = replace(facts, fallback=True, fallback_reason=reason, objective=math.nan)
        plan = from_values(data, greedy, facts, notes)
    return plan, _verified(plan, data)


def _primal_starts(
    data: PlanningData,
    settings: SolverSettings,
    greedy: Values,
    warm: Values | None,
    valid_cuts: bool,
) -> list[tuple[str, Values]]:
    """The LP-rounding and greedy starts, and those and the previous plan repacked. Wall
    clock: each within its share of the time limit; with a work limit every LP runs to its
    end (the safety cap its own limit) and nothing reads the clock."""
    det = settings.deterministic
    cap = settings.time_limit_s
    starts: list[tuple[str, Values]] = []
    rounded = lp_rounding_start(data, cap if det else ROUNDING_SHARE * cap, valid_cuts, det)
    if rounded is not None:
        starts.append(("LP rounding", rounded))
    starts.append(("greedy plan", greedy))
    known = [*starts, *([("previous plan", warm)] if warm else [])]
    return starts + packed_starts(data, known, cap if det else PACKING_SHARE * cap, det)


def _cap_note(settings: SolverSettings, status: str, timed_out: int) -> tuple[str, ...]:
    """Under a work limit, a note (and an error logged) when the wall-clock safety cap bound,
    read from the solves' statuses (never from elapsed time): SCIP stopped on time, or
    ``timed_out`` of the starts' LPs did. The cap is per solve (the relaxation, each rounding
    and repacking LP and SCIP each get all of it), so a plan may take several caps."""
    if status != "timelimit" and timed_out == 0:
        return ()
    return _lost_note(
        settings,
        f"bound (SCIP status {status}, {timed_out} start LPs stopped on time); "
        "raise planner.work_limit.cap_s",
    )


def _lost_note(settings: SolverSettings, why: str) -> tuple[str, ...]:
    """Under a work limit, the "determinism lost" note (logged as an error) saying ``why``."""
    if not settings.deterministic:
        return ()
    note = f"determinism lost: the wall-clock safety cap of {settings.time_limit_s:g} s {why}"
    log.error(note)
    return (note,)


def decomposed_plan(data: PlanningData, settings: SolverSettings) -> tuple[Plan, Verification]:
    """The plan by Lagrangian decomposition by region (planner.ilp.lagrange), region MIPs in
    a process pool or on Dask; the greedy plan (flagged) if no plan could be assembled."""
    from planner.ilp.decompose import DecompositionSettings, decompose
    from planner.ilp.parallel import RegionPool

    # the decomposition has no work limit: its budget is the safety cap, read as wall clock
    notes = _lost_note(
        settings,
        "is the decomposition's whole budget (it has no work limit; a fleet this size "
        "plans by wall clock)",
    )
    started = time.perf_counter()
    with RegionPool(data, settings.workers, settings.dask_address) as pool:
        engine = pool.engine
        result = decompose(
            data,
            DecompositionSettings(
                settings.time_limit_s,
                max(settings.mip_gap, 1e-4),
                split_above_vars=settings.split_above_vars,
            ),
            pool,
        )
    facts = _decomposition_facts(data, settings, result, engine, started)
    if result.values is not None:
        plan = from_values(data, result.values, facts, notes)
    else:
        reason = "the decomposition assembled no plan in time; greedy plan"
        log.warning(reason)
        facts = replace(facts, fallback=True, fallback_reason=reason, objective=math.nan)
        plan = from_values(data, greedy_values(data), facts, notes)
    return plan, _verified(plan, data)


def _decomposition_facts(
    data: PlanningData,
    settings: SolverSettings,
    result: DecompositionResult,
    engine: str,
    started: float,
) -> SolverFacts:
    """What the decomposition reports as its solve: status from its gap, the bound and where
    it came from, its seconds since ``started`` (a ``time.perf_counter`` reading), and how
    the plan was reached (rounds, first prices, region work, ``engine``) as the method."""
    from pyscipopt import Model

    return SolverFacts(
        status="gaplimit" if result.gap <= settings.mip_gap else "timelimit",
        objective=result.objective,
        gap=result.gap,
        dual_bound=result.lower_bound,
        solve_seconds=time.perf_counter() - started,
        build_seconds=0.0,
        scip_version=scip_version(Model()),
        config_hash=data.config_hash,
        variables=estimated_variables(data),
        bound_source=result.bound_from,
        nodes=result.iterations,
        method=(
            f"lagrangian decomposition by region: bound from the {result.bound_from}, plan "
            f"from {result.plan_from}, {result.iterations} region rounds, prices from "
            f"{result.start}, {result.subproblems} {result.region_seconds:.0f} s of work, {engine}"
        ),
    )


def _verified(plan: Plan, data: PlanningData) -> Verification:
    """The plan checked against every constraint; violations are logged, never hidden."""
    check = verify(plan, data)
    if not check.ok:
        log.error(
            "plan %s violates %d constraints: %s",
            plan.plan_id,
            len(check.violations),
            check.violations[:5],
        )
    return check
