-- How recent each stage's data is: newest request arrival, newest complete mart hour (some
-- coverage), newest forecast origin and newest plan made.
SELECT
    (SELECT max(arrival_time) FROM requests) AS newest_arrival,
    (SELECT max(hour) FROM demand_hourly WHERE coverage > 0) AS newest_demand_hour,
    (SELECT max(origin) FROM forecasts) AS newest_forecast_origin,
    (SELECT max(created_at) FROM plans) AS newest_plan_created
