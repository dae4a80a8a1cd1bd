-- The integer key of the file being loaded (rows reference it in requests.file_key). Read inside
-- the file's transaction; ingested_files.file_key is UNIQUE, so a concurrent writer taking the
-- same number fails its insert and rolls back whole.
SELECT coalesce(max(file_key), 0) + 1 FROM ingested_files
