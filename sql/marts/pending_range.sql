-- The hour range the demand mart must recompute: every hour touched by a file not yet folded
-- in, stretched to meet the hours the mart already holds so the grid has no holes (hours
-- between two files become gap rows with coverage 0).
WITH pending AS (
    SELECT
        date_trunc('hour', min(min_arrival)) AS start_hour,
        date_trunc('hour', max(max_arrival)) AS end_hour
    FROM ingested_files
    WHERE NOT mart_refreshed AND rows_loaded > 0
),
mart AS (
    SELECT min(hour) AS first_hour, max(hour) AS last_hour FROM demand_hourly
)
SELECT
    least(p.start_hour, coalesce(m.last_hour + INTERVAL 1 HOUR, p.start_hour)) AS start_hour,
    greatest(p.end_hour, coalesce(m.first_hour - INTERVAL 1 HOUR, p.end_hour)) AS end_hour
FROM pending AS p, mart AS m
