-- Mooncake conversation trace (Apache-2.0): {"timestamp": ms since trace start, "input_length",
-- "output_length", "hash_ids"}. The trace start ($start, UTC) and region/model/tier come from
-- the caller; request_id = prefix (from the file's content hash) + line number.
SELECT
    _row,
    CASE WHEN NOT json_valid(line) THEN 'malformed JSON: ' || left(line, 80) END AS _parse_error,
    $id_prefix || '-' || CAST(_row AS VARCHAR) AS request_id,
    CASE WHEN json_valid(line)
        THEN CAST($start + to_milliseconds(
            TRY_CAST(json_extract_string(line, '$.timestamp') AS BIGINT)) AS VARCHAR)
    END AS arrival_time,
    $region AS region,
    $model AS model,
    $tier AS tier,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.input_length') END
        AS input_tokens,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.output_length') END
        AS output_tokens,
    $tenant AS tenant
FROM (
    SELECT row_number() OVER () AS _row, line
    FROM read_csv(
        $path,
        columns = {'line': 'VARCHAR'},
        header = false,
        delim = E'\x1e',
        quote = '',
        escape = '',
        auto_detect = false,
        store_rejects = true,
        rejects_table = 'stage_rejects',
        rejects_scan = 'stage_rejects_scan'
    )
) AS lines
WHERE line IS NOT NULL AND trim(line) <> ''
