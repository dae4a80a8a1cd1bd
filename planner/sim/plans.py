"""Plans as simulator targets: the first hour of each hourly plan (the committed, integer
hour) as arrays, and the load it planned for."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from planner.ilp.frames import rows
from planner.ilp.plan import Plan
from planner.sim.fleet import FleetParams, Targets, home_routing
from planner.sim.policies import instance_equivalents

Array = npt.NDArray[np.float64]


def _index(p: FleetParams) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]:
    return (
        {r: i for i, r in enumerate(p.regions)},
        {m: i for i, m in enumerate(p.models)},
        {g: i for i, g in enumerate(p.vm_types)},
        {k: i for i, k in enumerate(p.tiers)},
    )


def targets_of(plan: Plan, p: FleetParams) -> tuple[Targets, Array]:
    """Targets for the plan's first hour, and the interactive load [r, m] (instance
    equivalents) it expects each pool to carry then."""
    R, M, G, K = _index(p)
    hour = plan.start
    nr, nm, ng = p.shape_rmg
    vms, spot = np.zeros((nr, ng)), np.zeros((nr, ng))
    inst, spot_inst = np.zeros((nr, nm, ng)), np.zeros((nr, nm, ng))
    for v in rows(plan.vms[plan.vms["hour"] == hour]):
        vms[R[v.region], G[v.vm_type]] = round(v.on_demand)
        spot[R[v.region], G[v.vm_type]] = round(v.spot)
    for i in rows(plan.instances[plan.instances["hour"] == hour]):
        inst[R[i.region], M[i.model], G[i.vm_type]] = round(i.on_demand)
        spot_inst[R[i.region], M[i.model], G[i.vm_type]] = round(i.spot)
    routing = home_routing(p)
    seen: set[tuple[int, int, int]] = set()
    for w in rows(plan.routing[plan.routing["hour"] == hour]):
        key = (R[w.source_region], M[w.model], K[w.tier])
        if key not in seen:
            routing[key[0], :, key[1], key[2]] = 0.0
            seen.add(key)
        routing[key[0], R[w.target_region], key[1], key[2]] += w.weight
    total = routing.sum(axis=1, keepdims=True)
    routing = np.where(total > 0, routing / np.where(total > 0, total, 1.0), home_routing(p))
    load = np.zeros((nr, nm, len(p.tiers)))
    for a in rows(plan.assignments[plan.assignments["hour"] == hour]):
        if K[a.tier] != p.deferrable:  # interactive load; NIW service is deferred by design
            load[R[a.region], M[a.model], K[a.tier]] += a.tokens_per_s
    return Targets(vms, spot, inst, spot_inst, routing), instance_equivalents(p, load)
