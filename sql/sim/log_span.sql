-- First and last arrival in the warehouse (the default replay window ends at the last).
SELECT min(arrival_time) AS first_arrival, max(arrival_time) AS last_arrival FROM requests
