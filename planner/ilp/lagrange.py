"""Lagrangian relaxation of the planning program by region, for fleets too large for one SCIP
model (the 20 regions × 30 models × 4 VM types rung has 618,050 variables and SCIP's root LP
does not finish in minutes).

Why by region: every family but two lives inside one region (VMs, instances, packing, quota,
lead times, availability, stability). The two that couple regions are dualised:

    interactive assignment   Σ_{r0} f[r0,r,m,k,t] − Σ_g w[r,m,g,k,t] = 0        price π[r,m,k,t]
    NIW service              s[m,t] − Σ_{r,g} (v + vs)[r,m,g,t] = 0               price μ[m,t]

(s[m,t], the NIW tokens served in hour t, is the aggregate the backlog balance uses). With
them priced, the program falls apart into

    L(π, μ) = Σ_r R_r(π, μ) + F(π) + N(μ)

    R_r  region r's own MIP: its costs − Σ π·w − Σ μ·(v + vs)   (serving earns the prices)
    F    routing: each demand (r0,m,k,t) goes whole to its cheapest allowed region at
         latency cost + π, or is unmet at P_k (closed form)
    N    the NIW backlog LP per model, paying μ per token served (one small LP)

Weak duality makes L(π, μ) ≤ OPT for any prices, and it stays a valid bound when each R_r
is replaced by SCIP's *dual bound* of it (a region stopped at its gap or time limit still
contributes a lower bound), so the reported bound is proven. The prices move by the
subgradient (Σ f − Σ w, s − Σ v) with Polyak steps towards the best plan
(planner.ilp.decompose runs the rounds, after the LP relaxation and its dive, and keeps the
best of every bound and plan).

The plan is assembled from the same pieces: routing sends each demand where F chose; each
region solves its MIP with that routed demand as a requirement (unmet at its penalty) and
NIW at μ; then the instance and VM counts are fixed and one LP of the whole program
re-optimises the continuous decisions (routing, NIW schedule, unmet), so every coupling row
holds. The plan is verified like any other.

Region MIPs run in parallel: a process pool locally, Dask when an address is given
(planner.ilp.parallel).
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pyscipopt import Model, quicksum

from planner.ilp import constraints as c
from planner.ilp.data import PlanningData
from planner.ilp.objective import niw_carry_value, objective_terms
from planner.ilp.variables import (
    FAMILIES,
    FLOW_UNIT,
    INTEGER_FAMILIES,
    Vars,
    add_variables,
    routes,
)

log = logging.getLogger(__name__)
Key = tuple[Any, ...]
Values = dict[str, dict[Key, float]]


@dataclass(frozen=True)
class RegionResult:
    """One region subproblem solved: its dual bound (valid lower bound on its minimum), the
    incumbent's value, integer counts and what it serves (model units, kilotokens/s)."""

    region: str
    dual_bound: float
    objective: float
    status: str
    integers: Values
    served: dict[Key, float]  # (m, k, t) -> Σ_g w
    niw_served: dict[Key, float]  # (m, t) -> Σ_g (v + vs)
    seconds: float


def region_model(data: PlanningData, region: str) -> tuple[Model, Vars]:
    """Region ``region``'s own families and constraints (module docstring, R_r)."""
    model = Model(f"sageserve-region-{region}")
    model.hideOutput()
    v = add_variables(model, data, region=region)
    c.add_serving_capacity(model, data, v)
    c.add_trough_filling(model, data, v)
    c.add_vm_packing(model, data, v)
    c.add_quota(model, data, v)
    c.add_vm_lead_time(model, data, v)
    c.add_model_load_lead_time(model, data, v)
    c.add_availability(model, data, v)
    c.add_stability(model, data, v)
    return model, v


def solve_region(
    data: PlanningData,
    region: str,
    prices: dict[Key, float],
    niw_prices: dict[Key, float],
    time_limit_s: float,
    gap: float,
    required: dict[Key, float] | None = None,
    deadline: float | None = None,
) -> RegionResult:
    """R_r at prices π (``prices``: (m, k, t) → π[r,m,k,t]) and μ (``niw_prices``).

    ``required`` (primal assembly): the routed demand (m, k, t) → kilotokens/s the region
    must serve, short only at the unmet penalty; π is then not paid (the demand is given).
    ``deadline`` (wall clock, ``time.time()``, so it holds in worker processes): SCIP stops
    there whatever ``time_limit_s`` says, building included; a region reached after it is
    not solved (no bound, no solution)."""
    started = time.perf_counter()
    model, v = region_model(data, region)
    served: dict[Key, list[Any]] = defaultdict(list)
    for (_r, m, _g, k, t), w in v.w.items():
        served[(m, k, t)].append(w)
    niw: dict[Key, list[Any]] = defaultdict(list)
    for (_r, m, _g, t), var in [*v.v.items(), *v.vs.items()]:
        niw[(m, t)].append(var)
    terms = list(objective_terms(data, v).values())
    terms.append(-quicksum(niw_prices.get(key, 0.0) * quicksum(vs) for key, vs in niw.items()))
    terms += _served_terms(data, model, served, prices, required)
    model.setObjective(quicksum(terms), "minimize")
    limit = time_limit_s if deadline is None else min(time_limit_s, deadline - time.time())
    if limit <= 0:
        return RegionResult(
            region, -math.inf, math.inf, "skipped", {}, {}, {}, time.perf_counter() - started
        )
    model.setParam("limits/time", limit)
    model.setParam("limits/gap", gap)
    model.optimize()
    return _region_result(data, model, v, region, (served, niw), started)


def _served_terms(
    data: PlanningData,
    model: Model,
    served: dict[Key, list[Any]],
    prices: dict[Key, float],
    required: dict[Key, float] | None,
) -> list[Any]:
    """The objective's terms for interactive service: −π·w, or with ``required`` the
    routed demand as a row Σ_g w + short ≥ need, short paid at the unmet penalty."""
    if required is None:
        return [-quicksum(prices.get(key, 0.0) * quicksum(ws) for key, ws in served.items())]
    terms = []
    for (m, k, t), need in required.items():
        if not served[(m, k, t)]:
            continue
        short = model.addVar(f"short[{m},{k},{t}]", lb=0)
        model.addCons(quicksum(served[(m, k, t)]) + short >= need, name=f"routed[{m},{k},{t}]")
        terms.append(data.unmet_penalty[k] * FLOW_UNIT * short)
    return terms


def _region_result(
    data: PlanningData,
    model: Model,
    v: Vars,
    region: str,
    service: tuple[dict[Key, list[Any]], dict[Key, list[Any]]],
    started: float,
) -> RegionResult:
    """The solved region: its dual bound (−inf if SCIP has none), and with a solution its
    integer counts and what it serves (``service``: the w and the v + vs by key)."""
    has = model.getNSols() > 0
    dual = model.getDualbound()
    if not math.isfinite(dual) or abs(dual) >= model.infinity():
        dual = -math.inf  # no bound from this region: the sum is no bound either
    integers: Values = {}
    w_sum: dict[Key, float] = {}
    v_sum: dict[Key, float] = {}
    if has:
        for family in INTEGER_FAMILIES:
            integers[family] = {
                k: float(round(model.getVal(x))) if _integer(data, family, k) else model.getVal(x)
                for k, x in getattr(v, family).items()
            }
        w_sum = {key: sum(model.getVal(w) for w in ws) for key, ws in service[0].items()}
        v_sum = {key: sum(model.getVal(x) for x in xs) for key, xs in service[1].items()}
    return RegionResult(
        region=region,
        dual_bound=dual,
        objective=model.getObjVal() if has else math.inf,
        status=model.getStatus(),
        integers=integers,
        served=w_sum,
        niw_served=v_sum,
        seconds=time.perf_counter() - started,
    )


def _integer(data: PlanningData, family: str, key: Key) -> bool:
    return FAMILIES[family].integer == "always" or data.committed(key[-1])


@dataclass(frozen=True)
class Routing:
    """F(π): per demand (r0, m, k, t) the allowed serving regions with their latency cost
    per kilotoken/s, and the unmet penalty."""

    options: dict[Key, list[tuple[str, float]]]
    demand: dict[Key, float]  # model units

    @classmethod
    def of(cls, data: PlanningData, served_keys: set[Key]) -> Routing:
        options: dict[Key, list[tuple[str, float]]] = defaultdict(list)
        for r0, r, m, k, t in routes(data):
            if (r, m, k, t) in served_keys:  # no w there: the assignment row forces f = 0
                lat = data.latency_penalty * FLOW_UNIT * data.latency[(r0, r)]
                options[(r0, m, k, t)].append((r, lat))
        demand = {key: d / FLOW_UNIT for key, d in data.demand.items() if d > 0}
        return cls(dict(options), demand)

    def price(
        self, data: PlanningData, pi: dict[Key, float]
    ) -> tuple[float, dict[Key, float], dict[Key, str | None]]:
        """F(π), the flow into each (r, m, k, t) and each demand's chosen region (None:
        unmet)."""
        total = 0.0
        inflow: dict[Key, float] = defaultdict(float)
        choice: dict[Key, str | None] = {}
        for (r0, m, k, t), d in self.demand.items():
            best, where = data.unmet_penalty[k] * FLOW_UNIT, None
            for r, lat in self.options.get((r0, m, k, t), ()):
                cost = lat + pi[(r, m, k, t)]
                if cost < best:
                    best, where = cost, r
            total += best * d
            choice[(r0, m, k, t)] = where
            if where is not None:
                inflow[(where, m, k, t)] += d
        return total, dict(inflow), choice


def niw_part(
    data: PlanningData, mu: dict[Key, float], niw_models: set[str], servable: set[str]
) -> tuple[float, dict[Key, float]]:
    """N(μ): the NIW backlog LP (balance and deadline families of planner.ilp.constraints with
    s[m,t] for the served tokens; s = 0 for models no region can serve), solved to
    optimality; its value and s."""
    if not niw_models:
        return 0.0, {}
    model = Model("sageserve-niw")
    model.hideOutput()
    last = max(data.T)
    value = niw_carry_value(data)
    late = data.unmet_penalty.get(data.deferrable or "", 0.0)
    s: dict[Key, Any] = {}
    terms = []
    for m in sorted(niw_models):
        prev: Any = data.state.niw_backlog.get(m, 0.0) / FLOW_UNIT
        for t in data.T:
            s[(m, t)] = model.addVar(f"s[{m},{t}]", lb=0, ub=None if m in servable else 0)
            b = model.addVar(f"b[{m},{t}]", lb=0)
            en = model.addVar(f"en[{m},{t}]", lb=0)
            arrivals = data.niw_arrivals.get((m, t), 0.0) / FLOW_UNIT
            model.addCons(b == prev + arrivals - s[(m, t)])
            model.addCons(b - en <= data.niw_window(m, t) / FLOW_UNIT)
            terms += [mu.get((m, t), 0.0) * s[(m, t)], late * FLOW_UNIT * en]
            if t == last:
                terms.append(value * FLOW_UNIT * b)
            prev = b
    model.setObjective(quicksum(terms), "minimize")
    model.optimize()
    if model.getStatus() != "optimal":
        raise RuntimeError(f"NIW part of the Lagrangian: {model.getStatus()}")
    return model.getObjVal(), {key: model.getVal(x) for key, x in s.items() if key[0] in servable}


def initial_prices(data: PlanningData, served_keys: set[Key]) -> dict[Key, float]:
    """π at the cheapest cost of serving a kilotoken/s in the region: min over VM types of
    price ÷ (instances per VM · θ) (an LP-dual-like start)."""
    best: dict[Key, float] = {}
    for r, m, k, t in served_keys:
        costs = [
            data.price[(r, g)] * FLOW_UNIT / (data.instances_per_vm[(m, g)] * data.theta[(m, g, k)])
            for rr, mm, g in data.placements()
            if (rr, mm) == (r, m)
        ]
        best[(r, m, k, t)] = min(costs)
    return best


def initial_niw_prices(data: PlanningData, servable: set[str]) -> dict[Key, float]:
    """μ[m,t] at the cheapest cost of serving a kilotoken/s of model m's NIW for an hour
    (spot where the region has spot VMs): min over placements of price ÷ (ipv · θ_NIW)."""
    niw = data.deferrable
    best: dict[str, float] = {}
    for r, m, g in data.placements():
        if m not in servable or niw is None:
            continue
        price = data.price[(r, g)]
        if data.spot_cap.get((r, g), 0) > 0:
            price = min(price, data.spot_price[(r, g)])
        cost = price * FLOW_UNIT / (data.instances_per_vm[(m, g)] * data.theta[(m, g, niw)])
        best[m] = min(best.get(m, math.inf), cost)
    return {(m, t): best[m] for m in servable for t in data.T}


def data_size(data: PlanningData) -> int:
    """Estimated variables of the whole program (see planner.ilp.planner)."""
    per_hour = 2 + len(data.interactive) + (1 if data.deferrable else 0)
    return len(data.placements()) * len(data.T) * per_hour + len(routes(data))


def served_keys(data: PlanningData) -> set[Key]:
    """(r, m, k, t) with assignment variables w: where the dualised row has a price."""
    placed = {(r, m) for r, m, _g in data.placements()}
    return {(r, m, k, t) for (_r0, r, m, k, t) in routes(data) if (r, m) in placed}


def niw_servable(data: PlanningData) -> tuple[set[str], set[str]]:
    """Models with a NIW backlog (b) and those of them some region can serve (v)."""
    niw = {m for (m, _), a in data.niw_arrivals.items() if a > 0}
    niw |= {m for m, b in data.state.niw_backlog.items() if b > 0}
    if data.deferrable is None:
        return set(), set()
    placed = {m for _r, m, _g in data.placements()}
    return niw, niw & placed
