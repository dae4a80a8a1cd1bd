-- A re-run of the same selection replaces its fitted models.
DELETE FROM forecast_models WHERE selected_at = $selected_at
