-- The manifest row that makes a re-ingest of the same content a no-op; file_key is the number
-- the file's rows carry in requests.file_key (ingest/next_file_key).
INSERT INTO ingested_files (
    file_id, file_key, path, format, adapter, bytes, rows_read, rows_loaded,
    rows_quarantined, duplicates_skipped, min_arrival, max_arrival, ingested_at, mart_refreshed
)
VALUES (
    $file_id, $file_key, $path, $format, $adapter, $bytes, $rows_read, $rows_loaded,
    $rows_quarantined, $duplicates_skipped, $min_arrival, $max_arrival, $now, false
)
