"""Planning against the warehouse: forecasts at the plan's origin, the state now and the
previous plan for a warm start, then the planner; the plan is verified, stored and published.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from flows.forecasting import run_forecast
from flows.publish import export_plan
from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig
from planner.ilp.data import FleetState, PlanningData, build_data, state_from_config
from planner.ilp.demand import input_shares, planning_demand
from planner.ilp.plan import Plan, SolverFacts
from planner.ilp.planner import make_plan, solver_settings
from planner.ilp.verify import Verification
from validation.plans import PlanTables

log = logging.getLogger(__name__)
TABLES = ("vms", "instances", "routing", "niw", "actions", "costs", "unmet", "assignments")


@dataclass
class PlanRun:
    plan: Plan
    check: Verification
    export_path: Path | None
    previous_plan_id: str | None
    forecast: dict[str, Any]


def _naive(t: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def load_plan(con: duckdb.DuckDBPyConnection, plan_id: str) -> Plan:
    header = run(con, "plans/plan_header", plan_id=plan_id).df().iloc[0]
    frames = {name: run(con, f"plans/plan_{name}", plan_id=plan_id).df() for name in TABLES}
    facts = SolverFacts(
        status=header["status"],
        objective=float(header["objective"]) if pd.notna(header["objective"]) else float("nan"),
        gap=float(header["gap"]) if pd.notna(header["gap"]) else float("nan"),
        dual_bound=float(header["dual_bound"]) if pd.notna(header["dual_bound"]) else float("nan"),
        solve_seconds=float(header["solve_seconds"]),
        build_seconds=float(header["build_seconds"]),
        scip_version=header["scip_version"],
        config_hash=header["config_hash"],
        fallback=bool(header["fallback"]),
        fallback_reason=header["fallback_reason"],
        warm_start=header["warm_start"] or "none",
    )
    start = pd.Timestamp(header["start"]).to_pydatetime()
    return Plan(
        plan_id=plan_id,
        as_of=pd.Timestamp(header["as_of"]).to_pydatetime(),
        start=start,
        hours=tuple(start + timedelta(hours=i) for i in range(int(header["hours"]))),
        forecast_origin=pd.Timestamp(header["forecast_origin"]).to_pydatetime()
        if pd.notna(header["forecast_origin"])
        else None,
        solver=facts,
        **frames,
    )


def previous_plan(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp) -> Plan | None:
    """The newest verified plan made before ``as_of`` that covers the current hour."""
    row = run(con, "plans/latest_plan_covering", as_of=as_of, hour=as_of.floor("h")).fetchone()
    return load_plan(con, row[0]) if row else None


def ensure_forecasts(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, origin: pd.Timestamp, horizon: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    frame = run(con, "plans/forecasts_at", origin=origin).df()
    if not frame.empty and int(frame["h"].max()) >= horizon:
        return frame, {"origin": origin, "reused": True}
    stored, info = run_forecast(con, cfg, origin.to_pydatetime(), horizon)
    return stored, info


def planning_data(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    as_of: pd.Timestamp,
    state: FleetState,
    demand: pd.DataFrame | None = None,
) -> tuple[PlanningData, dict[str, Any]]:
    """What a plan made at ``as_of`` is built from: the forecasts from origin = its hour (made
    now if missing) unless ``demand`` is given, the week's token mix, and ``state``."""
    origin = as_of.floor("h")
    info: dict[str, Any] = {"origin": origin}
    if demand is None:
        horizon = cfg.planner.horizon_h + (1 if as_of > origin else 0)
        forecasts, info = ensure_forecasts(con, cfg, origin, horizon)
        demand = planning_demand(forecasts, cfg)
    shares = input_shares(run(con, "plans/history_for_shares", as_of=origin).df())
    data = build_data(cfg, demand, state, as_of.to_pydatetime(), shares, forecast_origin=origin)
    return data, info


def run_plan(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    as_of: datetime,
    out_root: Path | None,
    state: FleetState | None = None,
) -> PlanRun:
    """Plan the hours from the next full hour after ``as_of``; store, verify and publish."""
    now = _naive(as_of)
    previous = previous_plan(con, now)
    if state is None:
        state = (
            previous.state_at(now.floor("h")) if previous is not None else state_from_config(cfg)
        )
    data, finfo = planning_data(con, cfg, now, state)
    plan, check = make_plan(data, solver_settings(cfg), previous)
    published: list[Path] = []

    def publish() -> Path | None:
        if out_root is None or not check.ok:
            return None
        published.append(export_plan(plan, check, out_root))
        return published[-1]

    store_plan(con, plan, check, state, publish)
    if not check.ok:
        log.error("plan %s not published: %s", plan.plan_id, "; ".join(check.violations[:5]))
    path = published[-1] if published else None
    return PlanRun(plan, check, path, previous.plan_id if previous else None, finfo)


def state_json(state: FleetState) -> str:
    def pairs(mapping: Any) -> list[list[Any]]:
        return [[*k, v] if isinstance(k, tuple) else [k, v] for k, v in sorted(mapping.items())]

    return json.dumps(
        {
            "vms": pairs(state.vms),
            "spot_vms": pairs(state.spot_vms),
            "instances": pairs(state.instances),
            "spot_instances": pairs(state.spot_instances),
            "niw_backlog": pairs(state.niw_backlog),
        }
    )


def state_from_json(text: str) -> FleetState:
    d = json.loads(text)

    def mapping(rows: list[list[Any]]) -> dict[Any, Any]:
        return {(tuple(r[:-1]) if len(r) > 2 else r[0]): r[-1] for r in rows}

    return FleetState(
        vms=mapping(d["vms"]),
        spot_vms=mapping(d["spot_vms"]),
        instances=mapping(d["instances"]),
        spot_instances=mapping(d["spot_instances"]),
        niw_backlog=mapping(d["niw_backlog"]),
    )


def rebuild_data(con: duckdb.DuckDBPyConnection, cfg: FleetConfig, plan: Plan) -> PlanningData:
    """The planning data a stored plan was made from (its forecasts, token mix and state)."""
    header = run(con, "plans/plan_header", plan_id=plan.plan_id).df().iloc[0]
    origin = pd.Timestamp(plan.forecast_origin or plan.as_of).floor("h")
    forecasts = run(con, "plans/forecasts_at", origin=origin).df()
    shares = input_shares(run(con, "plans/history_for_shares", as_of=origin).df())
    return build_data(
        cfg,
        planning_demand(forecasts, cfg),
        state_from_json(header["state"]),
        plan.as_of,
        shares,
        horizon=len(plan.hours),
        forecast_origin=origin,
    )


def store_plan(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    check: Verification,
    state: FleetState,
    publish: Callable[[], Path | None] = lambda: None,
) -> None:
    """Store the plan in one transaction; ``publish`` (the export) runs inside it, so a plan
    is in the warehouse if and only if its files were published (or publishing was off)."""
    s = plan.summary()
    header = pd.DataFrame(
        [
            {
                "plan_id": plan.plan_id,
                "as_of": plan.as_of,
                "start": plan.start,
                "hours": len(plan.hours),
                "forecast_origin": plan.forecast_origin,
                "status": s["status"],
                "objective": s["objective"],
                "gap": s["gap"],
                "dual_bound": s["dual_bound"],
                "solve_seconds": s["solve_seconds"],
                "build_seconds": s["build_seconds"],
                "scip_version": s["scip_version"],
                "config_hash": s["config_hash"],
                "fallback": s["fallback"],
                "fallback_reason": s["fallback_reason"],
                "warm_start": s["warm_start"],
                "total_cost": plan.total_cost,
                "verified": check.ok,
                "violations": "; ".join(check.violations) or None,
                "export_path": None,
                "state": state_json(state),
                "created_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
            }
        ]
    )
    frames = {name: getattr(plan, name).assign(plan_id=plan.plan_id) for name in TABLES}
    PlanTables.validate(frames)
    con.execute("BEGIN")
    try:
        run(con, "plans/delete_plan", plan_id=plan.plan_id)
        for name in TABLES:
            run(con, f"plans/delete_plan_{name}", plan_id=plan.plan_id)
        con.register("staged_plan", header)
        run(con, "plans/insert_plan")
        con.unregister("staged_plan")
        for name, frame in frames.items():
            if frame.empty:
                continue
            columns = ["plan_id", *[c for c in frame.columns if c != "plan_id"]]
            con.register(f"staged_{name}", frame[columns])
            try:
                run(con, f"plans/insert_plan_{name}")
            finally:
                con.unregister(f"staged_{name}")
        path = publish()
        if path is not None:
            run(con, "plans/set_export_path", path=str(path), plan_id=plan.plan_id)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
