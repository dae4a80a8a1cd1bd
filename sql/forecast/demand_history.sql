-- The demand mart the forecaster reads: hours in [$since, $as_of).
SELECT hour, region, model, tier, requests, input_tokens, output_tokens, token_rate,
       peak_minute_token_rate, coverage
FROM demand_hourly
WHERE hour >= $since AND hour < $as_of
ORDER BY hour, region, model, tier
