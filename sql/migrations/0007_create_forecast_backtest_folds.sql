-- The same backtests fold by fold (one row per series, forecaster and origin).
CREATE TABLE forecast_backtest_folds (
    selected_at TIMESTAMP NOT NULL,
    series VARCHAR NOT NULL,
    forecaster VARCHAR NOT NULL,
    origin TIMESTAMP NOT NULL,
    hours INTEGER NOT NULL,
    mase DOUBLE,
    scaled_pinball DOUBLE,
    in_band DOUBLE,
    below_p95 DOUBLE,
    conformal BOOLEAN NOT NULL,
    PRIMARY KEY (selected_at, series, forecaster, origin)
);
