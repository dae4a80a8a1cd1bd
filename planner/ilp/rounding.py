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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from planner.ilp.build import create_model
from planner.ilp.data import PlanningData
from planner.ilp.variables import INTEGER_FAMILIES, Values, read_back

log = logging.getLogger(__name__)
# the LPs of this context (one plan's starts) that stopped on their time limit (None: not counted)
_TIMED_OUT: ContextVar[list[str] | None] = ContextVar("lp_timed_out", default=None)


@contextmanager
def timed_out_lps() -> Iterator[list[str]]:
    """Within the block, every LP here that stops on its time limit is appended (its SCIP
    status) to the list yielded: a safety cap that bound, by status, never by elapsed time."""
    hits: list[str] = []
    token = _TIMED_OUT.set(hits)
    try:
        yield hits
    finally:
        _TIMED_OUT.reset(token)


def _lp_values(
    data: PlanningData,
    time_limit_s: float = 30.0,
    valid_cuts: bool = True,
) -> Values | None:
    solved = _solve_lp(data, None, time_limit_s, valid_cuts)
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
    status = model.getStatus()
    hits = _TIMED_OUT.get()
    if status == "timelimit" and hits is not None:
        hits.append(status)
    if status != "optimal" or model.getNSols() == 0:
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
    _fit_instances(data, x, y, lp.get("x", {}))
    _fit_instances(data, xs, z, lp.get("xs", {}))
    return {"x": dict(x), "xs": dict(xs), "y": dict(y), "z": dict(z)}


def _fit_instances(
    data: PlanningData, inst: dict[Any, float], vms: dict[Any, int], lp: dict[Any, float]
) -> None:
    """After the lead-time caps, drop instances that no longer fit their VMs: each time from
    the pool rounded up furthest above its LP value ``lp`` (the largest pool on a tie), so a
    pool the LP nearly filled keeps its instance and the one the rounding added most to goes
    (dropping from the largest pool, as before, booked a whole instance's demand as unmet
    in dives from the whole relaxation's point while a pool the LP barely used kept one)."""
    used: dict[tuple[Any, ...], float] = defaultdict(float)
    for (r, m, g, t), n in inst.items():
        used[(r, g, t)] += n / data.instances_per_vm[(m, g)]
    for (r, g, t), u in used.items():
        keys = [k for k in inst if (k[0], k[2], k[3]) == (r, g, t)]
        cap = vms.get((r, g, t), 0)
        while u > cap + 1e-9:
            live = [k for k in keys if inst[k] > 0]
            if not live:
                break
            k = max(live, key=lambda k: (inst[k] - lp.get(k, 0.0), inst[k]))
            ipv = data.instances_per_vm[(k[1], g)]
            step = 1.0 if data.committed(k[3]) else min(inst[k], (u - cap) * ipv)
            inst[k] -= step
            u -= step / ipv


def single_type_pools(data: PlanningData, lp: Values) -> Values:
    """The LP values with each split pool consolidated on one VM type.

    Rounding up per (r, m, g, t) turns every fractional instance into a whole one on every
    VM type the relaxation touched. The LP splits a pool across types by their cost per
    token of each tier: for Bloom-176B it serves IW-F on H100 (A100 does not meet IW-F's
    latency target) and IW-N and NIW on A100 (cheaper per token there), 0.75 instance on
    one and 0.71 on the other, so rounding holds one instance on each: a whole 8-GPU VM more
    in every region and every hour, although one instance carries the pool. Here a pool
    (r, m) split in a committed hour (a fractional count on two or more types) is held on
    one type in every hour. The pool's interactive load in instances of type g is
        L[r,m,g,t] = Σ_{g'} Σ_{k interactive} w[r,m,g',k,t] / θ[m,g,k]
    (every type's interactive load served on g; NIW is left out: its deadline lets the
    fixed-count LP move it into the slack the rounding leaves), its instances on g
        n[g,t] = max(⌈L[r,m,g,t]⌉, n_min[m]) in committed hours, max(L[r,m,g,t], n_min[m])
                 after them (where instance counts are continuous),
    and the type is  g* = argmin_g Σ_t n[g,t] · price[r,g] / ipv[m,g]  (a type with θ = 0 for
    a tier the pool serves is skipped): x'[r,m,g*,t] = n[g*,t], x'[r,m,g,t] = 0 elsewhere.
    Spot instances are left as they are. :func:`round_up` then sizes the VMs, and
    :func:`lp_rounding_start` keeps whichever completed start costs less, so this never
    makes the start worse."""
    out = {family: dict(values) for family, values in lp.items()}
    inst = out.get("x", {})
    types: dict[tuple[str, str], set[str]] = defaultdict(set)
    fractional: dict[tuple[Any, ...], int] = defaultdict(int)
    for (r, m, g, t), n in inst.items():
        types[(r, m)].add(g)
        if data.committed(t) and abs(n - round(n)) > 1e-6:
            fractional[(r, m, t)] += 1
    split = {(r, m) for (r, m, _t), count in fractional.items() if count >= 2}
    load: dict[tuple[Any, ...], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (r, m, _g, k, t), tokens in lp.get("w", {}).items():
        if tokens > 1e-9 and (r, m) in split:
            load[(r, m, t)][k] += tokens
    for r, m in sorted(split):
        best: tuple[float, str, dict[int, float]] | None = None
        for g in sorted(types[(r, m)]):
            counts = _counts_on(data, (r, m, g), load, inst, types[(r, m)])
            if counts is not None:
                cost = sum(counts.values()) * data.price[(r, g)] / data.instances_per_vm[(m, g)]
                if best is None or cost < best[0]:
                    best = (cost, g, counts)
        if best is None:
            continue
        for g in types[(r, m)]:
            for t in data.T:
                if (r, m, g, t) in inst:
                    inst[(r, m, g, t)] = float(best[2][t]) if g == best[1] else 0.0
    return out


def _counts_on(
    data: PlanningData,
    rmg: tuple[str, str, str],
    load: Mapping[tuple[Any, ...], Mapping[str, float]],
    inst: Mapping[tuple[Any, ...], float],
    types: set[str],
) -> dict[int, float] | None:
    """n[g,t] of :func:`single_type_pools` for pool (r, m) held on type g, or None if g has
    θ = 0 for a tier the pool serves."""
    r, m, g = rmg
    counts: dict[int, float] = {}
    for t in data.T:
        tiers = load.get((r, m, t), {})
        if any(data.theta[(m, g, k)] <= 0 for k in tiers):
            return None
        if data.committed(t):
            need = sum(tokens / data.theta[(m, g, k)] for k, tokens in tiers.items())
            counts[t] = max(math.ceil(need - 1e-6), data.min_instances.get(m, 0))
        else:
            counts[t] = sum(inst.get((r, m, h, t), 0.0) * _ratio(data, m, h, g) for h in types)
    return counts


def _ratio(data: PlanningData, m: str, h: str, g: str) -> float:
    """Instances of type g that carry one instance of type h of any tier's load:
    max_k θ[m,h,k] / θ[m,g,k] (1 where h = g; inf where g cannot serve a tier h serves)."""
    if h == g:
        return 1.0
    tiers = [k for (mm, hh, k) in data.theta if (mm, hh) == (m, h) and data.theta[(m, h, k)] > 0]
    ratios = [
        data.theta[(m, h, k)] / data.theta[(m, g, k)] if data.theta[(m, g, k)] > 0 else math.inf
        for k in tiers
    ]
    return max(ratios, default=1.0)


def lp_rounding_start(
    data: PlanningData,
    time_limit_s: float = 30.0,
    valid_cuts: bool = True,
    per_lp: bool = False,
) -> Values | None:
    """A complete feasible assignment from LP rounding, or None if an LP failed or the two
    LPs did not finish within ``time_limit_s`` together (large fleets: the relaxation alone
    can take minutes, and the greedy start is then all SCIP gets). Two roundings are
    completed, :func:`round_up` of the relaxation and of :func:`single_type_pools`, and the
    cheaper is returned (the second only where it differs and time is left). ``per_lp``
    (a deterministic work limit): every LP runs to its end within ``time_limit_s`` of its own
    and nothing reads the clock (the caller reports a cap that bound)."""
    started = time.perf_counter()
    lp = _lp_values(data, time_limit_s=time_limit_s, valid_cuts=valid_cuts)
    if lp is None:
        log.info("LP rounding: relaxation not solved within %.1f s; skipped", time_limit_s)
        return None
    best: tuple[float, Values] | None = None
    first = round_up(data, lp)
    candidates = [first]
    second = round_up(data, single_type_pools(data, lp))
    if second["x"] != first["x"] or second["xs"] != first["xs"]:
        candidates.append(second)
    for fixed in candidates:
        left = time_limit_s if per_lp else time_limit_s - (time.perf_counter() - started)
        if best is not None and left <= 0:
            break
        solved = _solve_lp(data, fixed, left, valid_cuts)
        if solved is None:
            continue
        completed, objective = solved
        for family in INTEGER_FAMILIES:
            completed[family] = {k: float(v) for k, v in fixed[family].items()}
        if best is None or objective < best[0] - 1e-6:
            best = (objective, completed)
    if best is None:
        log.warning("LP rounding: the fixed-integer LP has no solution")
        return None
    return best[1]
