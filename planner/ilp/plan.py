"""The Plan: what to run, where to send traffic and what to do, hour by hour, with the solver
facts behind it. A value: built from solution values (or by the greedy fallback), never None,
and checked by :mod:`planner.ilp.verify` without the solver."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from planner.ilp.data import FleetState, PlanningData
from planner.ilp.frames import rows
from planner.ilp.plan_tables import PLAN_TABLES


@dataclass(frozen=True)
class SolverFacts:
    status: str
    objective: float
    gap: float
    dual_bound: float
    solve_seconds: float
    build_seconds: float
    scip_version: str
    config_hash: str
    fallback: bool = False
    fallback_reason: str | None = None
    warm_start: str = "none"
    variables: int = 0
    constraints: int = 0
    # where the dual bound behind ``gap`` comes from: "root relaxation" (LP, cuts and the
    # valid inequalities at the root node), "search tree" (branch and bound beyond the root),
    # "none" (no dual bound: the gap is unknown), "unknown" (not recorded, e.g. a stored plan)
    bound_source: str = "unknown"
    nodes: int = 0
    # how the plan was solved: "monolithic SCIP" or "lagrangian decomposition (…)" (the
    # planner picks by size, planner.ilp.planner.choose_method)
    method: str = "monolithic SCIP"

    @property
    def gap_known(self) -> bool:
        finite = math.isfinite(self.gap) and math.isfinite(self.dual_bound)
        return finite and self.bound_source != "none"

    def gap_text(self) -> str:
        """The gap and its bound's source in words, also when there is no gap."""
        if self.fallback:
            return f"unknown: SCIP returned no plan ({self.fallback_reason or self.status})"
        if not self.gap_known:
            if self.bound_source == "lagrangian decomposition":
                return "unknown: the decomposition found no plan or no bound in time"
            if not math.isfinite(self.dual_bound) or self.bound_source == "none":
                return "unknown: SCIP has no dual bound (its root LP did not finish in time)"
            return "unknown: no gap recorded"
        text = f"{self.gap:.2%}, bound from the {self.bound_source}"
        return text + (f" ({self.nodes:,} nodes)" if self.bound_source == "search tree" else "")

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("objective", "gap", "dual_bound"):
            if not math.isfinite(out[key]):
                out[key] = None
        if not self.gap_known:
            out["gap"] = None
        out["gap_text"] = self.gap_text()
        return out


RG = tuple[str, str]
RMG = tuple[str, str, str]


@dataclass(frozen=True)
class HourView:
    """What a plan has running in one hour: the one reading of its frames that the state the
    next plan starts from, the warm start, the simulator's targets and the executors'
    desired-state documents all derive from.

    vms: (region, vm_type) → (on-demand, spot) VMs
    instances: (region, model, vm_type) → (on-demand, spot) instances (fractional after the
               committed hours)
    routing: (source region, model, tier) → {target region: weight}
    served: (region, model, tier) → tokens/s the hour's assignments serve
    backlog: model → NIW backlog at the end of the hour, (tokens/s)·h
    actions: the plan's actions for the hour (rows of ``Plan.actions``)
    """

    hour: datetime
    vms: dict[RG, tuple[int, int]]
    instances: dict[RMG, tuple[float, float]]
    routing: dict[RMG, dict[str, float]]
    served: dict[RMG, float]
    backlog: dict[str, float]
    actions: tuple[Any, ...] = ()

    def state(self, backlog: dict[str, float] | None = None) -> FleetState:
        """The fleet this hour runs (instances rounded), with ``backlog`` (default: the
        hour's own) as the NIW backlog."""
        inst = self.instances
        return FleetState(
            vms={k: int(od) for k, (od, _s) in self.vms.items()},
            spot_vms={k: int(sp) for k, (_o, sp) in self.vms.items() if sp},
            instances={k: round(od) for k, (od, _s) in inst.items() if od},
            spot_instances={k: round(sp) for k, (_o, sp) in inst.items() if sp},
            niw_backlog=dict(self.backlog if backlog is None else backlog),
        )


@dataclass(frozen=True)
class Plan:
    """The plan's header, its solver facts and its detail frames, one per table of
    :data:`planner.ilp.plan_tables.PLAN_TABLES` (columns, kinds and meanings there; hours are
    UTC starts of the planned hours). :meth:`at` reads what runs in one hour."""

    plan_id: str
    as_of: datetime
    start: datetime
    hours: tuple[datetime, ...]
    forecast_origin: datetime | None
    vms: pd.DataFrame
    instances: pd.DataFrame
    assignments: pd.DataFrame
    routing: pd.DataFrame
    niw: pd.DataFrame
    actions: pd.DataFrame
    costs: pd.DataFrame
    unmet: pd.DataFrame
    solver: SolverFacts
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_cost(self) -> float:
        return float(self.costs["dollars"].sum()) if len(self.costs) else 0.0

    def gpu_hours(self, gpus_per_vm: dict[str, int]) -> float:
        vm = self.vms.assign(g=self.vms["vm_type"].map(gpus_per_vm))
        return float(((vm["on_demand"] + vm["spot"]) * vm["g"]).sum())

    def frames(self) -> dict[str, pd.DataFrame]:
        """The detail frames by table name (the registry's order)."""
        return {name: getattr(self, name) for name in PLAN_TABLES}

    def at(self, hour: datetime) -> HourView:
        """What the plan has running in ``hour``."""
        return _view(self, hour)

    def state_at(self, hour: datetime, backlog_hour: datetime | None = None) -> FleetState:
        """The fleet this plan has running in ``hour`` (its committed placement) and the NIW
        backlog it leaves at the end of ``backlog_hour`` (default: the same hour): the state
        the next plan starts from."""
        backlog = None if backlog_hour is None else self.at(backlog_hour).backlog
        return self.at(hour).state(backlog)

    def __eq__(self, other: object) -> bool:
        """Equal header, solver facts, notes and frames (dtypes included)."""
        if not isinstance(other, Plan):
            return NotImplemented
        head = ("plan_id", "as_of", "start", "hours", "forecast_origin", "notes")
        return (
            all(getattr(self, k) == getattr(other, k) for k in head)
            and self.solver.as_dict() == other.solver.as_dict()
            and all(f.equals(other.frames()[n]) for n, f in self.frames().items())
        )

    def summary(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "as_of": self.as_of,
            "start": self.start,
            "hours": len(self.hours),
            "total_cost": round(self.total_cost, 2),
            "vm_hours": float((self.vms["on_demand"] + self.vms["spot"]).sum()),
            "unmet_tokens": float(self.unmet["tokens_per_s"].sum() * 3600),
            "niw_late_tokens": float(self.niw["late"].sum() * 3600) if len(self.niw) else 0.0,
            "actions": len(self.actions),
            **self.solver.as_dict(),
        }


def _view(plan: Plan, hour: datetime) -> HourView:
    def at(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["hour"] == hour]

    vms = {(r.region, r.vm_type): (r.on_demand, r.spot) for r in rows(at(plan.vms))}
    inst = {(r.region, r.model, r.vm_type): (r.on_demand, r.spot) for r in rows(at(plan.instances))}
    routing: dict[RMG, dict[str, float]] = {}
    for w in rows(at(plan.routing)):
        out = routing.setdefault((w.source_region, w.model, w.tier), {})
        out[w.target_region] = out.get(w.target_region, 0.0) + w.weight
    served: dict[RMG, float] = {}
    for a in rows(at(plan.assignments)):
        key = (a.region, a.model, a.tier)
        served[key] = served.get(key, 0.0) + a.tokens_per_s
    backlog = {r.model: float(r.backlog) for r in rows(at(plan.niw))}
    return HourView(hour, vms, inst, routing, served, backlog, tuple(rows(at(plan.actions))))


def plan_id(data: PlanningData, frames: dict[str, pd.DataFrame], solver: SolverFacts) -> str:
    """The plan's id: its first hour and a digest of its content (the hours it covers, when and
    from which forecast and config it was made, whether it is a fallback, and every table), so
    the same plan always has the same id and a plan whose content differs in any row has
    another. Timing facts (solve seconds) are not content."""
    digest = hashlib.sha256()
    head = (
        f"{data.config_hash}|{data.as_of.isoformat()}|{data.start.isoformat()}|"
        f"{len(data.hours)}|{data.forecast_origin}|{solver.status}|{solver.fallback}"
    )
    digest.update(head.encode())
    for name in sorted(frames):
        digest.update(f"|{name}|".encode())
        digest.update(frames[name].to_csv(index=False, float_format="%.9g").encode())
    return f"plan-{data.start:%Y%m%dT%H%M}-{digest.hexdigest()[:12]}"


def from_values(
    data: PlanningData,
    values: dict[str, dict[tuple[Any, ...], float]],
    solver: SolverFacts,
    notes: tuple[str, ...] = (),
) -> Plan:
    """The Plan of a solution (integers rounded; tiny negatives from the LP clipped)."""
    hour = {t: data.hours[t - 1] for t in data.T}
    vals = {fam: {k: max(0.0, float(val)) for k, val in d.items()} for fam, d in values.items()}

    vm_rows: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for (r, g, t), y in vals.get("y", {}).items():
        vm_rows[(t, r, g)][0] = round(y)
    for (r, g, t), z in vals.get("z", {}).items():
        vm_rows[(t, r, g)][1] = round(z)
    vms = PLAN_TABLES["vms"].frame(
        (hour[t], r, g, a, b) for (t, r, g), (a, b) in sorted(vm_rows.items())
    )

    def count(x: float, t: int) -> float:
        # committed hours hold integers; later hours instance capacity
        return float(round(x)) if data.committed(t) else x

    inst_rows: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (r, m, g, t), x in vals.get("x", {}).items():
        inst_rows[(t, r, m, g)][0] = count(x, t)
    for (r, m, g, t), x in vals.get("xs", {}).items():
        inst_rows[(t, r, m, g)][1] = count(x, t)
    instances = PLAN_TABLES["instances"].frame(
        (hour[t], r, m, g, a, b, data.committed(t))
        for (t, r, m, g), (a, b) in sorted(inst_rows.items())
    )
    assignments = _assignments(data, vals, hour)
    routing = _routing(data, vals, hour)
    niw = _niw(data, vals, hour)
    unmet = PLAN_TABLES["unmet"].frame(
        (hour[t], r, m, k, e) for (r, m, k, t), e in sorted(vals.get("e", {}).items()) if e > 1e-6
    )
    actions = derive_actions(data, vms, instances)
    costs = cost_frame(data, vals, hour)
    frames = {
        "vms": vms,
        "instances": instances,
        "assignments": assignments,
        "routing": routing,
        "niw": niw,
        "actions": actions,
        "costs": costs,
        "unmet": unmet,
    }
    return Plan(
        plan_id=plan_id(data, frames, solver),
        as_of=data.as_of,
        start=data.start,
        hours=data.hours,
        forecast_origin=data.forecast_origin,
        vms=vms,
        instances=instances,
        assignments=assignments,
        routing=routing,
        niw=niw,
        actions=actions,
        costs=costs,
        unmet=unmet,
        solver=solver,
        notes=notes,
    )


def _assignments(
    data: PlanningData, vals: dict[str, dict[tuple[Any, ...], float]], hour: dict[int, datetime]
) -> pd.DataFrame:
    records = [
        (hour[t], r, m, g, k, w, False)
        for (r, m, g, k, t), w in vals.get("w", {}).items()
        if w > 1e-9
    ]
    niw = data.deferrable or "NIW"
    records += [
        (hour[t], r, m, g, niw, v, False)
        for (r, m, g, t), v in vals.get("v", {}).items()
        if v > 1e-9
    ]
    records += [
        (hour[t], r, m, g, niw, v, True)
        for (r, m, g, t), v in vals.get("vs", {}).items()
        if v > 1e-9
    ]
    return PLAN_TABLES["assignments"].frame(
        sorted(records, key=lambda rec: (*(str(part) for part in rec[:5]), str(rec[-1])))
    )


def _routing(
    data: PlanningData, vals: dict[str, dict[tuple[Any, ...], float]], hour: dict[int, datetime]
) -> pd.DataFrame:
    """Fractions per (source region, model, tier, hour) → serving region, summing to 1 over
    the served part. Sources with no served demand keep their traffic home (weight 1)."""
    flows: dict[tuple[Any, ...], dict[str, float]] = defaultdict(dict)
    for (r0, r, m, k, t), f in vals.get("f", {}).items():
        flows[(t, r0, m, k)][r] = f
    records = []
    for t in data.T:
        for r0 in data.regions:
            for m in data.models:
                if (r0, m) not in data.offered:
                    continue
                for k in data.interactive:
                    out = flows.get((t, r0, m, k), {})
                    total = sum(out.values())
                    if total <= 1e-9:
                        records.append((hour[t], r0, m, k, r0, 1.0, 0.0))
                        continue
                    for r, f in sorted(out.items()):
                        if f > 1e-9:
                            records.append((hour[t], r0, m, k, r, f / total, f))
    served: dict[tuple[Any, ...], float] = defaultdict(float)
    for (r, m, _g, t), v in [*vals.get("v", {}).items(), *vals.get("vs", {}).items()]:
        served[(t, m, r)] += v
    if data.deferrable:
        for t in data.T:
            for m in data.models:
                total = sum(served[(t, m, r)] for r in data.regions)
                for r0 in data.regions:
                    if (r0, m) not in data.offered:
                        continue
                    if total <= 1e-9:
                        records.append((hour[t], r0, m, data.deferrable, r0, 1.0, 0.0))
                        continue
                    for r in data.regions:
                        if served[(t, m, r)] > 1e-9:
                            share = served[(t, m, r)] / total
                            records.append((hour[t], r0, m, data.deferrable, r, share, 0.0))
    return PLAN_TABLES["routing"].frame(records)


def _niw(
    data: PlanningData, vals: dict[str, dict[tuple[Any, ...], float]], hour: dict[int, datetime]
) -> pd.DataFrame:
    served: dict[tuple[Any, ...], float] = defaultdict(float)
    for (_r, m, _g, t), v in [*vals.get("v", {}).items(), *vals.get("vs", {}).items()]:
        served[(m, t)] += v
    records = [
        (
            hour[t],
            m,
            data.niw_arrivals.get((m, t), 0.0),
            served[(m, t)],
            b,
            vals.get("en", {}).get((m, t), 0.0),
        )
        for (m, t), b in sorted(vals.get("b", {}).items())
    ]
    return PLAN_TABLES["niw"].frame(records)


def derive_actions(data: PlanningData, vms: pd.DataFrame, instances: pd.DataFrame) -> pd.DataFrame:
    """What operations must do and by when: VMs to request (lead time before the hour: ready
    at the hour) or release (at the hour), models to load (at the hour, or earlier for hour 1
    when there is time; ready ℓ later) or unload (at the hour). Compared hour by hour with the
    state now for hour 1."""
    records: list[tuple[Any, ...]] = []
    prev_vm = {
        (r, g): (n, data.state.spot_vms.get((r, g), 0)) for (r, g), n in data.state.vms.items()
    }
    for t, when in enumerate(data.hours, start=1):
        now = vms[vms["hour"] == when]
        for row in rows(now):
            before = prev_vm.get((row.region, row.vm_type), (0, 0))
            for kind, after, was in (
                ("vm", row.on_demand, before[0]),
                ("spot_vm", row.spot, before[1]),
            ):
                delta = int(after - was)
                lead = timedelta(minutes=data.lead_minutes[row.vm_type])
                if delta > 0:
                    records.append(
                        (
                            f"add_{kind}",
                            row.region,
                            row.vm_type,
                            None,
                            delta,
                            when,
                            when - lead,
                            when,
                        )
                    )
                elif delta < 0:
                    records.append(
                        (f"release_{kind}", row.region, row.vm_type, None, -delta, when, when, when)
                    )
            prev_vm[(row.region, row.vm_type)] = (row.on_demand, row.spot)
        del t
    prev_inst = {
        key: (n, data.state.spot_instances.get(key, 0)) for key, n in data.state.instances.items()
    }
    for t, when in enumerate(data.hours, start=1):
        if not data.committed(t):
            break  # later placement is indicative: no load/unload actions from it
        now = instances[instances["hour"] == when]
        for row in rows(now):
            key = (row.region, row.model, row.vm_type)
            before = prev_inst.get(key, (0, 0))
            for suffix, after, was in (
                ("", row.on_demand, before[0]),
                ("_spot", row.spot, before[1]),
            ):
                delta = int(after - was)
                minutes = data.load_minutes[(row.model, row.vm_type)]
                early = timedelta(minutes=min(minutes, data.minutes_to_start) if t == 1 else 0)
                if delta > 0:
                    start = when - early
                    records.append(
                        (
                            f"load_model{suffix}",
                            row.region,
                            row.vm_type,
                            row.model,
                            delta,
                            when,
                            start,
                            start + timedelta(minutes=minutes),
                        )
                    )
                elif delta < 0:
                    records.append(
                        (
                            f"unload_model{suffix}",
                            row.region,
                            row.vm_type,
                            row.model,
                            -delta,
                            when,
                            when,
                            when,
                        )
                    )
            prev_inst[key] = (row.on_demand, row.spot)
    frame = PLAN_TABLES["actions"].frame(records)
    return frame.sort_values(["start_by", "kind", "region"], ignore_index=True)


def cost_frame(
    data: PlanningData, vals: dict[str, dict[tuple[Any, ...], float]], hour: dict[int, datetime]
) -> pd.DataFrame:
    """$ per hour and component (the objective's money terms; penalties excluded)."""
    cost: dict[tuple[datetime, str], float] = defaultdict(float)
    for (r, g, t), y in vals.get("y", {}).items():
        cost[(hour[t], "vm_hours")] += data.price[(r, g)] * round(y)
    for (r, g, t), z in vals.get("z", {}).items():
        cost[(hour[t], "spot_vm_hours")] += data.spot_price[(r, g)] * round(z)
    for (r, g, t), a in vals.get("ay", {}).items():
        cost[(hour[t], "provisioning")] += data.price[(r, g)] * data.lead_minutes[g] / 60 * a
    for (r, g, t), a in vals.get("az", {}).items():
        cost[(hour[t], "provisioning")] += data.spot_price[(r, g)] * data.lead_minutes[g] / 60 * a
    for fam, prices in (("u", data.price), ("us", data.spot_price)):
        for (r, m, g, t), u in vals.get(fam, {}).items():
            share = data.load_loss(m, g, t) / data.instances_per_vm[(m, g)]
            cost[(hour[t], "model_loads")] += prices[(r, g)] * share * u
    records = [(h, comp, d) for (h, comp), d in sorted(cost.items()) if abs(d) > 1e-9]
    return PLAN_TABLES["costs"].frame(records)
