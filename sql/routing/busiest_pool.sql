-- The region and model with the most request rows, and that pool's first and last arrival.
SELECT region, model, count(*) AS n, min(arrival_time) AS first_arrival,
       max(arrival_time) AS last_arrival
FROM requests
WHERE ($model = '' OR model = $model) AND ($region = '' OR region = $region)
GROUP BY region, model
ORDER BY n DESC, region, model
LIMIT 1
