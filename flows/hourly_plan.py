"""Prefect flow `hourly-plan`: ingest → data quality (GX) → demand marts → forecast (fan-out
over models) → ILP → verify → publish → executor → what operators see.

Thin by design: every step calls the functions the CLI calls. The flow builds the run's
context once (flows.run_context: config, warehouse opened once, outputs, time) and hands it to
every task (one writer at a time: the whole run holds the `sageserve-warehouse` global
concurrency slot when the server has that limit, and every deployment has a concurrency limit
of 1). A failing step fails the run before anything is published, so the
last good plan stays published (`latest` moves only after a complete, verified export).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, cast
from uuid import UUID

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run as flow_run_runtime
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows import run_artifacts as artifacts
from flows.clock import run_time
from flows.execute import apply_plan as deliver
from flows.forecasting import run_forecast
from flows.ingest_flow import ingest_folder
from flows.planning import run_plan
from flows.run_context import RunContext, run_config, run_context
from flows.run_status import read_run, record_run
from planner.config import FleetConfig
from planner.sim.fairness import FairServe
from validation.quality import QualityResult, learn_bands, run_checkpoint

log = logging.getLogger(__name__)


def check_quality(ctx: RunContext, ingested: list[dict[str, Any]]) -> dict[str, Any]:
    """The GX checkpoint over the last complete hour (see validation/quality.py); Data Docs
    under the run's ``data_docs``."""
    cfg, end = ctx.cfg, ctx.as_of.floor("h")
    hour = end - pd.Timedelta(hours=1)
    plan_hour = ctx.as_of.ceil("h")  # the plan's first hour (planner.ilp.data: as_of rounded up)
    rows = ctx.warehouse.requests_in_window(hour, end)
    history = ctx.warehouse.hourly_tier_requests(hour - pd.Timedelta(days=7), end)
    past = history[pd.to_datetime(history["hour"]) < hour]
    bands = learn_bands(
        past,
        hour,
        regions=cfg.region_ids,
        models=cfg.model_ids,
        tiers=cfg.tier_ids,
        max_input_tokens=cfg.warehouse.max_tokens,
        max_output_tokens=cfg.warehouse.max_tokens,
    )
    counts = rows.groupby("tier").size()
    total = max(int(counts.sum()), 1)
    shares = pd.DataFrame([{f"share_{t}": float(counts.get(t, 0)) / total for t in cfg.tier_ids}])
    files = pd.DataFrame(
        ingested or [], columns=["path", "status", "rows_read", "duplicates_skipped"]
    )
    result: QualityResult = run_checkpoint(
        {"requests_last_hour": rows, "tier_shares": shares, "ingested_files": files},
        bands,
        ctx.out / "data_docs",
        f"plan-{plan_hour:%Y%m%dT%H%M}",  # pages named by the hour the run plans for
        plan_hour,
    )
    return {
        "success": result.success,
        "failed": result.failed,
        "checked": result.checked,
        "docs_index": str(result.docs_index) if result.docs_index else None,
        "hour": str(hour),
        "rows": len(rows),
        "volume_band": list(bands.volume),
    }


def task_map(fn: Callable[..., pd.DataFrame], calls: list[tuple[Any, ...]]) -> list[pd.DataFrame]:
    """The forecast mapper of the hourly flow: one Prefect task per call (per model), on the
    flow's task runner (threads, or a Dask cluster), with a progress artifact."""
    one = task(name="forecast-model", retries=1, retry_delay_seconds=5)(fn)
    progress = cast(UUID, create_progress_artifact(0.0, description="forecast fan-out over models"))
    futures = [one.submit(*args) for args in calls]
    frames = []
    for i, future in enumerate(futures, start=1):
        frames.append(future.result())
        update_progress_artifact(progress, 100.0 * i / len(futures))
    return frames


@flow(
    name="forecast-fanout", task_runner=cast(TaskRunner[Any], ThreadPoolTaskRunner(max_workers=2))
)
def forecast_fanout(ctx: RunContext, horizon: int) -> dict[str, Any]:
    """The hourly forecast (flows.forecasting.run_forecast) with its per-model calls mapped
    as tasks; stored at origin = the hour of the run's time. Runs the daily selection first
    when none was made in the day before."""
    when = ctx.as_of.to_pydatetime()
    stored, info = run_forecast(ctx.con, ctx.cfg, when, horizon, mapper=task_map)
    if info.get("selection_ran"):
        get_run_logger().warning("no selection in the day before %s: selected now", info["origin"])
    origin, selected_at = str(info["origin"]), str(info["selected_at"])
    return {"origin": origin, "rows": len(stored), "selected_at": selected_at}


def fanout_flow(dask_address: str | None = None) -> Any:
    """The fan-out subflow on threads, or on a Dask cluster when an address is given."""
    address = dask_address or os.environ.get("SAGESERVE_DASK_ADDRESS")
    if not address:
        return forecast_fanout
    from prefect_dask.task_runners import DaskTaskRunner

    return forecast_fanout.with_options(
        task_runner=cast(TaskRunner[Any], DaskTaskRunner(address=address))
    )


@task(name="plan", retries=1, retry_delay_seconds=10, timeout_seconds=900, cache_policy=NO_CACHE)
def make_hourly_plan(ctx: RunContext) -> dict[str, Any]:
    """Solve, verify, store and publish under the run's ``plans`` (only a verified plan)."""
    result = run_plan(ctx.con, ctx.cfg, ctx.as_of.to_pydatetime(), ctx.out / "plans")
    versus = ctx.warehouse.demand_vs_forecast(result.plan.start - pd.Timedelta(hours=1))
    if not result.check.ok:
        raise RuntimeError(
            f"plan {result.plan.plan_id} failed verification, not published: "
            + "; ".join(result.check.violations[:5])
        )
    return {
        "plan": result.plan,
        "summary": result.plan.summary(),
        "export_path": str(result.export_path) if result.export_path else None,
        "versus": versus,
    }


@task(name="apply-plan", timeout_seconds=300, cache_policy=NO_CACHE)
def apply_plan(
    ctx: RunContext, plan: Any, webhook_url: str | None, dry_run: bool
) -> dict[str, Any]:
    """Hand the plan's first hour to the config's executor target (``webhook_url`` overrides
    its URL; its record under the run's ``executor``) and record what it accepted. No task
    retries: the executor retries each region's delivery itself, and tries every region."""
    folder = ctx.out / "executor"
    state = deliver(ctx.con, ctx.cfg, plan, folder, dry_run=dry_run, url=webhook_url)
    return {"regions": sorted(state.regions), "changes": state.notes}


@task(name="plan-report", cache_policy=NO_CACHE)
def plan_report(
    ctx: RunContext,
    plan: Any,
    quality: dict[str, Any] | None = None,
    versus: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The plan's operator page (reports/<hour>/report.html) and the view it shows, which
    the run's artifact renders too (the same numbers)."""
    from flows.operator_view import operator_view
    from reports.plan_report import write_plan_report

    wh, start = ctx.warehouse, plan.start
    recent = wh.recent_demand(start - pd.Timedelta(hours=48), start)
    forecasts = wh.forecasts_at(plan.forecast_origin)
    tenants = wh.tenant_traffic(start - pd.Timedelta(hours=1), start, FairServe.headroom)
    view = operator_view(ctx.con, ctx.cfg, plan, quality=quality, verified=True, versus=versus)
    folder = ctx.out / "reports" / f"{plan.start:%Y%m%dT%H%M}"
    path = write_plan_report(view, plan, recent, forecasts, folder)
    return {"path": str(path), "view": view, "tenants": tenants}


def _record(
    root: Path, started: datetime, outcome: str, quality: dict[str, Any], **more: Any
) -> None:
    """The run's status file (flows.run_status) with the quality gate's figures."""
    gate = {k: quality[k] for k in ("success", "checked", "failed", "hour", "rows")}
    run_id = str(flow_run_runtime.id)
    record_run(
        root,
        flow="hourly-plan",
        started=started,
        outcome=outcome,
        quality=gate,
        run_id=run_id,
        **more,
    )


def _stop(root: Path, started: datetime, quality: dict[str, Any]) -> NoReturn:
    """The data-quality gate under 'stop': record why and fail the run before planning."""
    artifacts.gate_stopped(quality)
    _record(root, started, "stopped", quality, error="data-quality gate failed under 'stop'")
    raise RuntimeError(
        f"data quality failed ({len(quality['failed'])} expectations); policy 'stop': "
        "no plan published, the last good plan stays"
    )


def _wait_for_feed(cfg: FleetConfig, stamp: pd.Timestamp) -> None:
    """Replay clock: wait for the feed's hour, at most until the planned hour begins (the
    plan lead, in demo minutes; 30 real seconds at least)."""
    from flows.clock import clock_for
    from flows.feed import wait_for_feed

    lead_s = cfg.planner.plan_lead_min * 60.0
    wait_for_feed(cfg, stamp, max(30.0, clock_for(cfg).real_seconds(lead_s)))


def _record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure hook: the run's status file says `failed`, unless the run itself already
    recorded why it stopped (the data-quality gate under 'stop')."""
    params = flow_run.parameters or {}
    root = params.get("out") or run_config(params.get("config_path")).paths.outputs
    last = read_run(root)
    if last is not None and last.get("run_id") == str(flow_run.id):
        return
    record_run(
        root,
        flow="hourly-plan",
        started=flow_run.start_time or datetime.now(UTC),
        outcome="failed",
        error=str(state.message or "")[:500],
        run_id=str(flow_run.id),
    )


@flow(
    name="hourly-plan",
    log_prints=False,
    timeout_seconds=3600,
    persist_result=True,
    on_failure=[_record_failure],
    on_crashed=[_record_failure],
)
def hourly_plan(
    inbox: str | None = None,
    config_path: str | None = None,
    warehouse: str | None = None,
    out: str | None = None,
    as_of: str | None = None,
    on_quality_failure: str = "warn",
    webhook_url: str | None = None,
    dry_run: bool = False,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """One hourly planning run. ``on_quality_failure``: 'stop' fails the run before planning
    when an expectation fails (the last good plan stays published); 'warn' plans anyway and
    says so in the run's artifact. ``as_of`` defaults to the config's clock at the run's
    scheduled start (the wall clock in production, the replay clock in the demo).
    ``dask_address`` (or SAGESERVE_DASK_ADDRESS): run the forecast fan-out on that Dask
    scheduler."""
    if on_quality_failure not in ("stop", "warn"):
        raise ValueError(f"on_quality_failure must be 'stop' or 'warn', got {on_quality_failure!r}")
    started = datetime.now(UTC)
    cfg = run_config(config_path)
    stamp = run_time(cfg, as_of)
    root = Path(out or cfg.paths.outputs)
    inbox = inbox or cfg.clock.inbox
    if cfg.clock.kind == "replay" and as_of is None:
        _wait_for_feed(cfg, stamp)
    with run_context(cfg, warehouse, str(root), stamp, hold=True) as ctx:
        ingest = ingest_folder(ctx, inbox) if Path(inbox).exists() else None
        quality = check_quality(ctx, (ingest or {}).get("files", []))
        artifacts.link_data_docs(quality, root)
        if not quality["success"] and on_quality_failure == "stop":
            _stop(root, started, quality)
        fanout_flow(dask_address)(ctx, cfg.planner.horizon_h + 1)
        planned = make_hourly_plan(ctx)
        applied = apply_plan(ctx, planned["plan"], webhook_url, dry_run)
        report = plan_report(ctx, planned["plan"], quality, planned["versus"])
    page = artifacts.publish_run(planned, report, quality, on_quality_failure, applied, root)
    plan = planned["plan"]
    get_run_logger().info("plan %s published to %s", plan.plan_id, planned["export_path"])
    _record(root, started, "completed", quality, plan_id=plan.plan_id)
    return {
        "plan_id": plan.plan_id,
        "export_path": planned["export_path"],
        "report": report["path"],
        "page": page,
        "quality": {k: v for k, v in quality.items() if k != "volume_band"},
        "summary": planned["summary"],
    }
