-- Per series, the mean token rate measured in $hour against the newest forecast made at or
-- before that hour (point, p50, p95); series with a forecast but no row count as 0 measured.
WITH f AS (
    SELECT region, model, tier, point, q_0_5, q_0_95,
           row_number() OVER (PARTITION BY region, model, tier ORDER BY origin DESC) AS newest
    FROM forecasts
    WHERE hour = $hour AND metric = 'token_rate' AND origin <= $hour
),
d AS (
    SELECT region, model, tier, token_rate FROM demand_hourly WHERE hour = $hour
)
SELECT
    coalesce(d.region, f.region) AS region,
    coalesce(d.model, f.model) AS model,
    coalesce(d.tier, f.tier) AS tier,
    d.token_rate AS actual,
    f.point AS forecast_point,
    f.q_0_5 AS forecast_p50,
    f.q_0_95 AS forecast_p95
FROM d
FULL OUTER JOIN (SELECT * FROM f WHERE newest = 1) AS f
    ON f.region = d.region AND f.model = d.model AND f.tier = d.tier
ORDER BY region, model, tier
