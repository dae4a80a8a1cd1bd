-- A re-run of the same selection replaces its rows of {{ table }} (forecast_backtests, _folds, forecast_models).
DELETE FROM {{ table }} WHERE selected_at = $selected_at
