"""One consistent read of what the metrics report, taken per scrape.

The newest published plan (header, first-hour VMs and instances, costs, unmet demand, and the
fleet it started from: what ran when it was made), measured demand of the newest complete
hour against the newest forecast made for it, the forecast for the plan's first hour, how
fresh each stage's data is, and the last hourly run's status file (outcome and data-quality
gate). The warehouse is opened read-only; when a writer holds it, the source serves its last
good read and says so (``sageserve_metrics_source_up{source="warehouse"} 0``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from flows.planning import plan_rows
from flows.run_status import read_run
from flows.warehouse.connection import WarehouseError, connect
from flows.warehouse.sqlfiles import run
from planner.ilp.data import FleetState

log = logging.getLogger(__name__)
COUNTS = ["region", "vm_type", "on_demand", "spot"]
INSTANCES = ["region", "model", "vm_type", "on_demand", "spot"]


@dataclass(frozen=True)
class WarehouseView:
    """What the warehouse says (everything but the run status file)."""

    plan: dict[str, Any] | None = None
    planned_vms: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COUNTS))
    planned_instances: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=INSTANCES))
    running_vms: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COUNTS))
    running_instances: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=INSTANCES))
    costs: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["component", "horizon", "first_hour"])
    )
    unmet: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["tier", "tokens_per_s"])
    )
    demand_hour: pd.Timestamp | None = None
    demand: pd.DataFrame = field(default_factory=pd.DataFrame)
    next_forecast: pd.DataFrame = field(default_factory=pd.DataFrame)
    newest: dict[str, pd.Timestamp | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    taken_at: datetime
    warehouse: WarehouseView
    run: dict[str, Any] | None
    up: dict[str, bool]  # per source: read now (True) or stale / missing (False)
    errors: dict[str, str] = field(default_factory=dict)


def read_warehouse(con: duckdb.DuckDBPyConnection) -> WarehouseView:
    """Everything the metrics need from the warehouse, in one read-only pass."""
    fresh = run(con, "metrics/freshness").df().iloc[0]
    newest = {
        "requests": _ts(fresh["newest_arrival"]),
        "demand_mart": _ts(fresh["newest_demand_hour"]),
        "forecasts": _ts(fresh["newest_forecast_origin"]),
        "plans": _ts(fresh["newest_plan_created"]),
    }
    demand_hour = newest["demand_mart"]
    demand = (
        run(con, "metrics/demand_vs_forecast", hour=demand_hour).df()
        if demand_hour is not None
        else pd.DataFrame()
    )
    header = run(con, "metrics/latest_plan").df()
    if header.empty:
        return WarehouseView(demand_hour=demand_hour, demand=demand, newest=newest)
    plan = {str(k): v for k, v in header.iloc[0].to_dict().items()}
    pid, start = plan["plan_id"], pd.Timestamp(plan["start"])
    vms, instances, costs, unmet = (
        plan_rows(con, name, pid) for name in ("vms", "instances", "costs", "unmet")
    )
    first_costs = costs[costs["hour"] == start].groupby("component")["dollars"].sum()
    all_costs = costs.groupby("component")["dollars"].sum()
    running_vms, running_instances = _running(plan.get("state"))
    return WarehouseView(
        plan=plan,
        planned_vms=vms.loc[vms["hour"] == start, COUNTS].reset_index(drop=True),
        planned_instances=instances.loc[instances["hour"] == start, INSTANCES].reset_index(
            drop=True
        ),
        running_vms=running_vms,
        running_instances=running_instances,
        costs=pd.DataFrame(
            {
                "component": all_costs.index,
                "horizon": all_costs.to_numpy(),
                "first_hour": first_costs.reindex(all_costs.index, fill_value=0.0).to_numpy(),
            }
        ),
        unmet=unmet[unmet["hour"] == start].groupby("tier")["tokens_per_s"].sum().reset_index(),
        demand_hour=demand_hour,
        demand=demand,
        next_forecast=run(con, "metrics/forecast_for_hour", hour=start, as_of=plan["as_of"]).df(),
        newest=newest,
    )


def _running(state: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fleet the plan started from (what ran when it was made), as count frames."""
    if not isinstance(state, str) or not state:
        return pd.DataFrame(columns=COUNTS), pd.DataFrame(columns=INSTANCES)
    s = FleetState.from_json(state)
    vms = pd.DataFrame(
        [
            {
                "region": r,
                "vm_type": g,
                "on_demand": s.vms.get((r, g), 0),
                "spot": s.spot_vms.get((r, g), 0),
            }
            for r, g in sorted(set(s.vms) | set(s.spot_vms))
        ],
        columns=COUNTS,
    )
    keys = sorted(set(s.instances) | set(s.spot_instances))
    instances = pd.DataFrame(
        [
            {
                "region": r,
                "model": m,
                "vm_type": g,
                "on_demand": s.instances.get((r, m, g), 0),
                "spot": s.spot_instances.get((r, m, g), 0),
            }
            for r, m, g in keys
        ],
        columns=INSTANCES,
    )
    return vms, instances


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return None
    t = pd.Timestamp(value)
    return None if pd.isna(t) else t


@dataclass
class WarehouseSource:
    """Reads a :class:`Snapshot` per scrape.

    DuckDB lets one process write *or* several read: a scrape holding the file read-only
    would make a flow's write fail. So the warehouse is opened only when it changed (its
    files' modification times) and has then been quiet for ``quiet_s`` seconds (a run's steps
    follow each other within seconds); otherwise the last read is served. A scrape that
    finds a writer anyway serves the last read too, with ``up["warehouse"]`` False. The status
    file is read every time (a small JSON file, written atomically)."""

    warehouse: Path
    outputs: Path
    memory_limit: str = "256MB"
    quiet_s: float = 0.0  # the endpoint uses 30 s; a one-off read (the CLI) none
    _last: WarehouseView | None = field(default=None, repr=False)
    _read_stamp: tuple[int, ...] | None = field(default=None, repr=False)
    _up: bool = field(default=False, repr=False)

    def _stamp(self) -> tuple[int, ...]:
        files = (self.warehouse, self.warehouse.with_name(self.warehouse.name + ".wal"))
        return tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in files)

    def _due(self, stamp: tuple[int, ...], now_ns: int) -> bool:
        if self._last is None:
            return True
        if stamp == self._read_stamp and self._up:
            return False
        return (now_ns - max(stamp)) / 1e9 >= self.quiet_s

    def load(self, now: datetime | None = None) -> Snapshot:
        taken = now or datetime.now(UTC)
        errors: dict[str, str] = {}
        stamp = self._stamp()
        if self._due(stamp, time.time_ns()):
            try:
                with connect(self.warehouse, memory_limit=self.memory_limit, read_only=True) as con:
                    self._last = read_warehouse(con)
                self._read_stamp, self._up = stamp, True
            except (WarehouseError, duckdb.Error) as exc:
                self._up = False
                errors["warehouse"] = str(exc)
                log.warning("metrics: warehouse not read (%s); serving the last read", exc)
        up = {"warehouse": self._up, "run_status": False}
        try:
            status = read_run(self.outputs)
            up["run_status"] = status is not None
        except (OSError, ValueError) as exc:
            status = None
            errors["run_status"] = str(exc)
        return Snapshot(taken, self._last or WarehouseView(), status, up, errors)
