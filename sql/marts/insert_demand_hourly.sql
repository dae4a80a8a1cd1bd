-- Demand per hour × region × model × tier for hours $start_hour..$end_hour (inclusive), from
-- the request rows and the per-minute aggregates together.
-- Rates are tokens per observed second; the peak is the busiest 1-minute bucket of the hour.
-- coverage: share of the hour inside some ingested file's time span (a file speaks for every
-- series over its span), so an hour with coverage 0 is a collection gap, not zero demand.
INSERT INTO demand_hourly
WITH series AS (
    SELECT DISTINCT region, model, tier FROM requests
    UNION
    SELECT DISTINCT region, model, tier FROM demand_minutes
),
hours AS (
    SELECT unnest(generate_series($start_hour, $end_hour, INTERVAL 1 HOUR)) AS hour
),
row_minutes AS (
    SELECT
        region, model, tier,
        time_bucket(INTERVAL 1 MINUTE, arrival_time) AS minute,
        count(*) AS requests,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens
    FROM requests
    WHERE arrival_time >= $start_hour AND arrival_time < $end_hour + INTERVAL 1 HOUR
    GROUP BY ALL
),
per_minute AS (
    -- request rows and per-minute aggregates (demand_minutes) are the same demand
    SELECT region, model, tier, minute,
        sum(requests) AS requests,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens
    FROM (
        SELECT * FROM row_minutes
        UNION ALL
        SELECT region, model, tier, minute, requests, input_tokens, output_tokens
        FROM demand_minutes
        WHERE minute >= $start_hour AND minute < $end_hour + INTERVAL 1 HOUR
    )
    GROUP BY ALL
),
per_hour AS (
    SELECT
        region, model, tier,
        date_trunc('hour', minute) AS hour,
        sum(requests) AS requests,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        max(input_tokens + output_tokens) / 60.0 AS peak_minute_token_rate,
        max(requests) AS peak_minute_requests
    FROM per_minute
    GROUP BY ALL
),
coverage AS (
    SELECT
        h.hour,
        least(1.0, max(
            epoch(least(f.max_arrival, h.hour + INTERVAL 1 HOUR) - greatest(f.min_arrival, h.hour))
        ) / 3600.0) AS coverage
    FROM hours AS h
    JOIN ingested_files AS f
        ON f.rows_loaded > 0
        AND f.min_arrival < h.hour + INTERVAL 1 HOUR
        AND f.max_arrival >= h.hour
    GROUP BY h.hour
),
grid AS (
    SELECT
        h.hour, s.region, s.model, s.tier,
        coalesce(p.requests, 0) AS requests,
        coalesce(p.input_tokens, 0) AS input_tokens,
        coalesce(p.output_tokens, 0) AS output_tokens,
        coalesce(p.peak_minute_token_rate, 0.0) AS peak_minute_token_rate,
        coalesce(p.peak_minute_requests, 0) AS peak_minute_requests,
        greatest(coalesce(c.coverage, 0.0), CASE WHEN p.requests > 0 THEN 1.0 / 60 ELSE 0 END)
            AS coverage
    FROM series AS s
    CROSS JOIN hours AS h
    LEFT JOIN per_hour AS p
        ON p.hour = h.hour AND p.region = s.region AND p.model = s.model AND p.tier = s.tier
    LEFT JOIN coverage AS c ON c.hour = h.hour
)
SELECT
    hour, region, model, tier, requests, input_tokens, output_tokens,
    CASE WHEN coverage > 0 THEN input_tokens / (3600.0 * coverage) ELSE 0 END AS input_rate,
    CASE WHEN coverage > 0 THEN output_tokens / (3600.0 * coverage) ELSE 0 END AS output_rate,
    CASE WHEN coverage > 0 THEN (input_tokens + output_tokens) / (3600.0 * coverage) ELSE 0 END
        AS token_rate,
    peak_minute_token_rate,
    peak_minute_requests,
    coverage
FROM grid
