"""The planning problem's data: sets and parameters, built from the fleet configuration, the
demand to cover and the state of the fleet now. A frozen value; the model builder reads only
this.

Units: demand in tokens/s (input + output) averaged over the hour at the tier's planning
quantile; NIW arrivals and backlog in (tokens/s)·h, i.e. tokens ÷ 3600; money in $.

The fleet's numbers (θ with headroom at the series' token mix, instances per VM, prices,
quotas, lead and load times, each model's cheapest VM type per region) come from
``planner.fleet_index``, whose docstring has their algebra.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from planner.config import FleetConfig, config_hash
from planner.fleet_index import fleet_index
from planner.ilp.demand import trough_shares
from planner.ilp.frames import rows
from planner.utc import naive_utc

RG = tuple[str, str]
RMG = tuple[str, str, str]


@dataclass(frozen=True)
class FleetState:
    """What runs at the moment of planning (before hour 1)."""

    vms: Mapping[RG, int]
    spot_vms: Mapping[RG, int] = field(default_factory=dict)
    instances: Mapping[RMG, int] = field(default_factory=dict)
    spot_instances: Mapping[RMG, int] = field(default_factory=dict)
    niw_backlog: Mapping[str, float] = field(default_factory=dict)  # model -> (tokens/s)·h

    def to_json(self) -> str:
        """The state as JSON (each mapping a list of [*key, value] rows, sorted)."""

        def pairs(mapping: Mapping[Any, Any]) -> list[list[Any]]:
            return [[*k, v] if isinstance(k, tuple) else [k, v] for k, v in sorted(mapping.items())]

        return json.dumps({name: pairs(getattr(self, name)) for name in STATE_FIELDS})

    @classmethod
    def from_json(cls, text: str) -> FleetState:
        def mapping(rows: list[list[Any]]) -> dict[Any, Any]:
            return {(tuple(r[:-1]) if len(r) > 2 else r[0]): r[-1] for r in rows}

        d = json.loads(text)
        return cls(**{name: mapping(d[name]) for name in STATE_FIELDS})


STATE_FIELDS = ("vms", "spot_vms", "instances", "spot_instances", "niw_backlog")


def state_from_config(cfg: FleetConfig) -> FleetState:
    """The running VMs and instances the configuration declares (no spot, no backlog)."""
    vms = {(e.region, e.vm_type): e.running for e in cfg.fleet}
    instances = {
        (e.region, m, e.vm_type): n for e in cfg.fleet for m, n in e.instances.items() if n
    }
    return FleetState(vms=vms, instances=instances)


@dataclass(frozen=True)
class PlanningData:
    as_of: datetime
    start: datetime  # start of hour 1
    hours: tuple[datetime, ...]
    minutes_to_start: float  # Δ0: minutes from as_of to the start of hour 1
    regions: tuple[str, ...]
    vm_types: tuple[str, ...]
    models: tuple[str, ...]
    interactive: tuple[str, ...]
    deferrable: str | None
    demand: Mapping[tuple[str, str, str, int], float]  # (r, m, k, t) interactive tokens/s
    niw_arrivals: Mapping[tuple[str, int], float]  # (m, t) (tokens/s)·h
    routes: Mapping[tuple[str, str], tuple[str, ...]]  # (r0, k) -> allowed serving regions
    latency: Mapping[RG, float]
    theta: Mapping[tuple[str, str, str], float]  # (m, g, k) effective tokens/s per instance
    instances_per_vm: Mapping[tuple[str, str], int]  # (m, g)
    load_minutes: Mapping[tuple[str, str], float]  # (m, g)
    offered: frozenset[tuple[str, str]]  # (r, m)
    min_instances: Mapping[str, int]
    price: Mapping[RG, float]
    spot_price: Mapping[RG, float]
    quota: Mapping[RG, int]
    spot_cap: Mapping[RG, int]
    lead_minutes: Mapping[str, float]  # g
    cheapest_vm_type: Mapping[tuple[str, str], str]  # (r, m) -> g, planner.fleet_index
    deadline_h: int
    unmet_penalty: Mapping[str, float]
    churn_cost: float
    latency_penalty: float
    max_vm_change: int | None
    integer_placement_h: int
    state: FleetState
    config_hash: str
    forecast_origin: datetime | None = None
    # trough filling (planner.trough_filling): NIW is served from what the plan holds idle
    # beyond the hour's mean interactive load; trough_share[(r, m, k, t)] = α of
    # planner.ilp.constraints.add_trough_filling
    trough_filling: bool = False
    trough_share: Mapping[tuple[str, str, str, int], float] = field(default_factory=dict)

    @property
    def T(self) -> range:  # noqa: N802 - the set's name in the model's algebra
        return range(1, len(self.hours) + 1)

    def committed(self, t: int) -> bool:
        """Hour t's model placement is integer (see PlannerSettings.integer_placement_h)."""
        return t <= self.integer_placement_h

    def runs_on(self, m: str, g: str) -> bool:
        return (m, g) in self.instances_per_vm

    def placements(self) -> list[RMG]:
        """(r, m, g) where an instance can exist: model offered in r, runnable on g, quota."""
        return [
            (r, m, g)
            for r in self.regions
            for m in self.models
            for g in self.vm_types
            if (r, m) in self.offered and self.runs_on(m, g) and self.quota.get((r, g), 0) > 0
        ]

    def can_add_vm(self, g: str, t: int) -> bool:
        """A VM serving in hour t must be requested lead-time minutes before the hour starts."""
        return (t - 1) * 60 + self.minutes_to_start >= self.lead_minutes[g]

    def load_loss(self, m: str, g: str, t: int) -> float:
        """Share of hour t an instance started for it spends loading instead of serving.

        A start for hour t loads in the first ℓ minutes of the hour (on the VM it will run
        on); for hour 1 the minutes between now and the hour, Δ0, can be used first. So a
        redeploy onto a running VM costs ℓ of that VM's time, and a new VM costs L before
        the hour (provisioning) plus ℓ into it."""
        ahead = self.minutes_to_start if t == 1 else 0.0
        return min(1.0, max(0.0, self.load_minutes[(m, g)] - ahead) / 60.0)

    def mean_share(self, r: str, m: str, k: str, t: int) -> float:
        """α[r,m,k,t]: the hour's mean interactive load of tier k in r as a share of what the
        program sizes for it (1: none known, the conservative value)."""
        return self.trough_share.get((r, m, k, t), 1.0)

    def niw_window(self, m: str, t: int) -> float:
        """The NIW backlog allowed at the end of hour t: work that arrived in hour τ must be
        done by the end of hour τ + W − 1 (conservative at hourly resolution: a request of
        10:30 with a 1-hour deadline is served within hour 10), so only arrivals of hours
        t − W + 2 … t may still wait. The carried-in backlog counts as arriving at hour 0."""
        first = max(1, t - self.deadline_h + 2)
        window = sum(self.niw_arrivals.get((m, tau), 0.0) for tau in range(first, t + 1))
        if t <= self.deadline_h - 2:
            window += self.state.niw_backlog.get(m, 0.0)
        return window


def plan_horizon(cfg: FleetConfig, as_of: datetime) -> int:
    """Forecast hours a plan made at ``as_of`` needs: the horizon from the next full hour,
    counted from origin = the hour of ``as_of`` (one more when not on the hour)."""
    return cfg.planner.horizon_h + (1 if as_of > _floor_hour(as_of) else 0)


def build_data(
    cfg: FleetConfig,
    demand: pd.DataFrame,
    state: FleetState,
    as_of: datetime,
    input_share: Mapping[tuple[str, str], float] | None = None,
    horizon: int | None = None,
    forecast_origin: datetime | None = None,
    interactive_mean: pd.DataFrame | None = None,
) -> PlanningData:
    """Assemble the planning data.

    ``demand``: rows (hour, region, model, tier, value) with value in tokens/s for the hours to
    plan (missing rows are zero demand). ``as_of``: when the plan is made; hour 1 starts at the
    next full hour (or at ``as_of`` if it is on the hour). ``input_share``: φ per (model, tier).
    ``interactive_mean``: rows of the same shape, the interactive tiers' mean token rate per
    hour (:func:`planner.ilp.demand.interactive_means`), read by trough filling.
    """
    as_of = naive_utc(as_of).to_pydatetime()
    start = as_of if as_of == _floor_hour(as_of) else _floor_hour(as_of) + timedelta(hours=1)
    H = horizon or cfg.planner.horizon_h
    hours = tuple(start + timedelta(hours=i) for i in range(H))
    index = {h: i + 1 for i, h in enumerate(hours)}
    interactive = tuple(t.id for t in cfg.tiers if t.kind == "interactive")
    deferrable = next((t.id for t in cfg.tiers if t.kind == "deferrable"), None)
    dem, niw = _bin_demand(demand, index, interactive, deferrable)
    niw_tier = cfg.tier(deferrable) if deferrable else None
    spot_ok = bool(niw_tier and niw_tier.spot_allowed)
    return PlanningData(
        as_of=as_of,
        start=start,
        hours=hours,
        minutes_to_start=(start - as_of).total_seconds() / 60.0,
        regions=tuple(cfg.region_ids),
        vm_types=tuple(cfg.vm_type_ids),
        models=tuple(cfg.model_ids),
        interactive=interactive,
        deferrable=deferrable,
        demand=dem,
        niw_arrivals=niw,
        **_network(cfg, interactive),
        **_fleet_numbers(cfg, input_share, spot_ok),
        **_settings(cfg),
        deadline_h=int(niw_tier.deadline_h or 24) if niw_tier else 24,
        state=state,
        config_hash=config_hash(cfg),
        forecast_origin=naive_utc(forecast_origin).to_pydatetime() if forecast_origin else None,
        trough_share=trough_shares(cfg, dem, index, interactive_mean),
    )


def _network(cfg: FleetConfig, interactive: tuple[str, ...]) -> dict[str, Any]:
    """PlanningData's network fields: each region's allowed targets per interactive tier
    (latency within the tier's routing budget), the latencies, where each model is offered and
    its minimum instances."""
    budget = {k: cfg.tier(k).routing_budget_ms for k in interactive}
    return {
        "routes": {
            (r0.id, k): tuple(r for r in cfg.region_ids if r0.latency_ms[r] <= budget[k])
            for r0 in cfg.regions
            for k in interactive
        },
        "latency": {(r.id, o): ms for r in cfg.regions for o, ms in r.latency_ms.items()},
        "offered": frozenset((r, m.id) for m in cfg.models for r in (m.regions or cfg.region_ids)),
        "min_instances": {m.id: m.min_instances for m in cfg.models},
    }


def _settings(cfg: FleetConfig) -> dict[str, Any]:
    """PlanningData's fields read from the planner settings: penalties, churn cost, limits."""
    s = cfg.planner
    return {
        "unmet_penalty": dict(s.unmet_penalty),
        "churn_cost": s.churn_cost_per_vm,
        "latency_penalty": s.latency_penalty_per_ms,
        "max_vm_change": s.max_vm_change_per_hour,
        "integer_placement_h": s.integer_placement_h,
        "trough_filling": s.trough_filling,
    }


def _bin_demand(
    demand: pd.DataFrame,
    index: Mapping[datetime, int],
    interactive: tuple[str, ...],
    niw: str | None,
) -> tuple[dict[tuple[str, str, str, int], float], dict[tuple[str, int], float]]:
    """The demand rows summed per (r, m, k, t) of the interactive tiers and per (m, t) of NIW;
    rows outside the horizon, not positive or not finite are left out."""
    dem: dict[tuple[str, str, str, int], float] = {}
    arrivals: dict[tuple[str, int], float] = {}
    for row in rows(demand):
        t = index.get(naive_utc(row.hour).to_pydatetime())
        if t is None or row.value <= 0 or not math.isfinite(row.value):
            continue
        if row.tier == niw:
            arrivals[(row.model, t)] = arrivals.get((row.model, t), 0.0) + float(row.value)
        elif row.tier in interactive:
            key = (row.region, row.model, row.tier, t)
            dem[key] = dem.get(key, 0.0) + float(row.value)
    return dem, arrivals


def _fleet_numbers(
    cfg: FleetConfig, input_share: Mapping[tuple[str, str], float] | None, spot_ok: bool
) -> dict[str, Any]:
    """PlanningData's fleet fields, read off the fleet index as mappings in the config's order
    (model by model, each model's VM types as listed; fleet entries)."""
    fleet = fleet_index(cfg)
    if cfg.planner.interactive_sizing == "latency":  # the calibrated model's θ, on target
        from planner.ilp.sizing import latency_theta

        theta = latency_theta(cfg, input_share)
    else:
        theta = fleet.theta(input_share, headroom=True)
    pos = fleet.position
    mg = {
        (m.id, g): (pos["models"][m.id], pos["vm_types"][g]) for m in cfg.models for g in m.vm_types
    }
    rg = {
        (e.region, e.vm_type): (pos["regions"][e.region], pos["vm_types"][e.vm_type])
        for e in cfg.fleet
    }
    cheapest = fleet.cheapest_vm_type(theta)
    return {
        "theta": {
            (m, g, k): float(theta[(*ij, q)])
            for (m, g), ij in mg.items()
            for q, k in enumerate(fleet.tiers)
        },
        "instances_per_vm": {key: int(fleet.ipv[ij]) for key, ij in mg.items()},
        "load_minutes": {key: float(fleet.load_min[ij]) for key, ij in mg.items()},
        "price": {key: float(fleet.price[aj]) for key, aj in rg.items()},
        "spot_price": {key: float(fleet.spot_price[aj]) for key, aj in rg.items()},
        "quota": {key: int(fleet.quota[aj]) for key, aj in rg.items()},
        "spot_cap": {
            key: int(fleet.spot_available[aj]) if spot_ok else 0 for key, aj in rg.items()
        },
        "lead_minutes": {g: float(fleet.lead_min[j]) for j, g in enumerate(fleet.vm_types)},
        "cheapest_vm_type": {
            (r, m): fleet.vm_types[cheapest[a, i]]
            for a, r in enumerate(fleet.regions)
            for i, m in enumerate(fleet.models)
        },
    }


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)
