-- The rows that passed: into demand_minutes.
INSERT INTO demand_minutes
SELECT minute, region, model, tier, requests, input_tokens, output_tokens, cv, $file_id
FROM agg_checked
WHERE verdict = 'load'
