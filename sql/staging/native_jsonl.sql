-- Native request log, JSON lines: each line read as text so that one malformed line is one bad
-- row, not a failed file; fields extracted by name (absent keys become NULL). Blank lines are
-- skipped but keep the numbering. \x1e cannot occur unescaped in JSON, so lines never split.
SELECT
    _row,
    CASE WHEN NOT json_valid(line) THEN 'malformed JSON: ' || left(line, 80) END AS _parse_error,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.request_id') END AS request_id,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.arrival_time') END AS arrival_time,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.region') END AS region,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.model') END AS model,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.tier') END AS tier,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.input_tokens') END AS input_tokens,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.output_tokens') END AS output_tokens,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.tenant') END AS tenant,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.ttft_ms') END AS ttft_ms,
    CASE WHEN json_valid(line) THEN json_extract_string(line, '$.e2e_ms') END AS e2e_ms
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
