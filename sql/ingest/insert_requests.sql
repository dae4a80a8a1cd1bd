-- Pass 3: load the rows that passed every check and are not duplicates.
INSERT INTO requests (
    request_id, arrival_time, region, model, tier, input_tokens, output_tokens,
    tenant, ttft_ms, e2e_ms, file_id
)
WITH stage_checked AS (
    {{ checked }}
)
SELECT
    c.request_id, c.arrival_time, c.region, c.model, c.tier, c.input_tokens, c.output_tokens,
    c.tenant, c.ttft_ms, c.e2e_ms, $file_id
FROM stage_checked AS c
ANTI JOIN stage_dupes AS d USING (_row)
WHERE c._reason = ''
