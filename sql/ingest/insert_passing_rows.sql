-- Load every row that passes the checks, when the batch has no duplicates or conflicts (the
-- usual case): insert_requests without its anti-join, which costs ~8 % of the load.
INSERT INTO requests (
    request_id, arrival_time, region, model, tier, input_tokens, output_tokens,
    tenant, ttft_ms, e2e_ms, file_key
)
WITH stage_passing AS (
    {{ passing }}
)
SELECT
    c.request_id, c.arrival_time, c.region, c.model, c.tier, c.input_tokens, c.output_tokens,
    c.tenant, c.ttft_ms, c.e2e_ms, $file_key
FROM stage_passing AS c
