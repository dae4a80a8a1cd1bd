"""A primal start for SCIP: solve the LP relaxation, round the instance and VM counts up,
then re-optimise every continuous decision (routing, NIW schedule, unmet) with those counts
fixed. Capacity rounded up is not wasted: the NIW backlog fills the slack.

Why: SCIP's own heuristics found poor first solutions on this model (a plan leaving demand
unmet although capacity was free), and its branch and bound then spent the time limit on a
handful of nodes. Starting from LP rounding puts the incumbent within a few percent of the
bound at once; SCIP then improves on it or proves it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from typing import Any

from planner.ilp.build import create_model
from planner.ilp.data import PlanningData
from planner.ilp.variables import INTEGER_FAMILIES, Values, read_back

log = logging.getLogger(__name__)


def _lp_values(
    data: PlanningData,
    fixed: Values | None = None,
    time_limit_s: float = 30.0,
    valid_cuts: bool = True,
) -> Values | None:
    solved = _solve_lp(data, fixed, time_limit_s, valid_cuts)
    return None if solved is None else solved[0]


def fixed_lp(data: PlanningData, fixed: Values, time_limit_s: float) -> tuple[Values, float] | None:
    """The whole program with the ``fixed`` counts (y, z, x, xs) as bounds, every continuous
    decision re-optimised: the values (the fixed counts as given) and the objective, or None
    if the LP did not finish. Used to assemble a plan from region subproblems."""
    solved = _solve_lp(data, fixed, time_limit_s, valid_cuts=False)
    if solved is None:
        return None
    values, objective = solved
    for family in INTEGER_FAMILIES:
        values[family] = {k: float(v) for k, v in fixed.get(family, {}).items()}
    return values, objective


def _solve_lp(
    data: PlanningData, fixed: Values | None, time_limit_s: float, valid_cuts: bool
) -> tuple[Values, float] | None:
    built = create_model(data, relax=True, valid_cuts=valid_cuts)
    model = built.model
    for family, values in (fixed or {}).items():
        variables = built.vars[family]
        for key, value in values.items():
            var = variables.get(key)
            if var is not None:
                model.chgVarLb(var, value)
                model.chgVarUb(var, value)
    model.setParam("limits/time", max(time_limit_s, 0.1))
    model.optimize()
    if model.getStatus() != "optimal" or model.getNSols() == 0:
        return None
    return read_back(model, built.vars), model.getObjVal()


def round_up(data: PlanningData, lp: Values) -> Values:
    """Integer instance and VM counts from LP values: instances up, then VMs to hold them,
    trimming the least-needed instances where a quota would be exceeded."""

    def up(key: tuple[Any, ...], v: float) -> float:
        return math.ceil(v - 1e-6) if data.committed(key[3]) else v

    x = {k: up(k, v) for k, v in lp.get("x", {}).items()}
    xs = {k: up(k, v) for k, v in lp.get("xs", {}).items()}
    y: dict[tuple[Any, ...], int] = {}
    z: dict[tuple[Any, ...], int] = {}
    for inst, vms, cap in ((x, y, data.quota), (xs, z, data.spot_cap)):
        used: dict[tuple[Any, ...], float] = defaultdict(float)
        for (r, m, g, t), n in inst.items():
            used[(r, g, t)] += n / data.instances_per_vm[(m, g)]
        for (r, g, t), u in used.items():
            limit = cap.get((r, g), 0)
            if inst is xs:
                limit = min(limit, data.quota[(r, g)] - y.get((r, g, t), 0))
            keys = sorted(
                (k for k in inst if (k[0], k[2], k[3]) == (r, g, t) and inst[k] > 0),
                key=lambda k: inst[k] - lp["x" if inst is x else "xs"][k],
                reverse=True,
            )
            while u > limit + 1e-9 and keys:
                k = keys[0]
                if not data.committed(k[3]):  # capacity: trim exactly what does not fit
                    cut = min(inst[k], (u - limit) * data.instances_per_vm[(k[1], g)])
                    inst[k] -= cut
                    u -= cut / data.instances_per_vm[(k[1], g)]
                    keys.pop(0)
                    continue
                inst[k] -= 1
                u -= 1 / data.instances_per_vm[(k[1], g)]
                if inst[k] == 0 or inst[k] < lp["x" if inst is x else "xs"][k] - 1:
                    keys.pop(0)
            vms[(r, g, t)] = math.ceil(u - 1e-6)
    for family, vals in (("y", y), ("z", z)):
        for key in lp.get(family, {}):
            vals.setdefault(key, 0)
    # lead time: a VM count may not grow where no VM can be added in time
    for family, now in (("y", data.state.vms), ("z", data.state.spot_vms)):
        vals = y if family == "y" else z
        for r, g, t in sorted(vals, key=lambda k: k[2]):
            if not data.can_add_vm(g, t):
                prev = vals.get((r, g, t - 1), now.get((r, g), 0)) if t > 1 else now.get((r, g), 0)
                vals[(r, g, t)] = min(vals[(r, g, t)], prev)
    _fit_instances(data, x, y)
    _fit_instances(data, xs, z)
    return {"x": dict(x), "xs": dict(xs), "y": dict(y), "z": dict(z)}


def _fit_instances(data: PlanningData, inst: dict[Any, float], vms: dict[Any, int]) -> None:
    """After the lead-time caps, drop instances that no longer fit their VMs."""
    used: dict[tuple[Any, ...], float] = defaultdict(float)
    for (r, m, g, t), n in inst.items():
        used[(r, g, t)] += n / data.instances_per_vm[(m, g)]
    for (r, g, t), u in used.items():
        keys = sorted((k for k in inst if (k[0], k[2], k[3]) == (r, g, t)), key=lambda k: -inst[k])
        while u > vms.get((r, g, t), 0) + 1e-9 and keys:
            k = keys[0]
            if inst[k] <= 0:
                keys.pop(0)
                continue
            step = (
                1.0
                if data.committed(k[3])
                else min(inst[k], (u - vms.get((r, g, t), 0)) * data.instances_per_vm[(k[1], g)])
            )
            inst[k] -= step
            u -= step / data.instances_per_vm[(k[1], g)]


def lp_rounding_start(
    data: PlanningData, time_limit_s: float = 30.0, valid_cuts: bool = True
) -> Values | None:
    """A complete feasible assignment from LP rounding, or None if an LP failed or the two
    LPs did not finish within ``time_limit_s`` together (large fleets: the relaxation alone
    can take minutes, and the greedy start is then all SCIP gets)."""
    started = time.perf_counter()
    lp = _lp_values(data, time_limit_s=time_limit_s, valid_cuts=valid_cuts)
    if lp is None:
        log.info("LP rounding: relaxation not solved within %.1f s; skipped", time_limit_s)
        return None
    fixed = round_up(data, lp)
    left = time_limit_s - (time.perf_counter() - started)
    completed = _lp_values(data, fixed, left, valid_cuts)
    if completed is None:
        log.warning("LP rounding: the fixed-integer LP has no solution")
        return None
    for family in INTEGER_FAMILIES:
        completed[family] = {k: float(v) for k, v in fixed[family].items()}
    return completed
