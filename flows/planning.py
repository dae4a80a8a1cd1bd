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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from flows.barrier import barrier
from flows.publish import (
    export_plan,
    folder_name,
    published_plan_id,
    remove_leftovers,
)
from flows.warehouse.sqlfiles import delete_rows, insert_frame, run, transaction
from planner.config import FleetConfig
from planner.executors import AppliedState, documents_view
from planner.fleet_index import input_shares
from planner.ilp.data import FleetState, PlanningData, build_data, plan_horizon, state_from_config
from planner.ilp.demand import interactive_means, planning_demand
from planner.ilp.plan import Plan, SolverFacts
from planner.ilp.plan_tables import PLAN_TABLES
from planner.ilp.planner import make_plan, solver_settings
from planner.ilp.verify import Verification
from planner.utc import naive_utc
from validation.plans import PlanTables

log = logging.getLogger(__name__)
# the solver facts stored in the plan header (SolverFacts' fields; gap_text is derived)
SOLVER_COLUMNS = frozenset(SolverFacts.__dataclass_fields__)


@dataclass
class PlanRun:
    plan: Plan
    check: Verification
    export_path: Path | None
    previous_plan_id: str | None
    forecast: dict[str, Any]


def _number(value: Any) -> float:
    return float(value) if pd.notna(value) else float("nan")


def _time(value: Any) -> datetime:
    return pd.Timestamp(value).to_pydatetime()


def load_plan(con: duckdb.DuckDBPyConnection, plan_id: str) -> Plan:
    """The stored plan ``plan_id``, equal to the plan that was stored (header, solver facts,
    notes, and every table of PLAN_TABLES in its registry dtypes)."""
    header = run(con, "plans/plan_header", plan_id=plan_id).df().iloc[0]
    frames = {name: plan_rows(con, name, plan_id) for name in PLAN_TABLES}
    texts = ("status", "scip_version", "config_hash", "fallback_reason", "bound_source", "method")
    facts: dict[str, Any] = {k: header[k] for k in texts}
    facts |= {k: _number(header[k]) for k in ("objective", "gap", "dual_bound")}
    facts |= {k: float(header[k]) for k in ("solve_seconds", "build_seconds")}
    facts |= {k: int(header[k]) for k in ("variables", "constraints", "nodes")}
    facts |= {"fallback": bool(header["fallback"]), "warm_start": header["warm_start"] or "none"}
    start = _time(header["start"])
    origin = header["forecast_origin"]
    return Plan(
        plan_id=plan_id,
        as_of=_time(header["as_of"]),
        start=start,
        hours=tuple(start + timedelta(hours=i) for i in range(int(header["hours"]))),
        forecast_origin=_time(origin) if pd.notna(origin) else None,
        solver=SolverFacts(**facts),
        notes=tuple(json.loads(header["notes"])),
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
    pairs = zip(applied["region"], applied["document"], strict=True)
    docs = {str(r): json.loads(str(d)) for r, d in pairs}
    got = documents_view(docs, first_hour(as_of)).state()

    def merged(old: Any, new: Any) -> dict[Any, Any]:
        return {**{k: v for k, v in old.items() if k[0] not in regions}, **new}

    newest = applied.sort_values("hour").iloc[-1]
    niw = plan_rows(con, "niw", str(newest["plan_id"]))
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
    now = naive_utc(datetime.now(UTC))
    hour = naive_utc(applied.hour)
    with transaction(con):
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


class MissingForecasts(ValueError):
    """Planning found no stored forecasts for its hours (the forecast step did not run)."""


def stored_forecasts(
    con: duckdb.DuckDBPyConnection, origin: pd.Timestamp, horizon: int
) -> pd.DataFrame:
    """The forecasts stored at ``origin``, covering ``horizon`` hours. Planning never
    forecasts: missing ones are an error naming the step to run."""
    frame = run(con, "plans/forecasts_at", origin=origin).df()
    have = int(frame["h"].max()) if not frame.empty else 0
    if have < horizon:
        raise MissingForecasts(
            f"no forecasts at origin {origin:%Y-%m-%dT%H:%M} covering {horizon} h "
            f"(stored: {have} h): run the forecast step first "
            f"(`sageserve forecast --as-of {origin:%Y-%m-%dT%H:%M}`, or the hourly-plan flow)"
        )
    return frame


def planning_data(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    as_of: pd.Timestamp,
    state: FleetState,
    demand: pd.DataFrame | None = None,
) -> tuple[PlanningData, dict[str, Any]]:
    """What a plan made at ``as_of`` is built from: the stored forecasts from origin = its hour
    (:func:`stored_forecasts`; never made here) unless ``demand`` is given, the week's token
    mix, and ``state``."""
    origin = as_of.floor("h")
    info: dict[str, Any] = {"origin": origin}
    shares = input_shares(run(con, "plans/history_for_shares", as_of=origin).df())
    means = None
    if demand is None:
        forecasts = stored_forecasts(con, origin, plan_horizon(cfg, as_of))
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
) -> PlanRun:
    """Plan the hours from the next full hour after ``as_of``; store, verify and publish.

    Order: repair what an earlier crash left under ``out_root``; plan; commit the plan to the
    warehouse (marked published when it verified and ``out_root`` is given); write its folder;
    move ``latest``. An export that fails removes the just-stored plan again, so warehouse and
    files agree; a kill after the commit is repaired by the next run."""
    now = naive_utc(as_of)
    if out_root is not None:
        repair_publication(con, out_root)
    previous = previous_plan(con, now)
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


def plan_rows(con: duckdb.DuckDBPyConnection, name: str, plan_id: str) -> pd.DataFrame:
    """One stored plan's rows of the detail table ``plan_<name>`` (``name`` in PLAN_TABLES)."""
    if name not in PLAN_TABLES:
        raise ValueError(f"no plan table {name!r}; one of {PLAN_TABLES}")
    frame = run(con, "plans/detail_rows", {"table": f"plan_{name}"}, plan_id=plan_id).df()
    return PLAN_TABLES[name].coerce(frame)


def plan_exists(con: duckdb.DuckDBPyConnection, plan_id: str) -> bool:
    return not run(con, "plans/plan_header", plan_id=plan_id).df().empty


def _delete_rows(con: duckdb.DuckDBPyConnection, plan_id: str) -> None:
    for table in ["plans", *(f"plan_{name}" for name in PLAN_TABLES)]:
        delete_rows(con, table, "plan_id", plan_id)


def delete_plan(con: duckdb.DuckDBPyConnection, plan_id: str) -> None:
    """Remove a stored plan (one transaction)."""
    with transaction(con):
        _delete_rows(con, plan_id)


def rebuild_data(con: duckdb.DuckDBPyConnection, cfg: FleetConfig, plan: Plan) -> PlanningData:
    """The planning data a stored plan was made from (its forecasts, token mix and state)."""
    header = run(con, "plans/plan_header", plan_id=plan.plan_id).df().iloc[0]
    origin = pd.Timestamp(plan.forecast_origin or plan.as_of).floor("h")
    forecasts = run(con, "plans/forecasts_at", origin=origin).df()
    shares = input_shares(run(con, "plans/history_for_shares", as_of=origin).df())
    return build_data(
        cfg,
        planning_demand(forecasts, cfg, shares),
        FleetState.from_json(header["state"]),
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
    facts = {k: v for k, v in plan.solver.as_dict().items() if k in SOLVER_COLUMNS}
    header = pd.DataFrame(
        [
            {
                "plan_id": plan.plan_id,
                "as_of": plan.as_of,
                "start": plan.start,
                "hours": len(plan.hours),
                "forecast_origin": plan.forecast_origin,
                **facts,
                "total_cost": plan.total_cost,
                "verified": check.ok,
                "violations": "; ".join(check.violations) or None,
                "export_path": str(export_path) if export_path is not None else None,
                "state": state.to_json(),
                "notes": json.dumps(list(plan.notes)),
                "created_at": naive_utc(datetime.now(UTC)),
            }
        ]
    )
    frames = {name: f.assign(plan_id=plan.plan_id) for name, f in plan.frames().items()}
    PlanTables.validate(frames)
    with transaction(con):
        _delete_rows(con, plan.plan_id)
        insert_frame(con, "plans", header)
        for name, frame in frames.items():
            if not frame.empty:
                insert_frame(con, f"plan_{name}", frame)
        barrier("plan-stored")
