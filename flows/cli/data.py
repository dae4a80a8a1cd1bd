"""Data commands: ingest logs, refresh marts, show what the warehouse holds (synthesising
logs: flows/cli/synth_cmd.py)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.common import (
    check_ids,
    console,
    emit_json,
    fail,
    open_warehouse,
    parse_time,
    print_table,
    progress_bar,
    settings,
)
from flows.warehouse import requests_contract
from flows.warehouse.aggregates import ingest_minute_paths
from flows.warehouse.ingest import SourceSpec, ingest_paths
from flows.warehouse.loading import FileReport, IngestReport, expand_paths
from flows.warehouse.marts import refresh_demand
from flows.warehouse.sqlfiles import run
from flows.warehouse.status import demand_summary, warehouse_status

if TYPE_CHECKING:
    import pandas as pd

    from planner.config import FleetConfig

log = logging.getLogger(__name__)


def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="files or folders (every file inside)")],
    fmt: Annotated[
        str, typer.Option("--format", help="native | azure2023 | mooncake | minute-aggregates")
    ] = "native",
    region: Annotated[
        str | None, typer.Option(help="adapters: region the trace stands for")
    ] = None,
    model: Annotated[str | None, typer.Option(help="adapters: model id")] = None,
    tier: Annotated[str | None, typer.Option(help="adapters: tier id")] = None,
    tenant: Annotated[str | None, typer.Option(help="adapters: tenant label")] = None,
    start: Annotated[
        str | None, typer.Option(help="mooncake: UTC time of the trace's timestamp 0")
    ] = None,
    marts: Annotated[bool, typer.Option(help="refresh the demand marts afterwards")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Load request-log files (CSV, Parquet, JSONL; gzip too) into the warehouse, or per-minute
    demand aggregates (--format minute-aggregates: Parquet or CSV)."""
    cfg = settings(ctx).config()
    spec = _source_spec(cfg, fmt, region, model, tier, tenant, start)
    now = datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="contract") as pool:
        # The pandera contract (its import is ~0.5 s) is built in a thread while DuckDB opens
        # the warehouse, hashes the file and looks for duplicate ids; the checks wait for it.
        contract = pool.submit(requests_contract, cfg, now) if spec is not None else None
        con = open_warehouse(ctx, create=True)
        with con, progress_bar() as bar:
            task = bar.add_task("ingesting files", total=len(expand_paths(paths)[0]))
            if spec is None or contract is None:
                report = ingest_minute_paths(
                    con, paths, cfg, now, on_file=lambda _: bar.advance(task)
                )
            else:
                report = ingest_paths(
                    con, paths, spec, contract, now, on_file=lambda _: bar.advance(task)
                )
            refreshed = refresh_demand(con) if marts else None
    if as_json:
        payload = report.as_dict()
        if refreshed:
            payload["marts"] = {"hours": refreshed.hours, "rows": refreshed.rows}
        emit_json(payload)
    else:
        _print_ingest(report)
    if not report.ok:
        raise typer.Exit(1)


def _source_spec(
    cfg: FleetConfig,
    fmt: str,
    region: str | None,
    model: str | None,
    tier: str | None,
    tenant: str | None,
    start: str | None,
) -> SourceSpec | None:
    """How to read the files (None: per-minute aggregates), the options checked."""
    if fmt == "minute-aggregates":
        if any(v is not None for v in (region, model, tier, tenant, start)):
            fail("--region/--model/--tier/--tenant/--start apply to azure2023|mooncake", code=2)
        return None
    if fmt not in ("native", "azure2023", "mooncake"):
        fail(
            f"--format: expected native, azure2023, mooncake or minute-aggregates, got {fmt!r}",
            code=2,
        )
    if fmt == "native":
        if any(v is not None for v in (region, model, tier, start)):
            fail("--region/--model/--tier/--start apply to --format azure2023|mooncake", code=2)
        return SourceSpec()
    check_ids(cfg, fmt, region=region, model=model, tier=tier)
    start_time = None
    if fmt == "mooncake":
        if start is None:
            fail("--start is required with --format mooncake (the trace has relative times)", 2)
        start_time = parse_time(start, "--start")
    return SourceSpec(fmt, region, model, tier, tenant, start_time)  # type: ignore[arg-type]


def _print_ingest(report: IngestReport) -> None:
    t = report.totals
    keys = ("rows_read", "rows_loaded", "rows_quarantined", "duplicates_skipped")
    print_table(
        ("file", "status", "read", "loaded", "quarantined", "duplicates", "note"),
        [
            *(
                (f.path, _status_style(f), *(getattr(f, k) for k in keys), _note(f))
                for f in report.files
            ),
            ("total", "", *(t[k] for k in keys), ""),
        ],
    )


def _note(report: FileReport) -> str:
    return report.message or "; ".join(report.problems[:2])


def _status_style(report: FileReport) -> str:
    colour = {"loaded": "green", "skipped": "yellow", "rejected": "red"}[report.status]
    return f"[{colour}]{report.status}[/]"


def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the warehouse holds (rows per series, time span, files, quarantine) and the
    planner's health: latest plan and its age, last planning run, data freshness, by the
    config's clock."""
    from flows.clock import clock_for

    cfg = settings(ctx).config()
    with open_warehouse(ctx, read_only=True) as con:
        info = warehouse_status(con)
        health_row = {str(k): v for k, v in run(con, "status/planner_health").df().iloc[0].items()}
    info["warehouse"] = str(settings(ctx).warehouse_path())
    clock = clock_for(cfg)
    info["health"] = planner_health(health_row, clock.now(), clock.describe())
    if as_json:
        emit_json(info)
        return
    o = info["overview"]
    console.print(
        f"warehouse {info['warehouse']} (schema v{o['schema_version']}): {o['requests']:,} "
        f"requests from {o['first_arrival']} to {o['last_arrival']}, {o['files']} files, "
        f"{o['quarantined']:,} quarantined rows"
    )
    _print_health(info["health"])
    print_table(
        ("region", "model", "tier", "requests", "first", "last"),
        (
            (
                s["region"],
                s["model"],
                s["tier"],
                f"{s['requests']:,}",
                f"{s['first_arrival']:%Y-%m-%d %H:%M}",
                f"{s['last_arrival']:%Y-%m-%d %H:%M}",
            )
            for s in info["series"]
        ),
    )
    for q in info["quarantine"]:
        console.print(f"quarantine: {q['path']}: {q['rows']} rows, e.g. {q['most_common_reason']}")


def _print_health(h: dict[str, Any]) -> None:
    import pandas as pd

    health = []
    for label, key in (
        ("clock now (UTC)", "now"),
        ("latest plan", "latest_plan"),
        ("latest plan age", "latest_plan_age_h"),
        ("last planning run (wall clock, UTC)", "last_run"),
        ("newest request", "newest_request"),
        ("data freshness", "data_age_h"),
        ("last ingest (wall clock, UTC)", "last_ingest"),
    ):
        value = h.get(key)
        if key.endswith("_h"):
            value = "n/a" if value is None else f"{max(value, 0.0):,.1f} h"
        elif isinstance(value, datetime | pd.Timestamp):
            value = f"{pd.Timestamp(value):%Y-%m-%d %H:%M:%S}"
        health.append((label, value if value is not None else "n/a", h["states"].get(key, "")))
    print_table(("planner health", "value", "state"), health, title_justify="left")


def planner_health(row: dict[str, Any], now: pd.Timestamp, clock: str) -> dict[str, Any]:
    """Latest plan age and data freshness against ``now`` (the config's clock), with a state
    each: ok, STALE (> 2 h: the hourly job has not run or its data stopped), or missing."""
    import pandas as pd

    def hours_since(t: Any) -> float | None:
        return None if t is None or pd.isna(t) else (now - pd.Timestamp(t)).total_seconds() / 3600

    plan_age = hours_since(row.get("latest_plan_as_of"))
    data_age = hours_since(row.get("newest_request"))
    states = {
        "latest_plan_age_h": "missing" if plan_age is None else "ok" if plan_age <= 2 else "STALE",
        "data_age_h": "missing" if data_age is None else "ok" if data_age <= 2 else "STALE",
    }
    clean = {
        k: (None if v is None or (not isinstance(v, str) and pd.isna(v)) else v)
        for k, v in row.items()
    }
    return {
        "clock": clock,
        "now": now,
        **clean,
        "latest_plan_age_h": plan_age,
        "data_age_h": data_age,
        "states": states,
        "ok": all(v == "ok" for v in states.values()),
    }


def refresh_marts(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option(help="recompute every hour, not only pending ones")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute the hourly demand mart."""
    with open_warehouse(ctx) as con:
        result = refresh_demand(con, full=full)
    payload = {"start_hour": result.start_hour, "end_hour": result.end_hour, "rows": result.rows}
    if as_json:
        emit_json(payload)
    else:
        console.print(f"demand_hourly: {result.hours} hours recomputed, {result.rows} rows")


def summary(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Demand per series from the marts: volume, mean and peak token rates."""
    with open_warehouse(ctx, read_only=True) as con:
        rows = demand_summary(con)
    if as_json:
        emit_json(rows)
    else:
        print_summary(rows)


def print_summary(rows: list[dict[str, object]]) -> None:
    print_table(
        (
            "region",
            "model",
            "tier",
            "requests",
            "hours",
            "gaps",
            "mean tok/s",
            "peak-min tok/s",
            "peak/mean",
        ),
        (
            (
                r["region"],
                r["model"],
                r["tier"],
                f"{r['requests']:,}",
                r["observed_hours"],
                r["gap_hours"],
                f"{r['mean_token_rate'] or 0:,.0f}",
                f"{r['peak_minute_token_rate'] or 0:,.0f}",
                f"{r['peak_to_mean'] or 0:.2f}",
            )
            for r in rows
        ),
        title="demand by series (demand_hourly)",
    )
