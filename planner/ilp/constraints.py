"""Constraint families of the planning integer program, one function each, in the order the
builder adds them. Every constraint is named ``family[key]`` so tests and ``explain`` can find
it. Notation as in :mod:`planner.ilp.variables`; θ[m,g,k] effective tokens/s per instance,
ipv[m,g] instances per VM, ℓ[m,g] model load minutes, L[g] VM lead minutes, Q/S quotas, W the
NIW deadline in hours, t ∈ 1..H with hour-0 values from the current fleet state.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pyscipopt import Model, quicksum

from planner.ilp.data import PlanningData
from planner.ilp.variables import FLOW_UNIT, Vars, label


def add_demand_cover(model: Model, data: PlanningData, v: Vars) -> int:
    """Interactive demand is routed somewhere or counted as unmet, for every r0, m, k, t with
    demand:    Σ_{r ∈ A_k(r0)} f[r0,r,m,k,t] + e[r0,m,k,t] = D[r0,m,k,t]
    (A_k(r0): regions within the tier's latency budget where m is offered; see
    ``variables.routes``, the routing-budget family)."""
    flows: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for (r0, _r, m, k, t), var in v.f.items():
        flows[(r0, m, k, t)].append(var)
    for key, e in v.e.items():
        model.addCons(
            quicksum(flows[key]) + e == data.demand[key] / FLOW_UNIT,
            name=label("demand_cover", *key),
        )
    return len(v.e)


def add_interactive_assignment(model: Model, data: PlanningData, v: Vars) -> int:
    """What is routed into region r is served there on some VM type:
    Σ_g w[r,m,g,k,t] = Σ_{r0} f[r0,r,m,k,t]."""
    inflow: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for (_r0, r, m, k, t), var in v.f.items():
        inflow[(r, m, k, t)].append(var)
    served: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for (r, m, _g, k, t), var in v.w.items():
        served[(r, m, k, t)].append(var)
    for key, flows in inflow.items():
        model.addCons(
            quicksum(served[key]) == quicksum(flows), name=label("interactive_assign", *key)
        )
    return len(inflow)


def add_serving_capacity(model: Model, data: PlanningData, v: Vars) -> int:
    """Instances carry their load, each tier at its own throughput (headroom included), less
    the part of the hour new instances spend loading (λ[m,g,t], see PlanningData.load_loss):
    Σ_{k interactive} w[r,m,g,k,t] / θ[m,g,k] + v[r,m,g,t] / θ[m,g,NIW] + λ·u[r,m,g,t]
        ≤ x[r,m,g,t]
    and on spot:  vs[r,m,g,t] / θ[m,g,NIW] + λ·us[r,m,g,t] ≤ xs[r,m,g,t].
    Interactive and NIW share on-demand instances (an instance's idle hours at night serve the
    backlog); spot instances serve NIW only, since they can be taken away.
    With trough filling (``data.trough_filling``) the NIW term v / θ[m,g,NIW] leaves this row:
    NIW is bounded by the idle capacity of :func:`add_trough_filling` instead."""
    load: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for (r, m, g, k, t), var in v.w.items():
        load[(r, m, g, t)].append(var * (FLOW_UNIT / data.theta[(m, g, k)]))
    niw = data.deferrable
    for key, var in v.v.items() if not data.trough_filling else ():
        _, m, g, _ = key
        load[key].append(var * (FLOW_UNIT / data.theta[(m, g, niw)]))  # type: ignore[index]
    count = 0
    for key, x in v.x.items():
        r, m, g, t = key
        terms = [*load.get(key, []), v.u[key] * data.load_loss(m, g, t)]
        model.addCons(quicksum(terms) <= x, name=label("capacity", *key))
        count += 1
    for key, vs in v.vs.items():
        _, m, g, t = key
        theta = data.theta[(m, g, niw)]  # type: ignore[index]
        loss = v.us[key] * data.load_loss(m, g, t)
        model.addCons(
            vs * (FLOW_UNIT / theta) + loss <= v.xs[key], name=label("spot_capacity", *key)
        )
        count += 1
    return count


def add_trough_filling(model: Model, data: PlanningData, v: Vars) -> int:
    """NIW first fills the capacity the plan holds idle (only with ``data.trough_filling``).

    The capacity family sizes instances for the interactive tiers' busiest minute (or what
    their latency target needs); over the hour they are busy only with the mean interactive
    load, and the replay serves NIW from the rest of every minute. So NIW on on-demand
    instances is bounded by the hour's idle capacity, not stacked on the peak sizing:
        Σ_{k interactive} α[r,m,k,t] · w[r,m,g,k,t] / θ[m,g,k] + v[r,m,g,t] / θ[m,g,NIW]
            + λ[m,g,t] · u[r,m,g,t] ≤ x[r,m,g,t]
    with α[r,m,k,t] = min(1, M[r,m,k,t] / D[r,m,k,t]) · θ[m,g,k] / θ₀[m,g,k] (M the tier's
    forecast mean token rate in r, D what the program sizes for; θ₀ without headroom; α = 1
    where r has no own demand of the tier, conservative for what is routed in; see
    PlanningData.mean_share). The interactive row of the capacity family holds alone, so
    nothing is bought for NIW while idle capacity (nights, troughs, and, through the backlog
    pooled per model, other regions) can carry it by its deadline (the NIW deadline family
    still binds)."""
    if not data.trough_filling:
        return 0
    niw = data.deferrable
    load: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for (r, m, g, k, t), var in v.w.items():
        share = data.mean_share(r, m, k, t)
        load[(r, m, g, t)].append(var * (share * FLOW_UNIT / data.theta[(m, g, k)]))
    for key, var in v.v.items():
        _, m, g, _ = key
        load[key].append(var * (FLOW_UNIT / data.theta[(m, g, niw)]))  # type: ignore[index]
    count = 0
    for key, x in v.x.items():
        if key not in v.v:
            continue
        r, m, g, t = key
        terms = [*load.get(key, []), v.u[key] * data.load_loss(m, g, t)]
        model.addCons(quicksum(terms) <= x, name=label("trough_filling", *key))
        count += 1
    return count


def add_vm_packing(model: Model, data: PlanningData, v: Vars) -> int:
    """VMs hold the instances placed on them (loading instances included):
    Σ_m x[r,m,g,t] / ipv[m,g] ≤ y[r,g,t]    and on spot   Σ_m xs[r,m,g,t] / ipv[m,g] ≤ z[r,g,t].
    Mixed models share a VM type's VMs by GPU slots: ipv already says how many instances of a
    model fit a VM (tensor parallelism and memory)."""
    count = 0
    for instances, vms, family in ((v.x, v.y, "vm_packing"), (v.xs, v.z, "spot_packing")):
        used: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
        for (r, m, g, t), var in instances.items():
            used[(r, g, t)].append(var * (1.0 / data.instances_per_vm[(m, g)]))
        for (r, g, t), terms in used.items():
            model.addCons(quicksum(terms) <= vms[(r, g, t)], name=label(family, r, g, t))
            count += 1
    return count


def add_quota(model: Model, data: PlanningData, v: Vars) -> int:
    """On-demand and spot VMs together stay within the region's quota for the type:
    y[r,g,t] + z[r,g,t] ≤ Q[r,g]   (z ≤ S[r,g] and y ≤ Q[r,g] are variable bounds)."""
    for (r, g, t), z in v.z.items():
        model.addCons(v.y[(r, g, t)] + z <= data.quota[(r, g)], name=label("quota", r, g, t))
    return len(v.z)


def add_vm_lead_time(model: Model, data: PlanningData, v: Vars) -> int:
    """VM additions and releases, and no addition before its lead time:
    ay[r,g,t] ≥ y[r,g,t] − y[r,g,t−1],  ry[r,g,t] ≥ y[r,g,t−1] − y[r,g,t]  (y[r,g,0] = y0)
    y[r,g,t] − y[r,g,t−1] ≤ 0  when (t−1)·60 + Δ0 < L[g]  (Δ0: minutes from now to hour 1)
    and the same for spot VMs z (z0 from the state)."""
    count = 0
    for vms, adds, rels, now, tag in (
        (v.y, v.ay, v.ry, data.state.vms, ""),
        (v.z, v.az, v.rz, data.state.spot_vms, "spot_"),
    ):
        for (r, g, t), var in vms.items():
            prev = vms[(r, g, t - 1)] if t > 1 else now.get((r, g), 0)
            model.addCons(adds[(r, g, t)] >= var - prev, name=label(f"{tag}vm_additions", r, g, t))
            model.addCons(rels[(r, g, t)] >= prev - var, name=label(f"{tag}vm_releases", r, g, t))
            count += 2
            if not data.can_add_vm(g, t):
                model.addCons(var - prev <= 0, name=label(f"{tag}vm_lead_time", r, g, t))
                count += 1
    return count


def add_model_load_lead_time(model: Model, data: PlanningData, v: Vars) -> int:
    """Instance starts (model loads on new or running VMs):
    u[r,m,g,t] ≥ x[r,m,g,t] − x[r,m,g,t−1]   (x[·,0] = x0), same for spot (xs, us).
    A start serves only after its load time: the capacity family charges λ[m,g,t]·u."""
    count = 0
    for inst, starts, now, tag in (
        (v.x, v.u, data.state.instances, ""),
        (v.xs, v.us, data.state.spot_instances, "spot_"),
    ):
        for (r, m, g, t), var in inst.items():
            prev = inst[(r, m, g, t - 1)] if t > 1 else now.get((r, m, g), 0)
            model.addCons(
                starts[(r, m, g, t)] >= var - prev, name=label(f"{tag}instance_starts", r, m, g, t)
            )
            count += 1
    return count


def add_niw_backlog(model: Model, data: PlanningData, v: Vars) -> int:
    """NIW backlog balance, pooled per model across regions (NIW may run anywhere):
    b[m,t] = b[m,t−1] + A[m,t] − Σ_{r,g} (v + vs)[r,m,g,t],   b[m,0] = B0[m]."""
    served: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for (_r, m, _g, t), var in [*v.v.items(), *v.vs.items()]:
        served[(m, t)].append(var)
    for (m, t), b in v.b.items():
        prev = v.b[(m, t - 1)] if t > 1 else data.state.niw_backlog.get(m, 0.0) / FLOW_UNIT
        arrivals = data.niw_arrivals.get((m, t), 0.0) / FLOW_UNIT
        model.addCons(
            b == prev + arrivals - quicksum(served[(m, t)]), name=label("niw_balance", m, t)
        )
    return len(v.b)


def add_niw_deadline(model: Model, data: PlanningData, v: Vars) -> int:
    """Everything that arrived in hour τ is served by the end of hour τ + W − 1, or the excess
    is counted as late:   b[m,t] − en[m,t] ≤ Σ_{τ = t−W+2}^{t} A[m,τ]   (B0 arrives at hour 0;
    see PlanningData.niw_window)."""
    for (m, t), b in v.b.items():
        model.addCons(
            b - v.en[(m, t)] <= data.niw_window(m, t) / FLOW_UNIT, name=label("niw_deadline", m, t)
        )
    return len(v.b)


def add_availability(model: Model, data: PlanningData, v: Vars) -> int:
    """At least the configured minimum of instances of each model in each region offering it,
    short only when lead times make it impossible (the shortfall sa is priced like unmet IW-F):
    Σ_g x[r,m,g,t] + sa[r,m,t] ≥ n_min[m]."""
    by_rm: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for (r, m, _g, t), var in v.x.items():
        by_rm[(r, m, t)].append(var)
    for key, short in v.sa.items():
        need = data.min_instances[key[1]]
        model.addCons(quicksum(by_rm[key]) + short >= need, name=label("availability", *key))
    return len(v.sa)


def add_stability(model: Model, data: PlanningData, v: Vars) -> int:
    """Optional cap on hour-to-hour change (churn is also priced in the objective):
    ay[r,g,t] + ry[r,g,t] ≤ Δmax   when planner.max_vm_change_per_hour is set."""
    if data.max_vm_change is None:
        return 0
    for key, add in v.ay.items():
        model.addCons(add + v.ry[key] <= data.max_vm_change, name=label("stability", *key))
    return len(v.ay)
