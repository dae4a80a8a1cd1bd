"""The Plan: what to run, where to send traffic and what to do, hour by hour, with the solver
facts behind it. A value: built from solution values (or by the greedy fallback), never None,
and checked by :mod:`planner.ilp.verify` without the solver."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from planner.ilp.data import FleetState
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
    # "none" (no dual bound: the gap is unknown), "unknown" (not recorded, e.g. a stored plan);
    # a decomposed plan: "LP relaxation (… safe dual bound)" or "Lagrangian (region LPs|MIPs)"
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
            if self.method.startswith("lagrangian decomposition"):
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
