"""Recompute every constraint family from a Plan, without the solver.

Tests run it on every plan they make and the hourly flow runs it before publishing: a plan
that violates a hard constraint is a bug, not a plan. Unmet demand and late NIW are not
violations (they are reported by the plan); a routing weight to a region beyond the tier's
latency budget, a VM over quota or an addition inside its lead time are.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from planner.ilp.data import PlanningData
from planner.ilp.frames import rows
from planner.ilp.plan import Plan

TOL = 1e-4  # relative tolerance on continuous quantities (LP feasibility tolerance is 1e-6)


@dataclass
class Verification:
    violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, family: str, key: object, message: str) -> None:
        self.violations.append(f"{family}[{key}]: {message}")


def verify(plan: Plan, data: PlanningData) -> Verification:
    out = Verification()
    t_of = {h: t for t, h in enumerate(data.hours, start=1)}
    _demand_cover(plan, data, out, t_of)
    _routing(plan, data, out, t_of)
    _capacity(plan, data, out, t_of)
    _packing_and_quota(plan, data, out, t_of)
    _lead_times(plan, data, out, t_of)
    _niw(plan, data, out)
    _availability(plan, data, out, t_of)
    return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def _demand_cover(
    plan: Plan, data: PlanningData, out: Verification, t_of: dict[datetime, int]
) -> None:
    routed: dict[tuple[Any, ...], float] = defaultdict(float)
    for r in rows(plan.routing):
        if r.tier in data.interactive:
            routed[(r.source_region, r.model, r.tier, t_of[r.hour])] += r.tokens_per_s
    unmet: dict[tuple[Any, ...], float] = defaultdict(float)
    for u in rows(plan.unmet):
        unmet[(u.region, u.model, u.tier, t_of[u.hour])] += u.tokens_per_s
    for key, d in data.demand.items():
        if not _close(routed[key] + unmet[key], d):
            out.add(
                "demand_cover", key, f"served {routed[key]:.3f} + unmet {unmet[key]:.3f} ≠ {d:.3f}"
            )


def _routing(plan: Plan, data: PlanningData, out: Verification, t_of: dict[datetime, int]) -> None:
    sums = plan.routing.groupby(["hour", "source_region", "model", "tier"])["weight"].sum()
    for key, total in sums.items():
        if not _close(float(total), 1.0):
            out.add("routing_weights", key, f"weights sum to {total:.6f}")
    for r in rows(plan.routing):
        if r.tier in data.interactive and r.weight > 0:
            if r.target_region not in data.routes[(r.source_region, r.tier)]:
                out.add(
                    "routing_budget",
                    (r.source_region, r.target_region, r.tier),
                    f"latency {data.latency[(r.source_region, r.target_region)]} ms",
                )
            if (r.target_region, r.model) not in data.offered:
                out.add("routing_offered", (r.target_region, r.model), "model not offered there")


def _capacity(plan: Plan, data: PlanningData, out: Verification, t_of: dict[datetime, int]) -> None:
    inst = {
        (i.region, i.model, i.vm_type, t_of[i.hour]): (i.on_demand, i.spot)
        for i in rows(plan.instances)
    }
    load: dict[tuple[Any, ...], float] = defaultdict(float)
    spot_load: dict[tuple[Any, ...], float] = defaultdict(float)
    assigned: dict[tuple[Any, ...], float] = defaultdict(float)
    # trough filling: NIW on on-demand instances is checked against the idle capacity beyond
    # the mean interactive load (planner.ilp.constraints.add_trough_filling), not the peak row
    trough: dict[tuple[Any, ...], float] = defaultdict(float)
    for a in rows(plan.assignments):
        t = t_of[a.hour]
        key = (a.region, a.model, a.vm_type, t)
        share = a.tokens_per_s / data.theta[(a.model, a.vm_type, a.tier)]
        interactive = a.tier in data.interactive
        if a.spot:
            spot_load[key] += share
        elif data.trough_filling and not interactive:
            trough[key] += share
        else:
            load[key] += share
            if data.trough_filling:
                trough[key] += share * data.mean_share(a.region, a.model, a.tier, t)
        if interactive:
            assigned[(a.region, a.model, a.tier, t)] += a.tokens_per_s
    for (r, m, g, t), (od, sp) in _starts(plan, data, t_of).items():
        loss = data.load_loss(m, g, t)
        load[(r, m, g, t)] += od * loss
        spot_load[(r, m, g, t)] += sp * loss
        if (r, m, g, t) in trough:
            trough[(r, m, g, t)] += od * loss
    for family, rows_ in (("capacity", load), ("trough_filling", trough)):
        for key, need in rows_.items():
            have = inst.get(key, (0, 0))[0]
            if need > have + TOL * max(1.0, have):
                out.add(family, key, f"load {need:.3f} instances > {have}")
    for key, need in spot_load.items():
        have = inst.get(key, (0, 0))[1]
        if need > have + TOL * max(1.0, have):
            out.add("spot_capacity", key, f"load {need:.3f} instances > {have}")
    inflow: dict[tuple[Any, ...], float] = defaultdict(float)
    for r in rows(plan.routing):
        if r.tier in data.interactive:
            inflow[(r.target_region, r.model, r.tier, t_of[r.hour])] += r.tokens_per_s
    for key in set(inflow) | set(assigned):
        if not _close(inflow[key], assigned[key]):
            out.add(
                "interactive_assign", key, f"routed {inflow[key]:.3f} ≠ placed {assigned[key]:.3f}"
            )


def _starts(
    plan: Plan, data: PlanningData, t_of: dict[datetime, int]
) -> dict[tuple[str, str, str, int], tuple[float, float]]:
    """Instance starts per hour, from the plan's counts: max(0, x[t] − x[t−1]), x[0] now."""
    prev = {
        k: (float(n), float(data.state.spot_instances.get(k, 0)))
        for k, n in data.state.instances.items()
    }
    out: dict[tuple[str, str, str, int], tuple[float, float]] = {}
    for i in rows(plan.instances.sort_values("hour")):
        key = (i.region, i.model, i.vm_type)
        before = prev.get(key, (0.0, 0.0))
        out[(*key, t_of[i.hour])] = (
            max(0.0, i.on_demand - before[0]),
            max(0.0, i.spot - before[1]),
        )
        prev[key] = (i.on_demand, i.spot)
    return out


def _packing_and_quota(
    plan: Plan, data: PlanningData, out: Verification, t_of: dict[datetime, int]
) -> None:
    vms = {(v.region, v.vm_type, t_of[v.hour]): (v.on_demand, v.spot) for v in rows(plan.vms)}
    used: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for i in rows(plan.instances):
        ipv = data.instances_per_vm[(i.model, i.vm_type)]
        used[(i.region, i.vm_type, t_of[i.hour])][0] += i.on_demand / ipv
        used[(i.region, i.vm_type, t_of[i.hour])][1] += i.spot / ipv
    for (r, g, t), (od, sp) in used.items():
        have = vms.get((r, g, t), (0, 0))
        if od > have[0] + 1e-6:
            out.add("vm_packing", (r, g, t), f"{od:.3f} VMs needed > {have[0]}")
        if sp > have[1] + 1e-6:
            out.add("spot_packing", (r, g, t), f"{sp:.3f} spot VMs needed > {have[1]}")
    for i in rows(plan.instances):
        if i.committed and (i.on_demand != int(i.on_demand) or i.spot != int(i.spot)):
            out.add(
                "integer_placement",
                (i.region, i.model, i.vm_type, t_of[i.hour]),
                f"{i.on_demand}, {i.spot} not whole instances",
            )
    for (r, g, t), (od, sp) in vms.items():
        if od != int(od) or sp != int(sp):
            out.add("integer_vms", (r, g, t), f"{od}, {sp} not whole VMs")
        if od + sp > data.quota.get((r, g), 0):
            out.add("quota", (r, g, t), f"{od} + {sp} > {data.quota.get((r, g), 0)}")
        if sp > data.spot_cap.get((r, g), 0):
            out.add("spot_available", (r, g, t), f"{sp} > {data.spot_cap.get((r, g), 0)}")


def _lead_times(
    plan: Plan, data: PlanningData, out: Verification, t_of: dict[datetime, int]
) -> None:
    for a in rows(plan.actions):
        t = t_of[a.hour]
        if a.kind.startswith("add_") and not data.can_add_vm(a.vm_type, t):
            out.add(
                "vm_lead_time",
                (a.region, a.vm_type, t),
                f"{a.kind} needs {data.lead_minutes[a.vm_type]} min",
            )
        if a.start_by < data.as_of - pd.Timedelta(seconds=1):
            out.add("start_by", (a.kind, a.region, t), f"must start at {a.start_by}, before now")


def _niw(plan: Plan, data: PlanningData, out: Verification) -> None:
    for model, g in plan.niw.groupby("model"):
        m = str(model)
        prev = data.state.niw_backlog.get(m, 0.0)
        for t, row in enumerate(rows(g.sort_values("hour")), start=1):
            expect = prev + row.arrivals - row.served
            if not _close(row.backlog, expect):
                out.add("niw_balance", (m, t), f"backlog {row.backlog:.3f} ≠ {expect:.3f}")
            allowed = data.niw_window(m, t)
            if row.backlog - row.late > allowed + TOL * max(1.0, allowed):
                out.add(
                    "niw_deadline",
                    (m, t),
                    f"backlog {row.backlog:.3f} - late {row.late:.3f} > {allowed:.3f}",
                )
            prev = row.backlog


def _availability(
    plan: Plan, data: PlanningData, out: Verification, t_of: dict[datetime, int]
) -> None:
    """The minimum is soft (priced in the objective; lead times can make it unreachable for the
    first hours), so a shortfall is a warning, not a violation."""
    total = plan.instances.assign(n=plan.instances["on_demand"] + plan.instances["spot"])
    have = total.groupby(["region", "model", "hour"])["n"].sum()
    for r, m in sorted({(r, m) for r, m, _ in data.placements()}):
        need = data.min_instances.get(m, 0)
        for h in data.hours:
            n = int(have.get((r, m, h), 0))
            if n < need:
                out.warnings.append(f"availability[{r},{m},{t_of[h]}]: {n} instances < {need}")
