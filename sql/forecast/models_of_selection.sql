-- The chosen models of one selection (their fitted state as JSON: planner/forecast/state.py).
SELECT series, forecaster, train_start, train_end, fallback, reason, state
FROM forecast_models WHERE selected_at = $selected_at ORDER BY series
