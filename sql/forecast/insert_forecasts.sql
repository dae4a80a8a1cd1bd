-- Store forecasts (staged frame registered as staged_forecasts).
INSERT INTO forecasts SELECT * FROM staged_forecasts
