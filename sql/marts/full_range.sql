-- The hour range of the whole demand log (request rows and per-minute aggregates).
SELECT
    date_trunc('hour', min(t)) AS start_hour,
    date_trunc('hour', max(t)) AS end_hour
FROM (
    SELECT arrival_time AS t FROM requests
    UNION ALL
    SELECT minute AS t FROM demand_minutes
)
