-- Requests per hour and tier over [$start, $end) from the demand mart: the history the
-- volume and tier-share bands are learned from, and the hour being checked.
SELECT hour, tier, sum(requests) AS requests
FROM demand_hourly
WHERE hour >= $start AND hour < $end AND coverage > 0
GROUP BY ALL
ORDER BY hour, tier
