-- Daily model selection: per series and candidate forecaster, its backtest scores (means over
-- the folds it ran) and whether it was chosen. selected_at is the selection's as-of time.
CREATE TABLE forecast_backtests (
    selected_at TIMESTAMP NOT NULL,
    series VARCHAR NOT NULL,
    region VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    forecaster VARCHAR NOT NULL,
    folds INTEGER NOT NULL,
    mase DOUBLE,
    scaled_pinball DOUBLE,
    band95_coverage DOUBLE,
    p95_coverage DOUBLE,
    chosen BOOLEAN NOT NULL,
    reason VARCHAR,
    champion VARCHAR NOT NULL,
    PRIMARY KEY (selected_at, series, forecaster)
);
