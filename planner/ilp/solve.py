"""Solving: SCIP parameters from the configuration, an optional warm start from the previous
plan, and the solution read back into plain values (the model is not needed afterwards)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from planner.ilp.build import BuiltModel
from planner.ilp.plan import SolverFacts
from planner.ilp.variables import FAMILIES, INTEGER_FAMILIES, read_back

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SolverSettings:
    time_limit_s: float = 10.0
    mip_gap: float = 0.005
    threads: int = 1
    seed: int = 0
    # above this estimated size, Lagrangian decomposition by region (None: always whole)
    decompose_above_vars: int | None = None
    workers: int = 1
    dask_address: str | None = None
    # decomposed, above this estimated size the relaxation is split by region groups
    # (planner.ilp.split_lp); below it the whole relaxation, its dive and region MIPs
    split_above_vars: int = 150_000
    # a deterministic work limit (planner.config.work_limit): SCIP stops on this many nodes or
    # the gap, and time_limit_s is only the wall-clock safety cap; None: wall-clock bounded
    node_limit: int | None = None
    root_cut_rounds: int = -1  # SCIP separating/maxroundsroot (-1: SCIP's default)

    @property
    def deterministic(self) -> bool:
        return self.node_limit is not None


@dataclass
class SolveResult:
    facts: SolverFacts  # status (SCIP's words), objective, gap, bound, times, sizes, starts
    has_solution: bool
    values: dict[str, dict[tuple[Any, ...], float]] = field(default_factory=dict)

    @property
    def objective(self) -> float:
        return self.facts.objective

    @property
    def status(self) -> str:
        return self.facts.status


def scip_version(model: Any) -> str:
    return f"{model.getMajorVersion()}.{model.getMinorVersion()}.{model.getTechVersion()}"


def solve(
    built: BuiltModel,
    settings: SolverSettings,
    warm_start: Mapping[str, Mapping[tuple[Any, ...], float]] | None = None,
    complete_starts: Sequence[tuple[str, Mapping[str, Mapping[tuple[Any, ...], float]]]] = (),
) -> SolveResult:
    """Optimise within the time limit; always returns, with the best incumbent if any.

    ``warm_start``: integer values (e.g. the previous plan's) SCIP completes itself;
    ``complete_starts``: named full assignments (LP rounding, the greedy plan), each checked
    and kept as an incumbent if feasible."""
    model = built.model
    _set_params(model, settings)
    notes = [_add_complete_start(built, label, start) for label, start in complete_starts]
    if warm_start:
        notes.append(_add_warm_start(built, warm_start))
    used = "; ".join(notes) or "none"
    model.optimize()
    has = model.getNSols() > 0
    facts = _facts(built, used, has)
    log.info(
        "SCIP %s: status %s, objective %.2f, gap %.3f%%, %.2f s (warm start: %s)",
        facts.scip_version,
        facts.status,
        facts.objective,
        100 * facts.gap if math.isfinite(facts.gap) else float("nan"),
        facts.solve_seconds,
        used,
    )
    return SolveResult(facts, has, read_back(model, built.vars) if has else {})


def _set_params(model: Any, settings: SolverSettings) -> None:
    """SCIP's time limit, gap, seed and threads (and node limit) from ``settings``."""
    model.setParam("limits/time", settings.time_limit_s)
    if settings.node_limit is not None:
        model.setParam("limits/nodes", settings.node_limit)
        model.setParam("separating/maxroundsroot", settings.root_cut_rounds)
    model.setParam("limits/gap", settings.mip_gap)
    model.setParam("randomization/randomseedshift", settings.seed)
    model.setParam("parallel/maxnthreads", settings.threads)


def _facts(built: BuiltModel, warm_start: str, has_solution: bool) -> SolverFacts:
    """What the solved model reports: status, objective (∞ without a solution), gap, dual
    bound (NaN when SCIP has none), times and sizes."""
    model = built.model
    objective = model.getObjVal() if has_solution else math.inf
    dual = model.getDualbound()
    if not math.isfinite(dual) or abs(dual) >= model.infinity():
        dual = math.nan  # SCIP's ±1e20: no dual bound (root LP unfinished)
    gap = model.getGap() if has_solution and math.isfinite(dual) else math.inf
    nodes = model.getNNodes()
    return SolverFacts(
        status=model.getStatus(),
        objective=objective,
        gap=gap,
        dual_bound=dual,
        solve_seconds=model.getSolvingTime(),
        build_seconds=built.build_seconds,
        scip_version=scip_version(model),
        config_hash=built.data.config_hash,
        warm_start=warm_start,
        variables=model.getNVars(),
        constraints=model.getNConss(),
        bound_source=bound_source(dual, nodes),
        nodes=nodes,
    )


def bound_source(dual_bound: float, nodes: int) -> str:
    """Where SCIP's dual bound comes from: the root node's relaxation (its LP with SCIP's
    cuts and our valid inequalities) or the search tree below it; "none" without a bound."""
    if not math.isfinite(dual_bound):
        return "none"
    return "root relaxation" if nodes <= 1 else "search tree"


def _add_complete_start(
    built: BuiltModel, label: str, start: Mapping[str, Mapping[tuple[Any, ...], float]]
) -> str:
    model = built.model
    sol = model.createSol()
    for family, fam in FAMILIES.items():
        values = start.get(family, {})
        for key, var in built.vars[family].items():
            model.setSolVal(sol, var, float(values.get(key, 0.0)) / fam.scale)
    accepted = model.addSol(sol)
    return f"{label} ({'accepted' if accepted else 'rejected: infeasible'})"


def _add_warm_start(built: BuiltModel, start: Mapping[str, Mapping[tuple[Any, ...], float]]) -> str:
    """A partial solution (the integer families) for SCIP to complete and try first."""
    model = built.model
    sol = model.createPartialSol()
    n = 0
    for family in INTEGER_FAMILIES:
        variables = built.vars[family]
        for key, value in start.get(family, {}).items():
            var = variables.get(key)
            if var is not None:
                model.setSolVal(sol, var, float(round(value)))
                n += 1
    if n == 0:
        return "none"
    accepted = model.addSol(sol)
    return f"previous plan, {n} values ({'accepted' if accepted else 'rejected'})"
