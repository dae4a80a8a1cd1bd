"""Planning against the warehouse: forecasts at the plan's origin, the fleet running now and
the plan in force for a warm start, then the planner; the plan is verified, stored and
published (warehouse commit first, files after, see flows.publish).

The fleet a plan starts from is what the executor applied (``plan_applications``, newest per
region before the plan's first hour); for regions never applied, the plan in force for an
earlier hour; else the configuration. Never the plan being replaced: a rerun of an hour starts
where the first run started.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from flows.barrier import barrier
from flows.forecasting import run_forecast
from flows.publish import (
    export_plan,
    folder_name,
    published_plan_id,
    remove_leftovers,
)
from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig
from planner.executors import AppliedState
from planner.ilp.data import FleetState, PlanningData, build_data, state_from_config
from planner.ilp.demand import input_shares, interactive_means, planning_demand
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


def first_hour(as_of: pd.Timestamp) -> pd.Timestamp:
    """The first hour a plan made at ``as_of`` covers (as_of itself when on the hour)."""
    return as_of if as_of == as_of.floor("h") else as_of.floor("h") + pd.Timedelta(hours=1)


def previous_plan(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp) -> Plan | None:
    """The plan in force now: the newest verified plan made by ``as_of`` for an earlier first
    hour than the plan being made, covering the current hour (never the plan a rerun of the
    same hour replaces)."""
    row = run(
        con,
        "plans/latest_plan_covering",
        as_of=as_of,
        start=first_hour(as_of),
        hour=as_of.floor("h"),
    ).fetchone()
    return load_plan(con, row[0]) if row else None


def _documents_state(docs: pd.DataFrame) -> FleetState:
    vms: dict[Any, int] = {}
    spot_vms: dict[Any, int] = {}
    inst: dict[Any, int] = {}
    spot_inst: dict[Any, int] = {}
    for row in docs.itertuples():
        doc = json.loads(str(row.document))
        r = str(row.region)
        for g, counts in doc.get("vms", {}).items():
            vms[(r, g)] = int(counts.get("on_demand", 0))
            if counts.get("spot"):
                spot_vms[(r, g)] = int(counts["spot"])
        for m, per_type in doc.get("instances", {}).items():
            for g, counts in per_type.items():
                if counts.get("on_demand"):
                    inst[(r, m, g)] = int(counts["on_demand"])
                if counts.get("spot"):
                    spot_inst[(r, m, g)] = int(counts["spot"])
    return FleetState(vms=vms, spot_vms=spot_vms, instances=inst, spot_instances=spot_inst)


def starting_state(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, as_of: pd.Timestamp, previous: Plan | None
) -> tuple[FleetState, str]:
    """The fleet running when a plan is made at ``as_of``, and where it was read from (see the
    module docstring): applied documents per region over the plan in force (or the config)."""
    base = previous.state_at(as_of.floor("h")) if previous is not None else None
    source = f"plan in force {previous.plan_id}" if previous is not None else "configuration"
    if base is None:
        base = state_from_config(cfg)
    applied = run(con, "plans/applied_before", start=first_hour(as_of)).df()
    if applied.empty:
        return base, source
    regions = set(applied["region"])
    got = _documents_state(applied)

    def merged(old: Any, new: Any) -> dict[Any, Any]:
        return {**{k: v for k, v in old.items() if k[0] not in regions}, **new}

    newest = applied.sort_values("hour").iloc[-1]
    niw = run(con, "plans/plan_niw", plan_id=str(newest["plan_id"])).df()
    niw = niw[pd.to_datetime(niw["hour"]) == pd.Timestamp(newest["hour"])]
    backlog = (
        {str(m): float(b) for m, b in zip(niw["model"], niw["backlog"], strict=True)}
        if not niw.empty
        else dict(base.niw_backlog)
    )
    state = FleetState(
        vms=merged(base.vms, got.vms),
        spot_vms=merged(base.spot_vms, got.spot_vms),
        instances=merged(base.instances, got.instances),
        spot_instances=merged(base.spot_instances, got.spot_instances),
        niw_backlog=backlog,
    )
    hours = ", ".join(
        f"{r} {pd.Timestamp(h):%Y-%m-%dT%H:%M}"
        for r, h in zip(applied["region"], applied["hour"], strict=True)
    )
    return state, f"applied ({hours})"


def record_application(con: duckdb.DuckDBPyConnection, applied: AppliedState) -> int:
    """Store what a target accepted (per region) so the next plan starts from it."""
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    hour = _naive(applied.hour)
    con.execute("BEGIN")
    try:
        for region, doc in sorted(applied.regions.items()):
            run(
                con,
                "plans/insert_application",
                plan_id=applied.plan_id,
                hour=hour,
                region=region,
                document=json.dumps(doc, sort_keys=True, default=str),
                applied_at=now,
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(applied.regions)


def repair_publication(con: duckdb.DuckDBPyConnection, root: Path) -> str | None:
    """Make the files under ``root`` agree with the warehouse after a crash: remove temp
    leftovers, and when the newest plan the warehouse says it published there is not what
    ``latest`` names (or its folder is incomplete), export it again and move the pointers.
    Returns the repaired plan id (None when nothing needed repair)."""
    removed = remove_leftovers(root)
    if removed:
        log.warning("removed leftovers of an interrupted export under %s: %s", root, removed)
    target = root.resolve()
    for row in run(con, "plans/newest_published").fetchall():
        plan_id, path = str(row[0]), Path(str(row[1]))
        if path.parent.resolve() != target:
            continue
        if published_plan_id(root) == plan_id:
            return None
        plan = load_plan(con, plan_id)
        log.warning("%s does not show plan %s the warehouse published: re-exporting", root, plan_id)
        header = run(con, "plans/plan_header", plan_id=plan_id).df().iloc[0]
        warnings = [] if pd.isna(header["violations"]) else [str(header["violations"])]
        export_plan(plan, Verification(violations=[], warnings=warnings), root)
        return plan_id
    return None


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
    shares = input_shares(run(con, "plans/history_for_shares", as_of=origin).df())
    means = None
    if demand is None:
        horizon = cfg.planner.horizon_h + (1 if as_of > origin else 0)
        forecasts, info = ensure_forecasts(con, cfg, origin, horizon)
        demand = planning_demand(forecasts, cfg, shares)
        means = interactive_means(forecasts, cfg)
    data = build_data(
        cfg,
        demand,
        state,
        as_of.to_pydatetime(),
        shares,
        forecast_origin=origin,
        interactive_mean=means,
    )
    return data, info


def run_plan(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    as_of: datetime,
    out_root: Path | None,
    state: FleetState | None = None,
) -> PlanRun:
    """Plan the hours from the next full hour after ``as_of``; store, verify and publish.

    Order: repair what an earlier crash left under ``out_root``; plan; commit the plan to the
    warehouse (marked published when it verified and ``out_root`` is given); write its folder;
    move ``latest``. An export that fails removes the just-stored plan again, so warehouse and
    files agree; a kill after the commit is repaired by the next run."""
    now = _naive(as_of)
    if out_root is not None:
        repair_publication(con, out_root)
    previous = previous_plan(con, now)
    source = "given"
    if state is None:
        state, source = starting_state(con, cfg, now, previous)
    log.info("planning from %s: fleet state from %s", now, source)
    data, finfo = planning_data(con, cfg, now, state)
    plan, check = make_plan(data, solver_settings(cfg), previous)
    stale = staleness_note(con, now)
    if stale:
        log.warning("plan %s: %s", plan.plan_id, stale)
        plan = replace(plan, notes=(*plan.notes, stale))
    target = out_root / folder_name(plan) if out_root is not None and check.ok else None
    existed = plan_exists(con, plan.plan_id)
    store_plan(con, plan, check, state, target)
    barrier("plan-committed")
    path = None
    if target is not None and out_root is not None:
        try:
            path = export_plan(plan, check, out_root)
        except BaseException:
            if not existed:
                delete_plan(con, plan.plan_id)
            raise
    if not check.ok:
        log.error("plan %s not published: %s", plan.plan_id, "; ".join(check.violations[:5]))
    finfo = {**finfo, "state_source": source}
    return PlanRun(plan, check, path, previous.plan_id if previous else None, finfo)


STALE_AFTER = pd.Timedelta(hours=2)


def staleness_note(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp) -> str | None:
    """A warning when the newest demand is older than ``STALE_AFTER`` at planning time (the
    forecast then reaches further ahead than it was tested for)."""
    row = run(con, "marts/demand_span").fetchone()
    last = row[1] if row else None
    if last is None:
        return None
    ends = pd.Timestamp(last) + pd.Timedelta(hours=1)
    if as_of - ends <= STALE_AFTER:
        return None
    hours = (as_of - ends) / pd.Timedelta(hours=1)
    return (
        f"STALE DATA: the demand data ends at {ends:%Y-%m-%dT%H:%M}, {hours:.1f} h before this plan"
    )


def plan_exists(con: duckdb.DuckDBPyConnection, plan_id: str) -> bool:
    return not run(con, "plans/plan_header", plan_id=plan_id).df().empty


def _delete_rows(con: duckdb.DuckDBPyConnection, plan_id: str) -> None:
    run(con, "plans/delete_plan", plan_id=plan_id)
    for name in TABLES:
        run(con, f"plans/delete_plan_{name}", plan_id=plan_id)


def delete_plan(con: duckdb.DuckDBPyConnection, plan_id: str) -> None:
    """Remove a stored plan (one transaction)."""
    con.execute("BEGIN")
    try:
        _delete_rows(con, plan_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


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
        planning_demand(forecasts, cfg, shares),
        state_from_json(header["state"]),
        plan.as_of,
        shares,
        horizon=len(plan.hours),
        forecast_origin=origin,
        interactive_mean=interactive_means(forecasts, cfg),
    )


def store_plan(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    check: Verification,
    state: FleetState,
    export_path: Path | None = None,
) -> None:
    """Store the plan in one transaction, with the folder it will be published to
    (``export_path``, None when it is not published). Files are written after the commit."""
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
                "export_path": str(export_path) if export_path is not None else None,
                "state": state_json(state),
                "created_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
            }
        ]
    )
    frames = {name: getattr(plan, name).assign(plan_id=plan.plan_id) for name in TABLES}
    PlanTables.validate(frames)
    con.execute("BEGIN")
    try:
        _delete_rows(con, plan.plan_id)
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
        barrier("plan-stored")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
