-- The fitted models of one selection.
SELECT series, payload FROM forecast_models WHERE selected_at = $selected_at ORDER BY series
