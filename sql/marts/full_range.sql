-- The hour range of the whole request log.
SELECT
    date_trunc('hour', min(arrival_time)) AS start_hour,
    date_trunc('hour', max(arrival_time)) AS end_hour
FROM requests
