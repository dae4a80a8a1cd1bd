"""Data commands: synthesise logs, ingest them, refresh marts, show what the warehouse holds."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from flows.cli.common import (
    console,
    emit_json,
    fail,
    open_warehouse,
    parse_time,
    progress_bar,
    settings,
)
from flows.warehouse import requests_contract
from flows.warehouse.aggregates import ingest_minute_paths
from flows.warehouse.ingest import (
    FileReport,
    IngestReport,
    SourceSpec,
    expand_paths,
    ingest_paths,
)
from flows.warehouse.marts import refresh_demand
from flows.warehouse.sqlfiles import run
from flows.warehouse.status import demand_summary, warehouse_status
from planner.files import atomic_path

if TYPE_CHECKING:
    import pandas as pd

    from planner.config import FleetConfig

log = logging.getLogger(__name__)
DEFAULT_AZURE = Path("../shared/data/azure2023")


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def synth(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="folder for one Parquet file per day")],
    days: Annotated[int, typer.Option(min=1, max=366)] = 14,
    seed: Annotated[int, typer.Option()] = 7,
    requests_per_day: Annotated[int, typer.Option(min=1)] = 2_000_000,
    start: Annotated[str, typer.Option(help="UTC start (a Monday keeps weekdays aligned)")] = (
        "2024-06-03T00:00Z"
    ),
    azure: Annotated[Path, typer.Option(help="Azure 2023 trace folder (token lengths)")] = (
        DEFAULT_AZURE
    ),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Generate a deterministic multi-day, multi-region request log (native Parquet)."""
    from planner.workload.synth import SynthSpec, synthesize
    from planner.workload.tokens import TokenSampler

    cfg = settings(ctx).config()
    spec = SynthSpec(days, seed, parse_time(start, "--start"), requests_per_day)
    try:
        tokens = TokenSampler.from_azure(azure)
    except FileNotFoundError as exc:
        fail(str(exc), code=2)
    files, total = [], 0
    with progress_bar() as bar:
        task = bar.add_task("synthesising days", total=days)
        for day, frame in synthesize(cfg, spec, tokens):
            path = out / f"requests-{day:%Y-%m-%d}.parquet"
            write_parquet_atomic(frame, path)
            files.append(str(path))
            total += len(frame)
            bar.advance(task)
    log.info("wrote %d rows in %d files under %s", total, len(files), out)
    if as_json:
        emit_json({"files": files, "rows": total, "seed": seed, "days": days})


def synth_servegen(
    ctx: typer.Context,
    source: Annotated[list[Path], typer.Option(help="ServeGen folder, e.g. .../language/m-mid")],
    out: Annotated[Path, typer.Option(help="folder for one Parquet file per UTC day")],
    model: Annotated[
        list[str] | None, typer.Option(help="model id per --source (default: by folder name)")
    ] = None,
    scale: Annotated[float, typer.Option(min=1e-7, max=1.0, help="volume scale")] = 0.001,
    seed: Annotated[int, typer.Option()] = 7,
    start: Annotated[str, typer.Option(help="local date of ServeGen day 0")] = "2024-06-03",
    aggregate: Annotated[
        str | None,
        typer.Option(help="'minute': per-minute aggregates from the rate series, not rows"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Turn ServeGen per-client rate series into native request rows (or, with --aggregate
    minute, per-minute demand aggregates for `ingest --format minute-aggregates`)."""
    import pandas as pd

    from planner.workload.servegen import ServeGenSpec, load_source, synthesize_servegen

    cfg = settings(ctx).config()
    models = model or [_default_model(s) for s in source]
    if len(models) != len(source):
        fail(f"--model given {len(models)} times for {len(source)} --source folders", code=2)
    for m in models:
        if m not in cfg.model_ids:
            fail(f"--model: unknown model {m!r}; known: {cfg.model_ids}", code=2)
    if aggregate not in (None, "minute"):
        fail(f"--aggregate: only 'minute' is supported, got {aggregate!r}", code=2)
    start_date = parse_time(start, "--start").date()
    if aggregate == "minute":
        _synth_minutes(cfg, source, models, scale, seed, start_date, out, as_json)
        return
    frames: list[pd.DataFrame] = []
    for src, model_id in zip(source, models, strict=True):
        try:
            clients = load_source(src)
        except FileNotFoundError as exc:
            fail(str(exc), code=2)
        spec = ServeGenSpec(model_id, scale, seed, start_date)
        frames.extend(synthesize_servegen(cfg, clients, spec))
    if not frames:
        fail("no requests generated (scale too small?)")
    rows = pd.concat(frames, ignore_index=True).sort_values("arrival_time", kind="stable")
    rows.insert(0, "request_id", [f"sg{seed}-{i:09d}" for i in range(len(rows))])
    files = []
    for day, frame in rows.groupby(rows["arrival_time"].dt.floor("D"), sort=True):
        path = out / f"servegen-{day:%Y-%m-%d}.parquet"
        write_parquet_atomic(frame.reset_index(drop=True), path)
        files.append(str(path))
    log.info("wrote %d rows in %d files under %s", len(rows), len(files), out)
    if as_json:
        emit_json({"files": files, "rows": len(rows), "seed": seed, "scale": scale})


def _synth_minutes(
    cfg: FleetConfig,
    sources: list[Path],
    models: list[str],
    scale: float,
    seed: int,
    start_date: date,
    out: Path,
    as_json: bool,
) -> None:
    import pandas as pd

    from planner.workload.servegen import ServeGenSpec, load_source
    from planner.workload.servegen_minutes import synthesize_minutes

    frames = []
    for src, model_id in zip(sources, models, strict=True):
        try:
            clients = load_source(src)
        except FileNotFoundError as exc:
            fail(str(exc), code=2)
        frames.append(
            synthesize_minutes(cfg, clients, ServeGenSpec(model_id, scale, seed, start_date))
        )
    minutes = pd.concat(frames, ignore_index=True).sort_values("minute", kind="stable")
    if minutes.empty:
        fail("no demand generated (scale too small?)")
    files = []
    for day, frame in minutes.groupby(minutes["minute"].dt.floor("D"), sort=True):
        path = out / f"servegen-minutes-{day:%Y-%m-%d}.parquet"
        write_parquet_atomic(frame.reset_index(drop=True), path)
        files.append(str(path))
    requests = int(minutes["requests"].sum())
    log.info("wrote %d minute rows (%d requests) in %d files", len(minutes), requests, len(files))
    if as_json:
        emit_json(
            {
                "files": files,
                "rows": len(minutes),
                "requests": requests,
                "seed": seed,
                "scale": scale,
            }
        )


def _default_model(source: Path) -> str:
    return {"m-large": "llama2-70b", "m-mid": "llama3.1-8b"}.get(source.name, "llama3.1-8b")


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
    aggregates = fmt == "minute-aggregates"
    if aggregates and any(v is not None for v in (region, model, tier, tenant, start)):
        fail("--region/--model/--tier/--tenant/--start apply to azure2023|mooncake", code=2)
    spec = None if aggregates else _source_spec(cfg, fmt, region, model, tier, tenant, start)
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
) -> SourceSpec:
    if fmt not in ("native", "azure2023", "mooncake"):
        fail(
            f"--format: expected native, azure2023, mooncake or minute-aggregates, got {fmt!r}",
            code=2,
        )
    if fmt == "native":
        if any(v is not None for v in (region, model, tier, start)):
            fail("--region/--model/--tier/--start apply to --format azure2023|mooncake", code=2)
        return SourceSpec()
    for flag, value, known in (
        ("--region", region, cfg.region_ids),
        ("--model", model, cfg.model_ids),
        ("--tier", tier, cfg.tier_ids),
    ):
        if value is None:
            fail(f"{flag} is required with --format {fmt} (known: {known})", code=2)
        if value not in known:
            fail(f"{flag}: unknown id {value!r}; known: {known}", code=2)
    start_time = None
    if fmt == "mooncake":
        if start is None:
            fail("--start is required with --format mooncake (the trace has relative times)", 2)
        start_time = parse_time(start, "--start")
    return SourceSpec(fmt, region, model, tier, tenant, start_time)  # type: ignore[arg-type]


def _print_ingest(report: IngestReport) -> None:
    table = Table("file", "status", "read", "loaded", "quarantined", "duplicates", "note")
    for f in report.files:
        table.add_row(
            f.path,
            _status_style(f),
            str(f.rows_read),
            str(f.rows_loaded),
            str(f.rows_quarantined),
            str(f.duplicates_skipped),
            f.message or "; ".join(f.problems[:2]),
        )
    t = report.totals
    table.add_row(
        "total",
        "",
        *(str(t[k]) for k in ("rows_read", "rows_loaded", "rows_quarantined")),
        str(t["duplicates_skipped"]),
        "",
    )
    console.print(table)


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
    import pandas as pd

    h = info["health"]
    health = Table("planner health", "value", "state", title_justify="left")
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
        health.add_row(label, str(value if value is not None else "n/a"), h["states"].get(key, ""))
    console.print(health)
    table = Table("region", "model", "tier", "requests", "first", "last")
    for s in info["series"]:
        table.add_row(
            s["region"],
            s["model"],
            s["tier"],
            f"{s['requests']:,}",
            f"{s['first_arrival']:%Y-%m-%d %H:%M}",
            f"{s['last_arrival']:%Y-%m-%d %H:%M}",
        )
    console.print(table)
    for q in info["quarantine"]:
        console.print(f"quarantine: {q['path']}: {q['rows']} rows, e.g. {q['most_common_reason']}")


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
    table = Table(
        "region",
        "model",
        "tier",
        "requests",
        "hours",
        "gaps",
        "mean tok/s",
        "peak-min tok/s",
        "peak/mean",
        title="demand by series (demand_hourly)",
    )
    for r in rows:
        table.add_row(
            str(r["region"]),
            str(r["model"]),
            str(r["tier"]),
            f"{r['requests']:,}",
            str(r["observed_hours"]),
            str(r["gap_hours"]),
            f"{r['mean_token_rate'] or 0:,.0f}",
            f"{r['peak_minute_token_rate'] or 0:,.0f}",
            f"{r['peak_to_mean'] or 0:.2f}",
        )
    console.print(table)
