-- Scores of the chosen forecasters of one selection, worst first.
SELECT series, region, model, tier, metric, forecaster, folds, mase, scaled_pinball,
       band95_coverage, p95_coverage, reason
FROM forecast_backtests
WHERE selected_at = $selected_at AND chosen
ORDER BY mase DESC NULLS LAST
