-- Per tier, the mean token rate measured in $hour against what the newest forecast made
-- before that hour said (point and p95), summed over regions and models.
WITH f AS (
    SELECT region, model, tier, point, q_0_95,
           row_number() OVER (PARTITION BY region, model, tier ORDER BY origin DESC) AS newest
    FROM forecasts
    WHERE hour = $hour AND metric = 'token_rate' AND origin <= $hour
)
SELECT
    d.tier,
    sum(d.token_rate) AS actual_tokens_per_s,
    sum(f.point) AS forecast_tokens_per_s,
    sum(f.q_0_95) AS forecast_p95_tokens_per_s
FROM demand_hourly AS d
LEFT JOIN f ON f.region = d.region AND f.model = d.model AND f.tier = d.tier AND f.newest = 1
WHERE d.hour = $hour
GROUP BY d.tier
ORDER BY d.tier
