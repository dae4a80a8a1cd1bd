-- First and last arrival in the warehouse, request rows and per-minute aggregates (the
-- default replay window ends at the last).
SELECT min(first_arrival) AS first_arrival, max(last_arrival) AS last_arrival
FROM (
    SELECT min(arrival_time) AS first_arrival, max(arrival_time) AS last_arrival FROM requests
    UNION ALL
    SELECT min(minute), max(minute) + INTERVAL 59999 MILLISECOND FROM demand_minutes
)
