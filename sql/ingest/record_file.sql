-- The manifest row that makes a re-ingest of the same content a no-op.
INSERT INTO ingested_files (
    file_id, path, format, adapter, bytes, rows_read, rows_loaded, rows_quarantined,
    duplicates_skipped, min_arrival, max_arrival, ingested_at, mart_refreshed
)
VALUES (
    $file_id, $path, $format, $adapter, $bytes, $rows_read, $rows_loaded, $rows_quarantined,
    $duplicates_skipped, $min_arrival, $max_arrival, $now, false
)
