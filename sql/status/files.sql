-- The ingest manifest, newest first.
SELECT path, format, rows_read, rows_loaded, rows_quarantined, duplicates_skipped,
       min_arrival, max_arrival, ingested_at
FROM ingested_files
ORDER BY ingested_at DESC, path
