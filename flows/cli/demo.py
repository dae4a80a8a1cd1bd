"""`sageserve demo`: the main job end to end on built-in sample data."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import console, emit_json, fail, settings
from flows.cli.data import print_summary
from flows.warehouse import requests_contract
from flows.warehouse.connection import connect
from flows.warehouse.ingest import SourceSpec, ingest_paths
from flows.warehouse.loading import IngestReport
from flows.warehouse.marts import MartRefresh, refresh_demand
from flows.warehouse.status import demand_summary
from planner.config import FleetConfig
from planner.files import write_parquet_atomic

log = logging.getLogger(__name__)


def demo(
    ctx: typer.Context,
    shared: Annotated[Path, typer.Option(help="the shared data folder")] = Path("../shared"),
    workdir: Annotated[Path, typer.Option(help="where the demo writes")] = Path(".sageserve"),
    days: Annotated[int, typer.Option(min=1)] = 14,
    requests_per_day: Annotated[int, typer.Option(min=1)] = 2_000_000,
    seed: Annotated[int, typer.Option()] = 7,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Synthesise a 2-week log, ingest and validate it, build the demand marts, select and fit
    forecasters (daily job), then run the hourly-plan flow: quality gate, forecast, plan,
    publish, report."""
    opts = settings(ctx)
    cfg = opts.config()
    logs_dir = workdir / "logs" / f"synth-seed{seed}"
    warehouse = opts.warehouse or workdir / "warehouse.duckdb"
    started = time.perf_counter()
    as_of = _synthesise(cfg, shared, logs_dir, days, requests_per_day, seed)
    backtest_dir = workdir / "out" / f"backtest-{as_of:%Y%m%dT%H%M}"
    report, refreshed, rows = _load_and_select(cfg, logs_dir, warehouse, as_of, backtest_dir)
    console.print(
        "[bold]5/5[/] hourly job: the hourly-plan Prefect flow (ephemeral API): quality gate, "
        "forecast, SCIP plan, verify, publish, executor, report"
    )
    from flows.hourly_plan import hourly_plan

    run = hourly_plan(
        inbox=str(workdir / "inbox"),
        config_path=str(opts.config_path) if opts.config_path else None,
        warehouse=str(warehouse),
        out=str(workdir / "out"),
        as_of=as_of.isoformat(),
        on_quality_failure="warn",
    )
    if as_json:
        emit_json(
            {
                "ingest": report.totals,
                "mart_rows": refreshed.rows,
                "summary": rows,
                "backtest_report": str(backtest_dir / "backtest.md"),
                **_plan_figures(run),
            }
        )
    else:
        print_summary(rows)
        outputs = {"logs": logs_dir, "warehouse": warehouse, "backtest": backtest_dir}
        _print_demo(report.totals, run, outputs, time.perf_counter() - started)
    if not report.ok:
        raise typer.Exit(1)


def _synthesise(
    cfg: FleetConfig, shared: Path, logs_dir: Path, days: int, requests_per_day: int, seed: int
) -> datetime:
    """Step 1: the built-in log's day files (existing ones kept: the synthesis is
    deterministic); the time the log ends, where the demo plans from."""
    # Imported here, not at the top: they load sktime/SCIP, and every command (ingest too)
    # would pay for them at start-up (bench/ingest.py; tests/flows/test_cli_imports.py).
    from planner.workload.synth import SynthSpec, synthesize
    from planner.workload.tokens import TokenSampler

    try:
        tokens = TokenSampler.from_azure(shared / "data" / "azure2023")
    except FileNotFoundError as exc:
        fail(f"{exc}; pass --shared with the folder that holds data/azure2023", code=2)
    spec = SynthSpec(days=days, seed=seed, requests_per_day=requests_per_day)
    console.print(f"[bold]1/5[/] synthesising {days} days into {logs_dir}")
    for day, frame in synthesize(cfg, spec, tokens):
        path = logs_dir / f"requests-{day:%Y-%m-%d}.parquet"
        if not path.exists():  # deterministic: an existing day file has the same rows
            write_parquet_atomic(frame, path)
    return spec.start + timedelta(days=days)


def _load_and_select(
    cfg: FleetConfig, logs_dir: Path, warehouse: Path, as_of: datetime, backtest_dir: Path
) -> tuple[IngestReport, MartRefresh, list[dict[str, Any]]]:
    """Steps 2–4: ingest the log, refresh the demand marts, and run the daily job (backtest
    and choose forecasters) unless a selection at ``as_of`` exists; the ingest report, the
    refresh and the demand summary."""
    from flows.forecasting import run_selection
    from flows.warehouse.selections import load_models
    from planner.utc import naive_utc
    from reports import backtest as backtest_report

    console.print(f"[bold]2/5[/] ingesting into {warehouse}")
    now = datetime.now(UTC)
    with connect(warehouse, memory_limit=cfg.warehouse.memory_limit) as con:
        report = ingest_paths(con, [logs_dir], SourceSpec(), requests_contract(cfg, now), now)
        console.print("[bold]3/5[/] refreshing demand marts")
        refreshed = refresh_demand(con)
        rows = demand_summary(con)
        console.print(f"[bold]4/5[/] daily job: backtest and choose forecasters at {as_of}")
        selected_at, _ = load_models(con, as_of)
        if selected_at != naive_utc(as_of):
            selection = run_selection(con, cfg, as_of)
            backtest_report.write_report(selection, backtest_dir)
    return report, refreshed, rows


def _plan_figures(run: dict[str, Any]) -> dict[str, Any]:
    """The hourly run's part of ``--json``: its plan, report, page and quality gate."""
    return {
        "plan": {**run["summary"], "export_path": run["export_path"]},
        "plan_report": run["report"],
        "plan_page": run["page"],
        "quality": run["quality"],
    }


def _print_demo(
    totals: dict[str, int], run: dict[str, Any], outputs: dict[str, Path], elapsed: float
) -> None:
    """What the demo loaded, planned and wrote, and where to look next."""
    ps, quality = run["summary"], run["quality"]
    console.print(
        f"loaded {totals['rows_loaded']:,} rows ({totals['files_skipped']} files already "
        f"loaded), quarantined {totals['rows_quarantined']:,}; data quality "
        f"{'passed' if quality['success'] else 'FAILED: ' + '; '.join(quality['failed'])}; "
        f"{elapsed:.0f} s\n"
        f"plan {ps['plan_id']} for {ps['hours']} h from {ps['start']}: "
        f"${ps['total_cost']:,.0f}, {ps['vm_hours']:,.0f} VM-hours, SCIP {ps['status']} "
        f"gap {ps['gap_text']}, verified True\n"
        f"outputs: request logs {outputs['logs']}, warehouse {outputs['warehouse']}, backtest "
        f"report {outputs['backtest'] / 'backtest.md'}, plan files {run['export_path']}, Data "
        f"Docs {quality['docs_index']}\n"
        f"plan report: {run['report']} (served by `make serve` at {run['page']})\n"
        f"next: `make serve` (Prefect UI http://127.0.0.1:4200) runs the demo on the replay "
        "clock, one demo hour per minute"
    )
