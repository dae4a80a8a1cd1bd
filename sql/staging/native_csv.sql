-- Native request log, CSV (gzip by extension): every column as text plus its record number.
-- Malformed lines (wrong field count, bad UTF-8, broken quoting) go to stage_rejects.
SELECT row_number() OVER () AS _row, *
FROM read_csv(
    $path,
    header = true,
    all_varchar = true,
    store_rejects = true,
    rejects_table = 'stage_rejects',
    rejects_scan = 'stage_rejects_scan'
)
