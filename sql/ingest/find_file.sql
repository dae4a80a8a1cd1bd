-- Has this content (with these adapter parameters) been ingested before?
SELECT path, ingested_at, rows_loaded FROM ingested_files WHERE file_id = $file_id
