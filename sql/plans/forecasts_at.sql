-- The forecasts made at $origin.
SELECT * FROM forecasts WHERE origin = $origin
