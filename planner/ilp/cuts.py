"""Valid inequalities that tighten the LP relaxation of the planning program. They cut off
fractional points only: every integer-feasible plan satisfies them (tests check that the
known optimum of small instances survives them). Notation as in :mod:`planner.ilp.constraints`.

Why they are needed. After the committed hours the instance counts x are continuous and only
the VM counts y are integer, so the relaxation buys exactly the fraction of a VM the load
needs (y = 2.10) where a plan must buy three. Unmet demand e is the only way around buying
the VM, and it is priced far above a VM-hour, so the rounding is what an integer plan pays,
but SCIP's own mixed-integer rounding cannot see it: the VM row, the capacity row, the
assignment row and the demand row must be added up first, across models and VM types.
:func:`add_region_vm_rounding` does that sum once, in closed form, and applies the
mixed-integer rounding (MIR) of it.

The aggregated row. For a set S of regions and an hour t, the demand that must be served
inside S is the interactive demand from r0 whose allowed regions A_k(r0) ⊆ S. Weighting each
VM type g by κ_g (κ = 1 for the reference type g*, the one with the lowest price;
κ_g = max_{m,k} a[m,g*,k] / a[m,g,k] otherwise, a[m,g,k] = 1/(ipv[m,g]·θ[m,g,k]) the VMs one
token/s needs), the VMs of model m in S weigh

    U_m = Σ_{r∈S,g} κ_g·x[r,m,g,t]/ipv[m,g]
        ≥ ρ[m,k]·Σ_{r∈S,g} w[r,m,g,k,t]   with ρ[m,k] = min_g κ_g·a[m,g,k]     (load)
        ≥ ρ[m,k]·Σ_{r0: A_k(r0)⊆S} (D[r0,m,k,t] − e[r0,m,k,t])                   (routing)
    U_m ≥ σ_m·Σ_{r∈S offering m} (n_min[m] − sa[r,m,t]),  σ_m = min_g κ_g/ipv[m,g]  (availability)

and Σ_{r∈S,g} κ_g·y[r,g,t] ≥ Σ_m U_m by the packing rows. Per model the larger of the two
bounds (at e = sa = 0) is used, so with β the sum of those constants and s ≥ 0 the matching
sum of ρ·e or σ·sa terms:

    Σ_{r∈S,g} κ_g·y[r,g,t] + s ≥ β.

Its MIR (y integer ≥ 0, s continuous ≥ 0), with φ = β − ⌊β⌋ > 0:

    Σ_{r∈S,g} c_g·y[r,g,t] + s/φ ≥ ⌈β⌉,   c_g = κ_g if κ_g is integer, else
                                          ⌈κ_g⌉ − max(0, φ − frac(κ_g))/φ.

It says: buy ⌈β⌉ weighted VMs, or pay for the shortfall in unmet demand at 1/φ times its
VM-equivalent. S ranges over every single region (the demand pinned there by the latency
budget) and over all regions together (every interactive tier): :func:`add_region_vm_rounding`.
:func:`add_home_vm_rounding` adds, per region, the row that also counts the region's own
routable demand, with what is routed away as slack (routing away is what an integer plan does
instead of buying a VM, and it pays latency). :func:`add_instance_rounding` does the same one
level down, for the instance counts of the committed hours.

On four plan hours of the demo's last day the three families lift the LP relaxation from
3.0-4.1 % under the best plan found to 0.1-1.1 % (README, "Planning" and "Benchmarks").
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from pyscipopt import Model, quicksum

from planner.ilp.data import PlanningData
from planner.ilp.variables import FLOW_UNIT, Vars

EPS = 1e-6


def vm_weights(data: PlanningData) -> dict[str, float]:
    """κ_g of the module docstring: how many reference VMs one VM of type g can replace."""
    used = sorted({g for _r, _m, g in data.placements()})
    if not used:
        return {}
    ref = min(used, key=lambda g: min(p for (r, gg), p in data.price.items() if gg == g))
    weights = {ref: 1.0}
    for g in used:
        if g == ref:
            continue
        ratios = [
            _vm_need(data, m, ref, k) / _vm_need(data, m, g, k)
            for m in data.models
            for k in data.interactive
            if data.runs_on(m, ref) and data.runs_on(m, g)
        ]
        weights[g] = max(ratios) if ratios else 1.0
    return weights


def _vm_need(data: PlanningData, m: str, g: str, k: str) -> float:
    """a[m,g,k]: VMs of type g per token/s of tier k for model m."""
    return 1.0 / (data.instances_per_vm[(m, g)] * data.theta[(m, g, k)])


def mir_coefficient(a: float, phi: float) -> float:
    """The MIR coefficient of an integer variable with coefficient ``a`` in a ≥-row whose
    right-hand side has fractional part ``phi`` (module docstring)."""
    frac = a - math.floor(a)
    if frac < EPS or frac > 1 - EPS:
        return float(round(a))
    return math.ceil(a) - max(0.0, phi - frac) / phi


def add_region_vm_rounding(model: Model, data: PlanningData, v: Vars) -> int:
    """The MIR cuts of the module docstring on the demand pinned inside S, one per region set
    S (every single region, and all regions together) and hour t where β is fractional:
    Σ_{r∈S,g} c_g·y[r,g,t] + (Σ ρ·e + Σ σ·sa)/φ ≥ ⌈β⌉."""
    sets = [frozenset([r]) for r in data.regions]
    if len(data.regions) > 1:
        sets.append(frozenset(data.regions))
    return _add_rounding(model, data, v, sets, leaving=False, family="vm_rounding")


def add_home_vm_rounding(model: Model, data: PlanningData, v: Vars) -> int:
    """The same MIR for one region S = {r} with the demand *from* r of the tiers that may
    leave it (IW-N) counted too, the flows that leave being slack like unmet demand: what a
    region's own users send is served at home, unmet, or routed away (and pays latency):

        Σ_{r'∈A_k(r) ∩ S} f[r,r',m,k,t] = D[r,m,k,t] − e[r,m,k,t] − Σ_{r'∉S} f[r,r',m,k,t]

    so with s now also holding ρ[m,k]·Σ_{r'∉S} f[r,r',m,k,t]:
    c·y[r,·,t] + s/φ ≥ ⌈β⌉. Rows equal to a :func:`add_region_vm_rounding` row (nothing can
    leave) are skipped."""
    sets = [frozenset([r]) for r in data.regions] if len(data.regions) > 1 else []
    return _add_rounding(model, data, v, sets, leaving=True, family="vm_rounding_home")


def _add_rounding(
    model: Model,
    data: PlanningData,
    v: Vars,
    sets: list[frozenset[str]],
    leaving: bool,
    family: str,
) -> int:
    kappa = vm_weights(data)
    if not kappa:
        return 0
    placements = set(data.placements())
    offering: dict[str, list[str]] = defaultdict(list)
    for r, m in sorted(data.offered):
        if any((r, m, g) in placements for g in kappa):
            offering[m].append(r)
    allowed = {
        (r0, m, k): frozenset(r for r in data.routes[(r0, k)] if (r, m) in data.offered)
        for r0 in data.regions
        for m in data.models
        for k in data.interactive
    }
    vms_at: dict[int, list[tuple[str, str, Any]]] = defaultdict(list)
    for (r, g, t), y in v.y.items():
        if g in kappa:
            vms_at[t].append((r, g, y))
    count = 0
    for S in sets:
        for t in data.T:
            beta, slack = _aggregated_row(data, v, kappa, offering, allowed, S, t, leaving)
            phi = beta - math.floor(beta)
            if beta <= EPS or phi < 1e-4 or phi > 1 - 1e-4:
                continue
            if leaving:
                pinned, _ = _aggregated_row(data, v, kappa, offering, allowed, S, t, False)
                if abs(beta - pinned) < EPS:
                    continue
            vms = [mir_coefficient(kappa[g], phi) * y for r, g, y in vms_at[t] if r in S]
            if not vms:
                continue
            model.addCons(
                quicksum(vms) + quicksum(c / phi * s for c, s in slack) >= math.ceil(beta),
                name=f"{family}[{'+'.join(sorted(S))},{t}]",
            )
            count += 1
    return count


def _aggregated_row(
    data: PlanningData,
    v: Vars,
    kappa: dict[str, float],
    offering: dict[str, list[str]],
    allowed: dict[tuple[str, str, str], frozenset[str]],
    S: frozenset[str],
    t: int,
    leaving: bool,
) -> tuple[float, list[tuple[float, Any]]]:
    """β and the slack terms (coefficient, variable) of the aggregated row for S and t;
    ``leaving``: also the demand from regions in S that may be routed out of S."""
    beta = 0.0
    slack: list[tuple[float, Any]] = []
    for m in data.models:
        load, load_slack = 0.0, []
        for k in data.interactive:
            rho = min(
                (kappa[g] * _vm_need(data, m, g, k) for g in kappa if data.runs_on(m, g)),
                default=0.0,
            )
            for r0 in data.regions:
                d = data.demand.get((r0, m, k, t), 0.0)
                if d <= 0:
                    continue
                to = allowed[(r0, m, k)]
                if not to & S or not (to <= S or (leaving and r0 in S)):
                    continue
                load += rho * d
                # e and f are in FLOW_UNIT tokens/s inside the model
                load_slack.append((rho * FLOW_UNIT, v.e[(r0, m, k, t)]))
                load_slack += [(rho * FLOW_UNIT, v.f[(r0, r, m, k, t)]) for r in sorted(to - S)]
        sigma = min(
            (kappa[g] / data.instances_per_vm[(m, g)] for g in kappa if data.runs_on(m, g)),
            default=0.0,
        )
        # only where the availability row exists (it is what makes the floor valid)
        regions = [r for r in offering.get(m, []) if r in S and (r, m, t) in v.sa]
        floor = sigma * data.min_instances.get(m, 0) * len(regions)
        if load >= floor and load > 0:
            beta += load
            slack += load_slack
        elif floor > 0:
            beta += floor
            slack += [(sigma, v.sa[(r, m, t)]) for r in regions]
    return beta, slack


def add_instance_rounding(model: Model, data: PlanningData, v: Vars) -> int:
    """In the committed hours (instances integer) the same rounding one level down, per
    region r, model m and hour t: with λ_g = max_k θ[m,g,k]/θ[m,g*,k] (instances of the
    reference type one instance on g can replace) the instances weigh

        Σ_g λ_g·x[r,m,g,t] ≥ Σ_k ρ'[m,k]·(D[r,m,k,t] − e[r,m,k,t] − Σ_{r'≠r} f[r,r',m,k,t]),
        ρ'[m,k] = min_g λ_g/θ[m,g,k]        (capacity rows; demand from r kept at home)
        Σ_g λ_g·x[r,m,g,t] ≥ min_g λ_g·(n_min[m] − sa[r,m,t])            (availability)

    and with the larger bound's constant β and slack s the MIR is
    Σ_g c_g·x[r,m,g,t] + s/φ ≥ ⌈β⌉ (c_g from λ_g as for VMs)."""
    kappa = vm_weights(data)
    away = _flows_away(data, v)
    count = 0
    for r, m in sorted({(r, m) for r, m, _g in data.placements()}):
        types = [g for g in kappa if (r, m, g, 1) in v.x]
        if not types:
            continue
        ref = next((g for g in kappa if kappa[g] == 1.0 and g in types), types[0])
        lam = {
            g: max(data.theta[(m, g, k)] / data.theta[(m, ref, k)] for k in data.interactive)
            for g in types
        }
        for t in data.T:
            if not data.committed(t):
                continue
            beta, slack = _instance_row(data, v, away, lam, r, m, t)
            phi = beta - math.floor(beta)
            if beta <= EPS or phi < 1e-4 or phi > 1 - 1e-4:
                continue
            model.addCons(
                quicksum(mir_coefficient(lam[g], phi) * v.x[(r, m, g, t)] for g in types)
                + quicksum(c / phi * s for c, s in slack)
                >= math.ceil(beta),
                name=f"instance_rounding[{r},{m},{t}]",
            )
            count += 1
    return count


def _flows_away(data: PlanningData, v: Vars) -> dict[tuple[Any, ...], list[Any]]:
    """The flow variables f[r,r',m,k,t] leaving their region r in the committed hours, by
    (r, m, k, t)."""
    away: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for (r0, r1, m, k, t), f in v.f.items():
        if r1 != r0 and data.committed(t):
            away[(r0, m, k, t)].append(f)
    return away


def _instance_row(
    data: PlanningData,
    v: Vars,
    away: dict[tuple[Any, ...], list[Any]],
    lam: dict[str, float],
    r: str,
    m: str,
    t: int,
) -> tuple[float, list[tuple[float, Any]]]:
    """β and the slack terms (coefficient, variable) of :func:`add_instance_rounding`'s row
    for region r, model m and hour t: the capacity bound, or the availability bound where
    it is the larger."""
    beta, slack = 0.0, []
    for k in data.interactive:
        rho = min(lam[g] / data.theta[(m, g, k)] for g in lam)
        d = data.demand.get((r, m, k, t), 0.0)
        if d <= 0 or (r, r, m, k, t) not in v.f:
            continue
        beta += rho * d
        slack.append((rho * FLOW_UNIT, v.e[(r, m, k, t)]))
        slack += [(rho * FLOW_UNIT, f) for f in away[(r, m, k, t)]]
    floor = min(lam.values()) * data.min_instances.get(m, 0)
    if (r, m, t) in v.sa and floor > beta:
        beta, slack = floor, [(min(lam.values()), v.sa[(r, m, t)])]
    return beta, slack
