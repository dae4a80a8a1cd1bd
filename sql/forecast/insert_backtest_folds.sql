-- Store the fold scores (staged frame registered as staged_folds).
INSERT INTO forecast_backtest_folds SELECT * FROM staged_folds
