-- Per-tenant traffic of the hour [$start, $end) from the request log, against each tenant's
-- usual share (its share of the cost over the 24 hours before $start); cost is in token units
-- input + 2 · output (planner.sim.fairness). A tenant exceeded its share when its share of the
-- hour is above $headroom × its usual share (a tenant unseen in the 24 h has usual share 0).
WITH hour_rows AS (
    SELECT tenant, input_tokens + 2 * output_tokens AS cost
    FROM requests
    WHERE arrival_time >= $start AND arrival_time < $end AND tenant IS NOT NULL
),
usual_rows AS (
    SELECT tenant, input_tokens + 2 * output_tokens AS cost
    FROM requests
    WHERE arrival_time >= $start::TIMESTAMP - INTERVAL 24 HOUR
        AND arrival_time < $start
        AND tenant IS NOT NULL
),
h AS (SELECT tenant, COUNT(*) AS requests, SUM(cost) AS cost FROM hour_rows GROUP BY tenant),
u AS (SELECT tenant, SUM(cost) AS cost FROM usual_rows GROUP BY tenant)
SELECT
    h.tenant,
    h.requests,
    h.cost,
    h.cost / SUM(h.cost) OVER () AS share,
    COALESCE(u.cost / (SELECT SUM(cost) FROM u), 0.0) AS usual_share,
    h.cost / SUM(h.cost) OVER () > $headroom * COALESCE(u.cost / (SELECT SUM(cost) FROM u), 0.0)
        AS exceeded
FROM h
LEFT JOIN u USING (tenant)
ORDER BY h.cost DESC, h.tenant
