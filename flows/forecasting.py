"""Forecasting against the warehouse: read the demand mart, run the planner's selection and
forecasts, validate, store. The CLI and the Prefect flows call these."""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from flows.warehouse.sqlfiles import run, staged, transaction
from planner.config import FleetConfig
from planner.forecast.backtest import BacktestSettings
from planner.forecast.forecast import FittedSeries, attach_shared, detach_shared
from planner.forecast.gbm import NAME as GBM
from planner.forecast.nowcast import NowcastParams, partial_values
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
from planner.quantiles import QUANTILE_COLUMNS
from planner.utc import naive_utc
from validation.forecasts import (
    ForecastBacktestFolds,
    ForecastBacktests,
    Forecasts,
)

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
        ),
        selection=SelectionSettings(
            margin=f.challenger_margin, min_folds=f.min_folds, default=f.champion
        ),
    )


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
    """The first ``NowcastParams.minutes`` minutes of each backtest origin's hour (the hours
    ``as_of`` − k·24 h), per series: what the hourly job had read of the hour when it
    nowcast. Indexed by (series, hour); arrivals before ``as_of`` only."""
    minutes = NowcastParams().minutes
    frames = []
    for k in range(1, settings.backtest.max_origins + 2):
        hour = as_of - pd.Timedelta(hours=settings.backtest.step_h * k)
        until = min(hour + pd.Timedelta(hours=1), as_of)
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


def store_selection(con: duckdb.DuckDBPyConnection, selection: Selection) -> None:
    backtests = backtest_rows(selection)
    folds = fold_rows(selection)
    models = model_rows(selection)
    if not backtests.empty:  # no folds at all when the history is shorter than 3 days
        ForecastBacktests.validate(backtests, lazy=True)
        ForecastBacktestFolds.validate(folds, lazy=True)
    at = selection.as_of
    tables = {"forecast_backtests": backtests, "forecast_backtest_folds": folds}
    with transaction(con):
        for table, frame in {**tables, "forecast_models": models}.items():
            run(con, "forecast/delete_selection_rows", {"table": table}, selected_at=at)
            if not frame.empty:
                with staged(con, f"staged_{table}", frame):
                    slots = {"table": table, "staged": f"staged_{table}"}
                    run(con, "forecast/insert_selection_rows", slots)
    log.info("stored selection at %s: %d series, %d folds", at, len(models), len(folds))


def backtest_rows(selection: Selection) -> pd.DataFrame:
    scores = selection.scores()
    if scores.empty:
        return pd.DataFrame()
    keys = scores["series"].map(SeriesKey.parse)
    champion = selection.chosen["champion"].iloc[0] if len(selection.chosen) else ""
    return pd.DataFrame(
        {
            "selected_at": selection.as_of,
            "series": scores["series"],
            "region": [k.region for k in keys],
            "model": [k.model for k in keys],
            "tier": [k.tier for k in keys],
            "metric": [k.metric for k in keys],
            "forecaster": scores["forecaster"],
            "folds": scores["folds"].astype(int),
            "mase": scores["mase"],
            "scaled_pinball": scores["scaled_pinball"],
            "band95_coverage": scores["band95_coverage"],
            "p95_coverage": scores["p95_coverage"],
            "chosen": scores["chosen"].astype(bool),
            "reason": scores["reason"],
            "champion": champion,
        }
    )


def fold_rows(selection: Selection) -> pd.DataFrame:
    f = selection.folds
    if f.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "selected_at": selection.as_of,
            "series": f["series"],
            "forecaster": f["forecaster"],
            "origin": f["origin"],
            "hours": f["hours"].astype(int),
            "mase": f["mase"],
            "scaled_pinball": f["scaled_pinball"],
            "in_band": f["in_band"].astype(float),
            "below_p95": f["below_p95"].astype(float),
            "conformal": f["conformal"].astype(bool),
        }
    )


SHARED_PREFIX = "_shared|"  # a model shared by many series, stored once per selection


def model_rows(selection: Selection) -> pd.DataFrame:
    """One row per series (its FittedSeries pickled), and one row per shared global model:
    series that use it are stored without it and re-linked on load."""
    rows = []
    shared: dict[str, object] = {}
    for fs in selection.fitted.values():
        stored, model = detach_shared(fs)
        if model is not None:
            shared[GBM] = model
        rows.append(
            {
                "selected_at": selection.as_of,
                "series": fs.series,
                "forecaster": fs.forecaster,
                "train_start": fs.train_start,
                "train_end": fs.train_end,
                "fallback": fs.fallback,
                "reason": fs.reason,
                "payload": pickle.dumps(stored, protocol=pickle.HIGHEST_PROTOCOL),
            }
        )
    for name, one in shared.items():
        rows.append(
            {
                "selected_at": selection.as_of,
                "series": SHARED_PREFIX + name,
                "forecaster": name,
                "train_start": None,
                "train_end": None,
                "fallback": None,
                "reason": "global model shared by the series that chose it",
                "payload": pickle.dumps(one, protocol=pickle.HIGHEST_PROTOCOL),
            }
        )
    return pd.DataFrame(rows)


def load_models(
    con: duckdb.DuckDBPyConnection, as_of: datetime
) -> tuple[pd.Timestamp | None, dict[str, FittedSeries]]:
    """The newest selection made at or before ``as_of`` (our own pickles, written above)."""
    row = run(con, "forecast/latest_selection", as_of=pd.Timestamp(as_of)).fetchone()
    if not row or row[0] is None:
        return None, {}
    selected_at = pd.Timestamp(row[0])
    loaded = {
        series: pickle.loads(payload)
        for series, payload in run(
            con, "forecast/models_of_selection", selected_at=selected_at
        ).fetchall()
    }
    shared: dict[str, Any] = {
        k[len(SHARED_PREFIX) :]: v for k, v in loaded.items() if k.startswith(SHARED_PREFIX)
    }
    models: dict[str, FittedSeries] = {}
    for series, fs in loaded.items():
        if series.startswith(SHARED_PREFIX):
            continue
        models[series] = attach_shared(fs, shared.get(GBM))
    return selected_at, models


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
    workers: int | None = None,
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
    selected_at, models = load_models(con, origin)
    info: dict[str, Any] = {"origin": origin}
    if selected_at is None or origin - selected_at > pd.Timedelta(hours=24):
        log.info("no selection in the day before %s: selecting now", origin)
        selection = run_selection(con, cfg, origin, workers)
        selected_at, models = selection.as_of, selection.fitted
        info["selection_ran"] = True
    info["selected_at"] = selected_at
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
        until=origin + pd.Timedelta(hours=1),
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
    columns = [
        "origin",
        "hour",
        "h",
        "region",
        "model",
        "tier",
        "metric",
        "point",
        *QUANTILE_COLUMNS,
        "forecaster",
        "train_start",
        "train_end",
        "fallback",
        "selected_at",
        "created_at",
    ]
    rows = out[columns]
    with transaction(con):
        for origin in rows["origin"].unique():
            run(con, "forecast/delete_forecasts", origin=pd.Timestamp(origin))
        with staged(con, "staged_forecasts", rows):
            run(con, "forecast/insert_forecasts")
    return rows
