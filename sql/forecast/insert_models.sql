-- Store the fitted models (staged frame registered as staged_models).
INSERT INTO forecast_models SELECT * FROM staged_models
