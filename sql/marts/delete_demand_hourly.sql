-- Drop the mart rows of the hours about to be recomputed (inclusive bounds, hour-aligned).
DELETE FROM demand_hourly WHERE hour BETWEEN $start_hour AND $end_hour
