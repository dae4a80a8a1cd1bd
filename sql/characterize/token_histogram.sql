-- Request counts per model, tier and log2 bucket of input / output tokens (for the plots).
SELECT model, tier, 'input' AS kind, floor(log2(greatest(input_tokens, 1))) AS bucket,
       count(*) AS requests
FROM requests GROUP BY ALL
UNION ALL
SELECT model, tier, 'output' AS kind, floor(log2(greatest(output_tokens, 1))) AS bucket,
       count(*) AS requests
FROM requests GROUP BY ALL
ORDER BY model, tier, kind, bucket
