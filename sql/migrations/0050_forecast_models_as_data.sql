-- The chosen model of each series is stored as data, no longer pickled: typed columns for the
-- choice and its fit window, the fitted state as JSON (planner/forecast/state.py: registry
-- name and statsforecast fitted state, LightGBM model text, residual quantiles). Rows stored
-- before hold pickles, which are no longer read: the table is recreated empty, so the next
-- forecast finds no selection in the day before and runs the daily selection first. (DuckDB
-- cannot drop a column of a keyed table in the transaction that emptied it: hence DROP and
-- CREATE.) The selections' backtest scores and folds are kept.
DROP TABLE forecast_models;
CREATE TABLE forecast_models (
    selected_at TIMESTAMP NOT NULL,
    series VARCHAR NOT NULL,
    forecaster VARCHAR NOT NULL,
    train_start TIMESTAMP,
    train_end TIMESTAMP,
    fallback VARCHAR,
    reason VARCHAR,
    state JSON NOT NULL,
    PRIMARY KEY (selected_at, series)
);
