-- Load the rows that pass every check of the compiled schema (the passing slot: the same
-- predicates as the reasons, as one boolean filter) and are not duplicates or conflicts.
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
ANTI JOIN stage_dupes AS d USING (_row)
