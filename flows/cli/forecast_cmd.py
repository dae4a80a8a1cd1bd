"""Forecast commands: `backtest` (daily model selection), `forecast`, `characterize`."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.cli.common import (
    clear_errors,
    console,
    emit_json,
    fail,
    open_warehouse,
    parse_time,
    print_table,
    progress_bar,
    settings,
)
from flows.warehouse.sqlfiles import run
from planner.quantiles import quantile_column
from planner.utc import aware_utc

if TYPE_CHECKING:
    import pandas as pd

    from planner.config import FleetConfig

log = logging.getLogger(__name__)


def _as_of(text: str | None, con: Any) -> datetime:
    import pandas as pd

    if text:
        return parse_time(text, "--as-of")
    newest = run(con, "metrics/freshness").df()["newest_demand_hour"].iloc[0]
    if pd.isna(newest):
        fail("the demand mart is empty: ingest request logs first (`sageserve ingest`)")
    return aware_utc((pd.Timestamp(newest) + pd.Timedelta(hours=1)).to_pydatetime())


def _out_dir(cfg: FleetConfig, out: Path | None, name: str) -> Path:
    return out or Path(cfg.paths.outputs) / name


def backtest(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, typer.Option(help="selection time (default: end of the demand mart)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="report folder")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="processes")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Backtest every candidate per series, choose, fit and store (the daily retrain)."""
    from flows.forecasting import run_selection
    from reports import backtest as backtest_report

    cfg = settings(ctx).config()
    with open_warehouse(ctx) as con:
        when = _as_of(as_of, con)
        with progress_bar() as bar, clear_errors():
            task = bar.add_task("backtesting series groups", total=None)
            selection = run_selection(
                con,
                cfg,
                when,
                workers,
                on_done=lambda _: bar.advance(task),
                on_total=lambda n: bar.update(task, total=n),
            )
    folder = _out_dir(cfg, out, f"backtest-{selection.as_of:%Y%m%dT%H%M}")
    agg = backtest_report.write_report(selection, folder)
    if as_json:
        scores = selection.scores()
        agg["series"] = scores[scores["chosen"]].to_dict("records")
        emit_json(agg)
        return
    print_table(
        ("metric", "folds", "MASE", "snaive24 MASE", "better by", "95% band", "≤ p95"),
        backtest_report.deployed_rows(agg),
        title=f"deployed choice vs seasonal naive ({len(selection.origins)} origins)",
    )
    console.print(f"chosen: {agg.get('chosen')}\nreport: {agg['report']}\nplot: {agg['plot']}")


def forecast(
    ctx: typer.Context,
    as_of: Annotated[str, typer.Option(help="forecast origin (UTC); hours before it are used")],
    horizon: Annotated[int | None, typer.Option(min=1, max=168)] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Forecast every series for the hours from --as-of (stored in `forecasts`)."""
    from flows.forecasting import run_forecast

    cfg = settings(ctx).config()
    when = parse_time(as_of, "--as-of")
    with open_warehouse(ctx) as con, clear_errors():
        frame, info = run_forecast(con, cfg, when, horizon)
    if frame.empty:
        fail("no series to forecast at this origin")
    tier_q: dict[str, tuple[str, float]] = {
        t.id: (t.planning_metric, t.planning_quantile) for t in cfg.tiers
    }
    summary = _summary(frame, tier_q)
    if as_json:
        emit_json({**info, "series": summary})
        return
    print_table(
        (
            "region",
            "model",
            "tier",
            "metric",
            "forecaster",
            "next h point",
            "planning q",
            "fallback",
        ),
        (
            (
                *(row[k] for k in ("region", "model", "tier", "metric", "forecaster")),
                f"{row['point_h1']:,.1f}",
                f"{row['planning_value_h1']:,.1f}",
                row["fallback"] or "",
            )
            for row in summary
        ),
        title=f"forecasts from {info['origin']}",
    )
    console.print(f"{info['rows']} rows stored in `forecasts` (selection of {info['selected_at']})")


def _summary(frame: pd.DataFrame, tier_q: dict[str, tuple[str, float]]) -> list[dict[str, Any]]:
    first = frame[frame["h"] == 1]
    rows = []
    r: Any  # a row of the forecasts table
    for r in first.itertuples():
        metric, q = tier_q.get(r.tier, ("token_rate", 0.5))
        col = quantile_column(q)
        rows.append(
            {
                "region": r.region,
                "model": r.model,
                "tier": r.tier,
                "metric": r.metric,
                "forecaster": r.forecaster,
                "point_h1": float(r.point),
                "planning_quantile": q if r.metric == metric else None,
                "planning_value_h1": float(getattr(r, col, r.point))
                if r.metric == metric
                else float(r.point),
                "fallback": r.fallback,
            }
        )
    return rows


def characterize(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="report folder")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write the workload characterisation report (markdown + PNGs) from the warehouse."""
    from flows.forecasting import timezones
    from reports import characterize as characterize_report

    cfg = settings(ctx).config()
    with open_warehouse(ctx, read_only=True) as con:
        demand = run(con, "characterize/demand").df()
        if demand.empty:
            fail("the demand mart is empty: ingest request logs first")
        tokens = run(con, "characterize/token_distribution").df()
        histogram = run(con, "characterize/token_histogram").df()
        hardest = run(con, "characterize/latest_backtests").df()
    folder = _out_dir(cfg, out, "characterization")
    kinds: dict[str, str] = {t.id: t.kind for t in cfg.tiers}
    figures = characterize_report.write_report(
        demand, tokens, histogram, hardest, timezones(cfg), kinds, folder
    )
    if as_json:
        emit_json(figures)
    else:
        console.print(f"report: {figures['report']}")
        console.print(
            f"busiest hour UTC {figures['peak_hour_utc']}, local {figures['peak_hour_local']}"
        )
