-- Azure LLM inference trace 2023 (Splitwise, CC-BY-4.0): TIMESTAMP, ContextTokens,
-- GeneratedTokens. Region, model and tier are not in the trace; the caller says what it stands
-- for. request_id = prefix (derived from the file's content hash) + record number.
SELECT
    row_number() OVER () AS _row,
    $id_prefix || '-' || CAST(row_number() OVER () AS VARCHAR) AS request_id,
    "TIMESTAMP" AS arrival_time,
    $region AS region,
    $model AS model,
    $tier AS tier,
    "ContextTokens" AS input_tokens,
    "GeneratedTokens" AS output_tokens,
    $tenant AS tenant
FROM read_csv(
    $path,
    header = true,
    all_varchar = true,
    store_rejects = true,
    rejects_table = 'stage_rejects',
    rejects_scan = 'stage_rejects_scan'
)
