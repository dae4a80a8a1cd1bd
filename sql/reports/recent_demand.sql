-- The demand mart over [$start, $end): recent actuals for the plan report's forecast plot.
SELECT hour, region, model, tier, token_rate, peak_minute_token_rate
FROM demand_hourly
WHERE hour >= $start AND hour < $end
ORDER BY hour
