-- Per series: volume, mean and peak token rates over observed hours, and the busiest hour.
SELECT
    region, model, tier,
    sum(requests) AS requests,
    count(*) FILTER (WHERE coverage > 0) AS observed_hours,
    count(*) FILTER (WHERE coverage = 0) AS gap_hours,
    avg(token_rate) FILTER (WHERE coverage > 0) AS mean_token_rate,
    max(token_rate) AS peak_hour_token_rate,
    max(peak_minute_token_rate) AS peak_minute_token_rate,
    max(peak_minute_token_rate) / nullif(avg(token_rate) FILTER (WHERE coverage > 0), 0)
        AS peak_to_mean
FROM demand_hourly
GROUP BY ALL
ORDER BY region, model, tier
