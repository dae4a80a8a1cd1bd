-- The request log in [$start, $end) as minute buckets per source region, model and tier:
-- what the fluid simulator replays (planner.sim.demand.from_buckets).
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
ORDER BY minute, region, model, tier
