-- A re-run for the same origin replaces its forecasts (idempotent).
DELETE FROM forecasts WHERE origin = $origin
