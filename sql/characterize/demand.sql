-- The whole hourly demand mart (characterisation reads every series and hour).
SELECT hour, region, model, tier, requests, input_tokens, output_tokens, token_rate,
       peak_minute_token_rate, coverage
FROM demand_hourly
ORDER BY hour, region, model, tier
