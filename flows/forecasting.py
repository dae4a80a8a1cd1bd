"""Forecasting against the warehouse: read the demand mart, run the planner's selection and
forecasts, validate, store. The CLI and the Prefect flows call these."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from flows.warehouse.selections import load_models, store_selection
from flows.warehouse.sqlfiles import delete_rows, insert_frame, run, transaction
from planner.config import FleetConfig
from planner.forecast.backtest import BacktestSettings
from planner.forecast.dayshift import DayShift
from planner.forecast.nowcast import partial_values
from planner.forecast.pipeline import (
    ForecastSettings,
    Selection,
    forecast,
    select_models,
)
from planner.forecast.pipeline import Mapper as SelectionMapper
from planner.forecast.select import SelectionSettings
from planner.forecast.series import SeriesKey
from planner.ilp.data import plan_horizon
from planner.utc import naive_utc
from validation.forecasts import Forecasts

log = logging.getLogger(__name__)


def settings_from_config(cfg: FleetConfig) -> ForecastSettings:
    f = cfg.forecast
    return ForecastSettings(
        horizon=f.horizon_h,
        history_h=f.history_days * 24,
        backtest=BacktestSettings(
            max_origins=f.backtest_days,
            candidates=tuple(f.candidates),
            screen_origins=f.screen_origins,
            finalist_margin=f.finalist_margin,
            keep=(f.champion,),
            by_horizon=f.calibrate_by_horizon,
            day_shift=(
                DayShift(width=f.day_shift_width_h, pool=f.day_shift_pool)
                if f.day_shift_band
                else None
            ),
        ),
        selection=SelectionSettings(
            margin=f.challenger_margin, min_folds=f.min_folds, default=f.champion
        ),
        nowcast_minutes=run_minute(cfg),
    )


def run_minute(cfg: FleetConfig) -> int:
    """The minute past each hour the hourly job runs at (prefect.yaml's cron, the plan's
    making): minutes 0 .. this − 1 of the hour in progress are all it can have read."""
    return 60 - cfg.planner.plan_lead_min


def timezones(cfg: FleetConfig) -> dict[str, str]:
    return {r.id: r.timezone for r in cfg.regions}


def load_demand(con: duckdb.DuckDBPyConnection, as_of: datetime, history_h: int) -> pd.DataFrame:
    """Mart rows of the ``history_h`` hours before ``as_of`` (nothing at or after it)."""
    as_of = naive_utc(as_of)
    since = pd.Timestamp(as_of) - pd.Timedelta(hours=history_h)
    return run(con, "forecast/demand_history", since=since, as_of=as_of).df()


def no_demand_message(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp, history_h: int) -> str:
    """Why there is nothing to forecast from: an empty mart, or data outside the window."""
    first, last = run(con, "marts/demand_span").fetchone() or (None, None)
    if last is None:
        return f"no demand in the warehouse before {as_of}: ingest request logs first"
    return (
        f"no demand in the {history_h} h before {as_of}: the demand mart holds "
        f"{first:%Y-%m-%dT%H:%M} .. {last:%Y-%m-%dT%H:%M}; choose a time within or just "
        "after it (or ingest newer logs)"
    )


def process_mapper(
    workers: int,
    on_done: Callable[[str], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> SelectionMapper[Any, Any]:
    """Run tasks (a selection's chunks, and its global job) in a process pool, largest panel
    first (so the workers finish together). A selection maps twice (see
    :func:`planner.forecast.pipeline.select_models`): ``on_total`` gets the running total."""
    seen = 0

    def mapper(fn: Callable[[Any], Any], tasks: list[Any]) -> list[Any]:
        nonlocal seen
        seen += len(tasks)
        if on_total:
            on_total(seen)
        if workers <= 1 or len(tasks) <= 1:
            out = []
            for task in tasks:
                out.append(fn(task))
                if on_done:
                    on_done(task.group)
            return out
        order = sorted(range(len(tasks)), key=lambda i: -len(tasks[i].panel.series))
        # forkserver, not fork: the parent holds DuckDB's threads, which fork does not copy
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context) as pool:
            futures = {i: pool.submit(fn, tasks[i]) for i in order}
            results = {}
            for i in order:
                results[i] = futures[i].result()
                if on_done:
                    on_done(tasks[i].group)
        return [results[i] for i in range(len(tasks))]

    return mapper


def run_selection(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    as_of: datetime,
    workers: int | None = None,
    on_done: Callable[[str], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Selection:
    """The daily selection at ``as_of``, stored (replacing an earlier run at the same time)."""
    settings = settings_from_config(cfg)
    as_of_ts = naive_utc(as_of).floor("h")
    demand = load_demand(con, as_of_ts, settings.history_h)
    if demand.empty:
        raise ValueError(no_demand_message(con, as_of_ts, settings.history_h))
    mapper = process_mapper(workers or cfg.forecast.workers, on_done, on_total)
    readings = origin_readings(con, as_of_ts, settings)
    selection = select_models(demand, as_of_ts, settings, mapper, readings)
    store_selection(con, selection)
    return selection


def origin_readings(
    con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp, settings: ForecastSettings
) -> pd.Series:
    """What the hourly job had read of each backtest origin's hour (the hours ``as_of`` −
    k·24 h) when it ran, per series: the minutes before its run minute
    (``settings.nowcast_minutes``, :func:`run_minute`), the same
    ``forecast/partial_hours`` reading :func:`minutes_so_far` gives the job live; arrivals
    before ``as_of`` only. Indexed by (series, origin)."""
    minutes = settings.nowcast_minutes
    frames = []
    for k in range(1, settings.backtest.max_origins + 2):
        hour = as_of - pd.Timedelta(hours=settings.backtest.step_h * k)
        until = min(hour + pd.Timedelta(minutes=minutes), as_of)
        if until <= hour:
            continue
        partial = run(con, "forecast/partial_hours", since=hour, until=until, minutes=minutes)
        wide = partial_values(partial.df(), minutes)
        if not wide.empty:
            frames.append(wide.stack(future_stack=True).swaplevel())
    if not frames:
        return pd.Series(dtype=float)
    out = pd.Series(pd.concat(frames)).dropna()
    out.index.names = ["series", "origin"]
    return out


# How the per-model forecasts are mapped: fn over calls (argument tuples), results in order. The
# default runs them here one after the other; the hourly flow maps them as Prefect tasks
# (threads or a Dask cluster).
Mapper = Callable[[Callable[..., pd.DataFrame], list[tuple[Any, ...]]], list[pd.DataFrame]]


def serial_map(fn: Callable[..., pd.DataFrame], calls: list[tuple[Any, ...]]) -> list[pd.DataFrame]:
    return [fn(*args) for args in calls]


def run_forecast(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    as_of: datetime,
    horizon: int | None = None,
    mapper: Mapper = serial_map,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Forecasts for the hours from ``as_of`` on, stored: one call of the pure
    ``planner.forecast.pipeline.forecast`` per model (a model's series travel together: the
    peer fallback needs them), mapped by ``mapper``. Runs a selection first when none was made
    at or before ``as_of`` (or the newest is more than a day old)."""
    settings = settings_from_config(cfg)
    if horizon:
        settings = replace(settings, horizon=horizon)
    moment = naive_utc(as_of)
    origin = moment.floor("h")
    selected_at, models, ran = current_selection(con, cfg, origin)
    info: dict[str, Any] = {"origin": origin, "selected_at": selected_at}
    if ran:
        info["selection_ran"] = True
    demand = load_demand(con, origin, settings.history_h)
    readings = minutes_so_far(con, origin, moment)
    info["nowcast_minutes"] = int((moment - origin).total_seconds() // 60) if readings else 0
    calls = [
        (
            demand[demand["model"] == m],
            {s: f for s, f in models.items() if SeriesKey.parse(s).model == m},
            origin,
            settings,
            timezones(cfg),
            readings,
        )
        for m in cfg.model_ids
    ]
    frames = [f for f in mapper(forecast, calls) if not f.empty]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    stored = store_forecasts(con, frame, selected_at)
    info["rows"] = len(stored)
    return stored, info


def current_selection(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, origin: pd.Timestamp
) -> tuple[pd.Timestamp, dict[str, Any], bool]:
    """The forecasters an hour's forecast uses: the newest selection made in the day before
    ``origin``, else one made now (and stored, as the daily job's), and whether it ran.

    Decided (#11): the hourly job selects for itself rather than fail when the daily job is
    late or never ran (a fresh warehouse, a backfill over days, a worker down at 02:00): a
    plan from a day-old selection is still a plan, a failed hour is none. The run's info
    says so (``selection_ran``), and the selection is the daily job's own function."""
    selected_at, models = load_models(con, origin)
    if selected_at is not None and origin - selected_at <= pd.Timedelta(hours=24):
        return selected_at, models, False
    log.info("no selection in the day before %s: selecting now", origin)
    selection = run_selection(con, cfg, origin)
    return selection.as_of, selection.fitted, True


def ensure_forecasts(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, origin: pd.Timestamp, horizon: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The forecast step for callers that plan next: the forecasts stored at ``origin`` when
    they reach ``horizon`` hours, else made now (:func:`run_forecast`)."""
    frame = run(con, "plans/forecasts_at", origin=origin).df()
    if not frame.empty and int(frame["h"].max()) >= horizon:
        return frame, {"origin": origin, "reused": True}
    return run_forecast(con, cfg, origin.to_pydatetime(), horizon)


def forecast_for_plan(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, as_of: datetime
) -> dict[str, Any]:
    """The forecast step before a plan made at ``as_of`` (origin = its hour), for pipelines
    that run the two in order (the `plan` command, backfill)."""
    moment = naive_utc(as_of)
    _frame, info = ensure_forecasts(con, cfg, moment.floor("h"), plan_horizon(cfg, moment))
    return info


NOWCAST_MIN_MINUTES = 10  # fewer minutes read too noisily to correct a forecast


def minutes_so_far(
    con: duckdb.DuckDBPyConnection, origin: pd.Timestamp, moment: pd.Timestamp
) -> dict[str, float] | None:
    """The hour in progress read from its minutes in [origin, moment), per series; None when
    fewer than ``NOWCAST_MIN_MINUTES`` have passed or nothing arrived."""
    minutes = int((moment - origin).total_seconds() // 60)
    if minutes < NOWCAST_MIN_MINUTES:
        return None
    partial = run(
        con,
        "forecast/partial_hours",
        since=origin,
        until=origin + pd.Timedelta(minutes=minutes),
        minutes=minutes,
    ).df()
    wide = partial_values(partial, minutes)
    if wide.empty or origin not in wide.index:
        return None
    row = wide.loc[origin]
    return {str(k): float(v) for k, v in row.items() if pd.notna(v)}


def store_forecasts(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, selected_at: pd.Timestamp | None
) -> pd.DataFrame:
    if frame.empty:
        return frame
    out = frame.copy()
    out["selected_at"] = selected_at
    out["created_at"] = naive_utc(datetime.now(UTC))
    Forecasts.validate(out, lazy=True)
    with transaction(con):
        for origin in out["origin"].unique():
            delete_rows(con, "forecasts", "origin", pd.Timestamp(origin))
        insert_frame(con, "forecasts", out)
    return out
