-- Application profile per tenant, learned from the request log over [$start, $end):
-- request rate, input/output token shape, tier mix, and requests per user action (a user action
-- is a run of the tenant's requests each arriving within $action_gap_s of the previous one; the
-- log has no session ids, so this is the burst structure the log shows).
WITH r AS (
    SELECT
        tenant,
        arrival_time,
        tier,
        input_tokens,
        output_tokens,
        CASE
            WHEN LAG(arrival_time) OVER (PARTITION BY tenant ORDER BY arrival_time) IS NULL
                OR epoch(arrival_time)
                - epoch(LAG(arrival_time) OVER (PARTITION BY tenant ORDER BY arrival_time))
                > $action_gap_s
                THEN 1
            ELSE 0
        END AS starts_action
    FROM requests
    WHERE arrival_time >= $start AND arrival_time < $end AND tenant IS NOT NULL
)
SELECT
    tenant,
    COUNT(*) AS requests,
    COUNT(*) / (epoch($end::TIMESTAMP) - epoch($start::TIMESTAMP)) AS requests_per_s,
    AVG(input_tokens) AS mean_input,
    AVG(output_tokens) AS mean_output,
    quantile_cont(input_tokens, 0.5) AS p50_input,
    quantile_cont(output_tokens, 0.5) AS p50_output,
    COUNT(*) / SUM(starts_action) AS requests_per_action,
    AVG(CASE WHEN tier = 'IW-F' THEN 1.0 ELSE 0.0 END) AS iwf_share,
    AVG(CASE WHEN tier = 'IW-N' THEN 1.0 ELSE 0.0 END) AS iwn_share,
    AVG(CASE WHEN tier = 'NIW' THEN 1.0 ELSE 0.0 END) AS niw_share
FROM r
GROUP BY tenant
ORDER BY tenant
