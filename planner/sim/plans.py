"""Plans as simulator targets: the first hour of each hourly plan (the committed, integer
hour) as arrays, and the load it planned for."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from planner.ilp.plan import Plan
from planner.sim.fleet import FleetParams, Targets, home_routing
from planner.sim.policies import instance_equivalents
from planner.sim.sweep import PlanTargets

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
    view = plan.at(plan.start)
    nr, nm, ng = p.shape_rmg
    vms, spot = np.zeros((nr, ng)), np.zeros((nr, ng))
    inst, spot_inst = np.zeros((nr, nm, ng)), np.zeros((nr, nm, ng))
    for (r, g), (od, sp) in view.vms.items():
        vms[R[r], G[g]], spot[R[r], G[g]] = round(od), round(sp)
    for (r, m, g), (n, ns) in view.instances.items():
        inst[R[r], M[m], G[g]], spot_inst[R[r], M[m], G[g]] = round(n), round(ns)
    routing = home_routing(p)
    for (r0, m, k), targets in view.routing.items():
        routing[R[r0], :, M[m], K[k]] = 0.0
        for r, weight in targets.items():
            routing[R[r0], R[r], M[m], K[k]] += weight
    total = routing.sum(axis=1, keepdims=True)
    routing = np.where(total > 0, routing / np.where(total > 0, total, 1.0), home_routing(p))
    load = np.zeros((nr, nm, len(p.tiers)))
    for (r, m, k), tokens in view.served.items():
        if K[k] != p.deferrable:  # interactive load; NIW service is deferred by design
            load[R[r], M[m], K[k]] += tokens
    return Targets(vms, spot, inst, spot_inst, routing), instance_equivalents(p, load)


def plan_targets(plans: Sequence[Plan], p: FleetParams) -> PlanTargets:
    """A plan sequence as simulator targets: each plan's first hour and the load it expects."""
    pairs = [targets_of(plan, p) for plan in plans]
    return PlanTargets([t for t, _ in pairs], np.stack([e for _, e in pairs]))
