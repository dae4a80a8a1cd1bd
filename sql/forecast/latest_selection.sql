-- The newest selection made with data up to $as_of (never one made later: no look-ahead).
SELECT max(selected_at) FROM forecast_models WHERE selected_at <= $as_of
