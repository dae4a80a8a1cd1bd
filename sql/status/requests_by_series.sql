-- Rows per region × model × tier with their time span.
SELECT region, model, tier, count(*) AS requests, min(arrival_time) AS first_arrival,
       max(arrival_time) AS last_arrival
FROM requests
GROUP BY ALL
ORDER BY region, model, tier
