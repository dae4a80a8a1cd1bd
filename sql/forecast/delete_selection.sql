-- A re-run of the same selection replaces it (idempotent).
DELETE FROM forecast_backtests WHERE selected_at = $selected_at
