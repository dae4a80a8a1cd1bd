-- The demand in [$start, $end) as minute buckets per source region, model and tier, from the
-- request rows and the per-minute aggregates: what the fluid simulator replays
-- (planner.sim.demand.from_buckets).
SELECT
    minute, region, model, tier,
    sum(requests) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens
FROM (
    SELECT
        date_trunc('minute', arrival_time) AS minute,
        region,
        model,
        tier,
        count(*) AS requests,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens
    FROM requests
    WHERE arrival_time >= $start AND arrival_time < $end
    GROUP BY ALL
    UNION ALL
    SELECT minute, region, model, tier, requests, input_tokens, output_tokens
    FROM demand_minutes
    WHERE minute >= $start AND minute < $end
)
GROUP BY ALL
ORDER BY minute, region, model, tier
