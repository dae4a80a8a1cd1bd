"""Decision variables, created only where they can be non-zero (a variable SCIP never sees is
cheaper than one it must prove zero). Names are structured: ``x[us-east,llama2-70b,a100x8,3]``.

    y[r,g,t] ∈ ℤ₊      on-demand VMs                 z[r,g,t] ∈ ℤ₊   spot VMs (NIW only)
    x[r,m,g,t] ∈ ℤ₊    on-demand model instances     xs[r,m,g,t] ∈ ℤ₊ spot instances
                       (integer for committed hours, t ≤ integer_placement_h; instance
                       capacity ≥ 0 after that, re-planned before it is carried out)
    f[r0,r,m,k,t] ≥ 0  interactive tokens/s from r0 served in r (allowed routes only)
    w[r,m,g,k,t] ≥ 0   interactive tokens/s served in r on VM type g
    v[r,m,g,t] ≥ 0     NIW tokens/s served on on-demand instances; vs[...] on spot
    (all token flows in units of FLOW_UNIT tokens/s inside the model)
    b[m,t] ≥ 0         NIW backlog at the end of hour t, (tokens/s)·h
    e[r0,m,k,t] ≥ 0    unmet interactive demand;  en[m,t] ≥ 0 NIW backlog past its deadline
    sa[r,m,t] ≥ 0      availability shortfall (instances below the minimum, penalised)
    u[r,m,g,t] ≥ 0     instance starts (model loads); us[...] on spot
    ay, ry[r,g,t] ≥ 0  VM additions, releases;       az, rz[r,g,t] spot additions, releases
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pyscipopt import Model

from planner.ilp.data import PlanningData

Key = tuple[Any, ...]

# Token flows (f, w, v, vs, b, e, en) live in the model in kilotokens/s: with tokens/s the
# capacity rows carry 1/θ ≈ 1e-5 next to instance counts of 1, which left SCIP's heuristics
# unable to improve a greedy start. Data and Plans stay in tokens/s; build and read-back scale.
FLOW_UNIT = 1000.0
# a value under this (model units) is 0: a solver's specks (a MIP's ~1e-12), set to 0 by the
# polish (planner.ilp.polish.snap) and by the read-back before any table or total
DUST = 1e-9
Values = dict[str, dict[Key, float]]


@dataclass(frozen=True)
class Family:
    """A variable family: its index, its integrality (``always``; ``committed``: in the
    committed hours, PlannerSettings.integer_placement_h; ``never``) and its model unit
    (``scale`` plan units per model unit: FLOW_UNIT for the token flows)."""

    dims: tuple[str, ...]
    integer: Literal["always", "committed", "never"] = "never"
    scale: float = 1.0


# The registry (the module docstring's table): build, read-back, starts and rounding read it.
FAMILIES: dict[str, Family] = {
    "y": Family(("r", "g", "t"), "always"),
    "z": Family(("r", "g", "t"), "always"),
    "x": Family(("r", "m", "g", "t"), "committed"),
    "xs": Family(("r", "m", "g", "t"), "committed"),
    "f": Family(("r0", "r", "m", "k", "t"), scale=FLOW_UNIT),
    "w": Family(("r", "m", "g", "k", "t"), scale=FLOW_UNIT),
    "v": Family(("r", "m", "g", "t"), scale=FLOW_UNIT),
    "vs": Family(("r", "m", "g", "t"), scale=FLOW_UNIT),
    "b": Family(("m", "t"), scale=FLOW_UNIT),
    "e": Family(("r0", "m", "k", "t"), scale=FLOW_UNIT),
    "en": Family(("m", "t"), scale=FLOW_UNIT),
    "u": Family(("r", "m", "g", "t")),
    "us": Family(("r", "m", "g", "t")),
    "ay": Family(("r", "g", "t")),
    "ry": Family(("r", "g", "t")),
    "az": Family(("r", "g", "t")),
    "rz": Family(("r", "g", "t")),
    "sa": Family(("r", "m", "t")),
}
INTEGER_FAMILIES = tuple(name for name, fam in FAMILIES.items() if fam.integer != "never")
VM_FAMILIES = tuple(name for name, fam in FAMILIES.items() if fam.integer == "always")
INSTANCE_FAMILIES = tuple(name for name, fam in FAMILIES.items() if fam.integer == "committed")
# families indexed by no region (the NIW backlog): neither r nor r0 leads their key
REGIONLESS_FAMILIES = tuple(n for n, fam in FAMILIES.items() if fam.dims[0] not in ("r", "r0"))


class Vars(dict[str, dict[Key, Any]]):
    """The model's variables: family name → {index tuple: SCIP variable}, every family of
    FAMILIES present; ``v.x`` is ``v["x"]``."""

    def __init__(self) -> None:
        super().__init__({name: {} for name in FAMILIES})

    def __getattr__(self, family: str) -> dict[Key, Any]:
        try:
            return self[family]
        except KeyError:
            raise AttributeError(family) from None

    def count(self) -> dict[str, int]:
        return {name: len(variables) for name, variables in self.items()}


def read_back(model: Model, v: Vars) -> Values:
    """The solution's values of every family, in plan units (flows × FLOW_UNIT)."""
    return {
        name: {k: FAMILIES[name].scale * model.getVal(var) for k, var in v[name].items()}
        for name in FAMILIES
    }


def label(family: str, *key: object) -> str:
    """A variable's or constraint's name: ``x[us-east,llama2-70b,a100x8,3]``."""
    return f"{family}[{','.join(str(k) for k in key)}]"


def routes(data: PlanningData) -> list[tuple[str, str, str, str, int]]:
    """Allowed interactive flows (r0, r, m, k, t): demand exists at (r0, m, k, t), the latency
    from r0 to r fits the tier's budget, lat(r0, r) ≤ budget_k, and m is offered in r. This is
    the routing-budget constraint family, enforced as the domain of f."""
    out = []
    for (r0, m, k, t), d in data.demand.items():
        if d <= 0:
            continue
        for r in data.routes[(r0, k)]:
            if (r, m) in data.offered:
                out.append((r0, r, m, k, t))
    return out


def add_variables(
    model: Model, data: PlanningData, relax: bool = False, region: str | None = None
) -> Vars:
    """Every variable family; ``relax`` makes the integers continuous (LP relaxation).

    ``region``: only that region's own families (VMs, instances, assignments w, NIW service,
    starts, shortfall), without the coupling ones (routing f, unmet e, NIW backlog b, en): the
    region subproblem of planner.ilp.lagrange."""
    v = Vars()
    integer = "C" if relax else "I"
    niw_models = {m for (m, _), a in data.niw_arrivals.items() if a > 0}
    niw_models |= {m for m, b in data.state.niw_backlog.items() if b > 0}
    _add_vm_families(model, data, v, integer, region)
    _add_instance_families(model, data, v, integer, region, niw_models)
    if region is None:
        for route in routes(data):
            v.f[route] = model.addVar(label("f", *route), lb=0)
        for (r0, m, k, t), d in data.demand.items():
            if d > 0:
                v.e[(r0, m, k, t)] = model.addVar(label("e", r0, m, k, t), lb=0)
    offered_here = {(r, m) for r, m, _g in data.placements() if region in (None, r)}
    for r, m in sorted(offered_here):
        if data.min_instances.get(m, 0) > 0:
            for t in data.T:
                v.sa[(r, m, t)] = model.addVar(label("sa", r, m, t), lb=0)
    if region is not None:
        return v
    for m in sorted(niw_models):
        for t in data.T:
            v.b[(m, t)] = model.addVar(label("b", m, t), lb=0)
            v.en[(m, t)] = model.addVar(label("en", m, t), lb=0)
    return v


def _add_vm_families(
    model: Model, data: PlanningData, v: Vars, integer: str, region: str | None
) -> None:
    """y, ay, ry per (r, g, t) with quota; z, az, rz where spot may serve NIW there."""
    niw = data.deferrable is not None
    for (r, g), q in data.quota.items():
        if q <= 0 or (region is not None and r != region):
            continue
        for t in data.T:
            v.y[(r, g, t)] = model.addVar(label("y", r, g, t), vtype=integer, lb=0, ub=q)
            v.ay[(r, g, t)] = model.addVar(label("ay", r, g, t), lb=0)
            v.ry[(r, g, t)] = model.addVar(label("ry", r, g, t), lb=0)
            if niw and data.spot_cap.get((r, g), 0) > 0:
                cap = min(data.spot_cap[(r, g)], q)
                v.z[(r, g, t)] = model.addVar(label("z", r, g, t), vtype=integer, lb=0, ub=cap)
                v.az[(r, g, t)] = model.addVar(label("az", r, g, t), lb=0)
                v.rz[(r, g, t)] = model.addVar(label("rz", r, g, t), lb=0)


def _add_instance_families(
    model: Model,
    data: PlanningData,
    v: Vars,
    integer: str,
    region: str | None,
    niw_models: set[str],
) -> None:
    """x, u per placement and hour (x integer in the committed hours); w where some allowed
    flow reaches the tier; v for models with NIW work, and xs, us, vs where spot VMs exist."""
    served = _served_interactive(data)
    for r, m, g in data.placements():
        if region is not None and r != region:
            continue
        for t in data.T:
            key = (r, m, g, t)
            placement = integer if data.committed(t) else "C"
            v.x[key] = model.addVar(label("x", *key), vtype=placement, lb=0)
            v.u[key] = model.addVar(label("u", *key), lb=0)
            for k in data.interactive:
                if (r, m, k, t) in served:
                    v.w[(r, m, g, k, t)] = model.addVar(label("w", r, m, g, k, t), lb=0)
            if m in niw_models:
                v.v[key] = model.addVar(label("v", *key), lb=0)
                if (r, g, t) in v.z:
                    v.xs[key] = model.addVar(label("xs", *key), vtype=placement, lb=0)
                    v.us[key] = model.addVar(label("us", *key), lb=0)
                    v.vs[key] = model.addVar(label("vs", *key), lb=0)


def _served_interactive(data: PlanningData) -> set[tuple[str, str, str, int]]:
    """(r, m, k, t) that some allowed flow can reach."""
    return {(r, m, k, t) for (_r0, r, m, k, t) in routes(data)}
