-- The demand in [$start, $end) as minute buckets per source region, model and tier, from the
-- request rows and the per-minute aggregates: what the fluid simulator replays
-- (planner.sim.demand.from_buckets). ``cv``: the coefficient of variation of the inter-arrival
-- gaps within the minute (from the rows: gaps with both ends in the minute, population s.d.,
-- at least 2 gaps; from the aggregates: their own column); where both exist, combined as the
-- request-weighted root mean square; NULL where unknown.
WITH rows_in AS (
    SELECT
        date_trunc('minute', arrival_time) AS minute,
        region,
        model,
        tier,
        input_tokens,
        output_tokens,
        epoch_us(arrival_time) / 1e6
            - lag(epoch_us(arrival_time) / 1e6) OVER (
                PARTITION BY region, model, tier, date_trunc('minute', arrival_time)
                ORDER BY arrival_time
            ) AS gap_s
    FROM requests
    WHERE arrival_time >= $start AND arrival_time < $end
),
from_rows AS (
    SELECT
        minute, region, model, tier,
        count(*) AS requests,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        CASE WHEN count(gap_s) >= 2 AND avg(gap_s) > 0
            THEN stddev_pop(gap_s) / avg(gap_s) END AS cv
    FROM rows_in
    GROUP BY ALL
),
both_sources AS (
    SELECT * FROM from_rows
    UNION ALL
    SELECT minute, region, model, tier, requests, input_tokens, output_tokens, cv
    FROM demand_minutes
    WHERE minute >= $start AND minute < $end
)
SELECT
    minute, region, model, tier,
    sum(requests) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sqrt(sum(requests * cv * cv) FILTER (WHERE cv IS NOT NULL)
        / sum(requests) FILTER (WHERE cv IS NOT NULL)) AS cv
FROM both_sources
GROUP BY ALL
ORDER BY minute, region, model, tier
