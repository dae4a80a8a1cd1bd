-- Store forecasts (staged frame registered as staged_forecasts; columns matched by name).
INSERT INTO forecasts BY NAME SELECT * FROM staged_forecasts
