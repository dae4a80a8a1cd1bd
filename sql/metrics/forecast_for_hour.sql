-- Per series, the newest token-rate forecast for $hour made at or before $as_of.
WITH f AS (
    SELECT region, model, tier, point, q_0_5, q_0_95,
           row_number() OVER (PARTITION BY region, model, tier ORDER BY origin DESC) AS newest
    FROM forecasts
    WHERE hour = $hour AND metric = 'token_rate' AND origin <= $as_of
)
SELECT region, model, tier, point AS forecast_point, q_0_5 AS forecast_p50,
       q_0_95 AS forecast_p95
FROM f
WHERE newest = 1
ORDER BY region, model, tier
