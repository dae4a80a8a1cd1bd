-- Store the selection scores (staged frame registered as staged_backtests).
INSERT INTO forecast_backtests SELECT * FROM staged_backtests
