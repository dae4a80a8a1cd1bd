-- The first $minutes minutes of every hour in [$since, $until) per region × model × tier:
-- requests, tokens and the busiest minute's token rate (the nowcast's "minutes so far").
WITH per_minute AS (
    SELECT
        region, model, tier,
        time_bucket(INTERVAL 1 MINUTE, arrival_time) AS minute,
        count(*) AS requests,
        sum(input_tokens + output_tokens) AS tokens
    FROM requests
    WHERE arrival_time >= $since AND arrival_time < $until
        AND minute(arrival_time) < $minutes
    GROUP BY ALL
)
SELECT
    date_trunc('hour', minute) AS hour,
    region, model, tier,
    sum(requests) AS requests,
    sum(tokens) AS tokens,
    max(tokens) / 60.0 AS peak_minute_token_rate
FROM per_minute
GROUP BY ALL
ORDER BY hour, region, model, tier
