-- The chosen model of each series, fitted at selection time (pickled planner value
-- FittedSeries: parameters, residual quantiles, fallback). Hourly forecasts re-condition it.
CREATE TABLE forecast_models (
    selected_at TIMESTAMP NOT NULL,
    series VARCHAR NOT NULL,
    forecaster VARCHAR NOT NULL,
    train_start TIMESTAMP,
    train_end TIMESTAMP,
    fallback VARCHAR,
    reason VARCHAR,
    payload BLOB NOT NULL,
    PRIMARY KEY (selected_at, series)
);
