"""Forecasting against the warehouse: read the demand mart, run the planner's selection and
forecasts, validate, store. The CLI and the Prefect flows call these."""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig
from planner.forecast.backtest import BacktestSettings
from planner.forecast.forecast import FittedSeries
from planner.forecast.pipeline import (
    ChunkSelection,
    ChunkTask,
    ForecastSettings,
    Selection,
    forecast,
    select_models,
)
from planner.forecast.select import SelectionSettings
from planner.forecast.series import SeriesKey
from validation.forecasts import (
    QUANTILE_COLUMNS,
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
    as_of = pd.Timestamp(as_of).tz_localize(None) if pd.Timestamp(as_of).tzinfo else as_of
    since = pd.Timestamp(as_of) - pd.Timedelta(hours=history_h)
    return run(con, "forecast/demand_history", since=since, as_of=as_of).df()


def process_mapper(
    workers: int, on_done: Callable[[str], None] | None = None
) -> Callable[[Callable[[ChunkTask], ChunkSelection], list[ChunkTask]], list[ChunkSelection]]:
    """Run chunks in a process pool, largest first (so the workers finish together)."""

    def mapper(
        fn: Callable[[ChunkTask], ChunkSelection], tasks: list[ChunkTask]
    ) -> list[ChunkSelection]:
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
) -> Selection:
    """The daily selection at ``as_of``, stored (replacing an earlier run at the same time)."""
    settings = settings_from_config(cfg)
    as_of_ts = (
        pd.Timestamp(as_of).tz_localize(None) if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of)
    )
    as_of_ts = as_of_ts.floor("h")
    demand = load_demand(con, as_of_ts, settings.history_h)
    if demand.empty:
        raise ValueError(f"no demand before {as_of_ts}: ingest request logs first")
    mapper = process_mapper(workers or cfg.forecast.workers, on_done)
    selection = select_models(demand, as_of_ts, settings, mapper)
    store_selection(con, selection)
    return selection


def store_selection(con: duckdb.DuckDBPyConnection, selection: Selection) -> None:
    backtests = backtest_rows(selection)
    folds = fold_rows(selection)
    models = model_rows(selection)
    if not backtests.empty:  # no folds at all when the history is shorter than 3 days
        ForecastBacktests.validate(backtests, lazy=True)
        ForecastBacktestFolds.validate(folds, lazy=True)
    at = selection.as_of
    con.execute("BEGIN")
    try:
        run(con, "forecast/delete_selection", selected_at=at)
        run(con, "forecast/delete_selection_folds", selected_at=at)
        run(con, "forecast/delete_selection_models", selected_at=at)
        for name, frame, sql_name in (
            ("staged_backtests", backtests, "forecast/insert_backtests"),
            ("staged_folds", folds, "forecast/insert_backtest_folds"),
            ("staged_models", models, "forecast/insert_models"),
        ):
            if frame.empty:
                continue
            con.register(name, frame)
            try:
                run(con, sql_name)
            finally:
                con.unregister(name)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
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


def model_rows(selection: Selection) -> pd.DataFrame:
    rows = [
        {
            "selected_at": selection.as_of,
            "series": fs.series,
            "forecaster": fs.forecaster,
            "train_start": fs.train_start,
            "train_end": fs.train_end,
            "fallback": fs.fallback,
            "reason": fs.reason,
            "payload": pickle.dumps(fs, protocol=pickle.HIGHEST_PROTOCOL),
        }
        for fs in selection.fitted.values()
    ]
    return pd.DataFrame(rows)


def load_models(
    con: duckdb.DuckDBPyConnection, as_of: datetime
) -> tuple[pd.Timestamp | None, dict[str, FittedSeries]]:
    """The newest selection made at or before ``as_of`` (our own pickles, written above)."""
    row = run(con, "forecast/latest_selection", as_of=pd.Timestamp(as_of)).fetchone()
    if not row or row[0] is None:
        return None, {}
    selected_at = pd.Timestamp(row[0])
    models = {
        series: pickle.loads(payload)
        for series, payload in run(
            con, "forecast/models_of_selection", selected_at=selected_at
        ).fetchall()
    }
    return selected_at, models


def run_forecast(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    as_of: datetime,
    horizon: int | None = None,
    workers: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Forecasts for the hours from ``as_of`` on, stored. Runs a selection first when none
    was made at or before ``as_of`` (or the newest is more than a day old)."""
    settings = settings_from_config(cfg)
    if horizon:
        settings = replace(settings, horizon=horizon)
    origin = pd.Timestamp(as_of)
    origin = (origin.tz_convert("UTC").tz_localize(None) if origin.tzinfo else origin).floor("h")
    selected_at, models = load_models(con, origin)
    info: dict[str, Any] = {"origin": origin}
    if selected_at is None or origin - selected_at > pd.Timedelta(hours=24):
        log.info("no selection in the day before %s: selecting now", origin)
        selection = run_selection(con, cfg, origin, workers)
        selected_at, models = selection.as_of, selection.fitted
        info["selection_ran"] = True
    info["selected_at"] = selected_at
    demand = load_demand(con, origin, settings.history_h)
    frame = forecast(demand, models, origin, settings, timezones(cfg))
    stored = store_forecasts(con, frame, selected_at)
    info["rows"] = len(stored)
    return stored, info


def store_forecasts(
    con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, selected_at: pd.Timestamp | None
) -> pd.DataFrame:
    if frame.empty:
        return frame
    out = frame.rename(columns={f"q_{t}": c for t, c in zip(_TAUS, QUANTILE_COLUMNS, strict=True)})
    out["selected_at"] = selected_at
    out["created_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
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
    staged = out[columns]
    con.execute("BEGIN")
    try:
        for origin in staged["origin"].unique():
            run(con, "forecast/delete_forecasts", origin=pd.Timestamp(origin))
        con.register("staged_forecasts", staged)
        try:
            run(con, "forecast/insert_forecasts")
        finally:
            con.unregister("staged_forecasts")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return staged


_TAUS = (0.025, 0.05, 0.5, 0.9, 0.95, 0.975, 0.99)
