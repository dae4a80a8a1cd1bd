"""Prefect flows `daily-retrain`, `evaluate` and `backfill` (the hourly one is in
flows/hourly_plan.py). Thin: each builds the run's context once (flows.run_context) and
calls the functions the CLI calls on it."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from flows.clock import run_time
from flows.evaluation import run_evaluation, write_outputs
from flows.forecasting import run_selection
from flows.pipeline import forecast_and_plan
from flows.policy_names import DEFAULT_QUANTILES, POLICIES
from flows.run_context import RunContext, as_of_time, run_config, run_context
from reports import backtest as backtest_report
from reports.evaluation import markdown_table
from reports.pages import page_url


@task(
    name="select-forecasters",
    retries=1,
    retry_delay_seconds=60,
    timeout_seconds=3600,
    cache_policy=NO_CACHE,
)
def select_forecasters(ctx: RunContext) -> dict[str, Any]:
    when = ctx.as_of.floor("D")
    selection = run_selection(ctx.con, ctx.cfg, when.to_pydatetime())
    folder = ctx.out / f"backtest-{when:%Y%m%dT%H%M}"
    backtest_report.write_report(selection, folder)
    chosen = pd.Series([f.forecaster for f in selection.fitted.values()]).value_counts()
    return {
        "as_of": str(when),
        "series": len(selection.fitted),
        "chosen": chosen.to_dict(),
        "report": str(folder / "backtest.md"),
    }


@flow(name="daily-retrain", timeout_seconds=4 * 3600, persist_result=True)
def daily_retrain(
    config_path: str | None = None,
    warehouse: str | None = None,
    out: str | None = None,
    as_of: str | None = None,
) -> dict[str, Any]:
    """Backtests and per-series model selection at midnight (UTC) of ``as_of`` (default: the
    config's clock at the run's scheduled start)."""
    cfg = run_config(config_path)
    with run_context(cfg, warehouse, out, run_time(cfg, as_of), hold=True) as ctx:
        result = select_forecasters(ctx)
    create_markdown_artifact(
        f"# Forecaster selection at {result['as_of']}\n\n{result['series']} series; chosen: "
        + ", ".join(f"{k} × {v}" for k, v in result["chosen"].items())
        + f"\n\nreport: `{result['report']}`",
        key="daily-retrain",
    )
    return result


@flow(name="evaluate", timeout_seconds=6 * 3600)
def evaluate(
    config_path: str | None = None,
    warehouse: str | None = None,
    out: str | None = None,
    policies: list[str] | None = None,
    hours: int = 24,
    end: str | None = None,
    time_limit_s: float | None = None,
    seed: int = 0,
    sweep: bool = False,
    quantiles: list[float] | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """The simulator comparison over the last ``hours`` of the log (see flows/evaluation.py);
    with ``sweep``, every policy family over its dial and the frontier (flows/sweep.py)."""
    cfg = run_config(config_path)
    if sweep:
        with run_context(cfg, warehouse, out, hold=True) as ctx:
            return _evaluate_sweep(ctx, hours, end, time_limit_s, seed, quantiles, workers)
    names = policies or list(POLICIES)
    plans = hours * (any(n.startswith("lt-") for n in names) + ("oracle" in names))
    progress = cast(
        UUID, create_progress_artifact(0.0, description="hourly plans made for the replay")
    )
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        update_progress_artifact(progress, 100.0 * done[0] / max(plans, 1))

    with run_context(cfg, warehouse, out, hold=True) as ctx:
        until = as_of_time(end) if end else None
        evaluation = run_evaluation(ctx.con, cfg, names, hours, until, time_limit_s, seed, advance)
    folder = ctx.out / (
        f"evaluation-{evaluation.start:%Y%m%dT%H%M}-{hours}h-{evaluation.config_hash}"
    )
    paths = write_outputs(evaluation, folder)
    table = evaluation.table()
    create_markdown_artifact(
        f"# Policy comparison {evaluation.start} .. {evaluation.end}\n\n" + markdown_table(table),
        key="evaluation",
    )
    create_link_artifact(page_url(paths["md"], ctx.out), "comparison", key="evaluation-files")
    return {"folder": str(folder), "results": table.to_dict(orient="records")}


def _evaluate_sweep(
    ctx: RunContext,
    hours: int,
    end: str | None,
    time_limit_s: float | None,
    seed: int,
    quantiles: list[float] | None,
    workers: int,
) -> dict[str, Any]:
    from flows.sweep import run_sweep, write_sweep
    from reports.sweep import frontier_markdown

    result = run_sweep(
        ctx.con,
        ctx.cfg,
        hours,
        as_of_time(end) if end else None,
        quantiles=quantiles or DEFAULT_QUANTILES,
        time_limit_s=time_limit_s,
        seed=seed,
        workers=workers,
    )
    folder = ctx.out / (f"sweep-{result.start:%Y%m%dT%H%M}-{hours}h-{result.config_hash}")
    paths = write_sweep(result, folder)
    create_markdown_artifact(
        f"# Frontier at equal SLA {result.start} .. {result.end}\n\n"
        + frontier_markdown(result.frontier, result.references),
        key="evaluation-sweep",
    )
    create_link_artifact(f"file://{paths['md'].resolve()}", "frontier", key="evaluation-files")
    return {"folder": str(folder), "frontier": result.frontier}


@flow(name="backfill", timeout_seconds=12 * 3600, persist_result=True)
def backfill(
    start: str,
    end: str,
    config_path: str | None = None,
    warehouse: str | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    """Plans for every hour in [start, end), each made ``planner.plan_lead_min`` before it
    (as the hourly schedule would have), published under ``out``/backfill for audits."""
    logger = get_run_logger()
    cfg = run_config(config_path)
    first, stop = as_of_time(start).floor("h"), as_of_time(end).floor("h")
    if stop <= first:
        raise ValueError(f"backfill: end {end} is not after start {start}")
    hours = pd.date_range(first, stop, freq="h", inclusive="left")
    progress = cast(UUID, create_progress_artifact(0.0, description="backfilled hours"))
    made = []
    with run_context(cfg, warehouse, out, first, hold=True) as ctx:
        root = ctx.out / "backfill"
        for i, hour in enumerate(hours, start=1):
            as_of = hour - pd.Timedelta(minutes=cfg.planner.plan_lead_min)
            result = forecast_and_plan(ctx.con, cfg, as_of.to_pydatetime(), root)
            made.append(
                {
                    "hour": str(hour),
                    "plan_id": result.plan.plan_id,
                    "verified": result.check.ok,
                    "cost": round(result.plan.total_cost, 2),
                }
            )
            update_progress_artifact(progress, 100.0 * i / len(hours))
    logger.info("backfilled %d hours into %s", len(made), root)
    create_markdown_artifact(
        f"# Backfill {first} .. {stop}\n\n" + markdown_table(pd.DataFrame(made)), key="backfill"
    )
    return {"plans": made, "folder": str(root)}
