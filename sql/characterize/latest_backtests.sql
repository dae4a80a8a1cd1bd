-- Chosen forecasters of the newest selection, hardest first.
SELECT series, region, model, tier, metric, forecaster, mase, band95_coverage, reason
FROM forecast_backtests
WHERE chosen AND selected_at = (SELECT max(selected_at) FROM forecast_backtests)
ORDER BY mase DESC NULLS LAST
