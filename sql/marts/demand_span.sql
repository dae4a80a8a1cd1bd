-- The first and last hour the demand mart holds (to say where the data ends).
SELECT min(hour) AS first_hour, max(hour) AS last_hour FROM demand_hourly
