-- A re-run of the same selection replaces its folds.
DELETE FROM forecast_backtest_folds WHERE selected_at = $selected_at
