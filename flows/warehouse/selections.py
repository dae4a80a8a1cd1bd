"""A daily selection in the warehouse: its backtest scores and folds, and each series' chosen
model as data (``forecast_models``: typed columns for the choice and its fit window, the
fitted state as JSON, :mod:`planner.forecast.state`; no pickles)."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import duckdb
import pandas as pd

from flows.warehouse.sqlfiles import delete_rows, insert_frame, run, transaction
from planner.forecast.forecast import FittedSeries, attach_shared, detach_shared
from planner.forecast.gbm import NAME as GBM
from planner.forecast.gbm import GlobalGBM
from planner.forecast.pipeline import Selection
from planner.forecast.series import SeriesKey
from planner.forecast.state import fitted_from_state, fitted_state, gbm_from_state, gbm_state
from validation.forecasts import ForecastBacktestFolds, ForecastBacktests

log = logging.getLogger(__name__)
SHARED_PREFIX = "_shared|"  # a model shared by many series, stored once per selection


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
            delete_rows(con, table, "selected_at", at)
            if not frame.empty:
                insert_frame(con, table, frame)
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
    """One row per series, and one per shared global model: series that use it are stored
    without it and re-linked on load."""
    rows = []
    shared: dict[str, GlobalGBM] = {}
    for fs in selection.fitted.values():
        stored, model = detach_shared(fs)
        if model is not None:
            shared[GBM] = model
        window = (fs.train_start, fs.train_end)
        rows.append(
            (fs.series, fs.forecaster, *window, fs.fallback, fs.reason, fitted_state(stored))
        )
    for name, one in shared.items():
        reason = "global model shared by the series that chose it"
        rows.append((SHARED_PREFIX + name, name, None, None, None, reason, gbm_state(one)))
    columns = ["series", "forecaster", "train_start", "train_end", "fallback", "reason", "state"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["state"] = [json.dumps(s, allow_nan=False) for s in frame["state"]]
    frame.insert(0, "selected_at", selection.as_of)
    return frame


def load_models(
    con: duckdb.DuckDBPyConnection, as_of: datetime
) -> tuple[pd.Timestamp | None, dict[str, FittedSeries]]:
    """The newest selection made at or before ``as_of``, each series' model rebuilt from its
    stored state."""
    row = run(con, "forecast/latest_selection", as_of=pd.Timestamp(as_of)).fetchone()
    if not row or row[0] is None:
        return None, {}
    selected_at = pd.Timestamp(row[0])
    cursor = run(con, "forecast/models_of_selection", selected_at=selected_at)
    names = [d[0] for d in cursor.description or []]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    shared = {
        r["series"][len(SHARED_PREFIX) :]: gbm_from_state(json.loads(r["state"]))
        for r in rows
        if r["series"].startswith(SHARED_PREFIX)
    }
    models = {
        r["series"]: attach_shared(fitted_from_state(r, json.loads(r["state"])), shared.get(GBM))
        for r in rows
        if not r["series"].startswith(SHARED_PREFIX)
    }
    return selected_at, models
