-- An integer file key in `requests` in place of the 64-character file_id (sha256) on every row:
-- the string cost the load ~0.15x of a bare CTAS of the same file (issue 12). The manifest
-- `ingested_files` keeps file_id (the content hash that makes a re-ingest a no-op) and gains
-- file_key, 1, 2, ... in ingest order; `requests.file_key` references it. No FOREIGN KEY: DuckDB
-- would probe an index per inserted row, and the manifest row is written after the file's rows
-- (in the same transaction); the ingest reconciles the rows of a file by its key instead.
--
-- Upgrade of an existing warehouse, in this migration's one transaction (a failure or a kill
-- leaves it as it was): rows whose file_id has no manifest row (none are written by
-- `sageserve ingest`; hand-made rows could be) get one, format 'unknown', so no row loses its
-- file; the manifest is rebuilt with its keys; `requests` gets file_key in place (an UPDATE keeps
-- the rows' physical order, hence the time-range zone maps) and the last statement fails the
-- migration if any row was left without a key. The old column is dropped by 0041 (DuckDB cannot
-- drop a column in the transaction that updated its table).
INSERT INTO ingested_files (
    file_id, path, format, adapter, bytes, rows_read, rows_loaded, rows_quarantined,
    duplicates_skipped, min_arrival, max_arrival, ingested_at, mart_refreshed
)
SELECT
    r.file_id,
    '(rows without a manifest row, kept by migration 0040)',
    'unknown',
    NULL,
    0,
    count(*),
    count(*),
    0,
    0,
    min(r.arrival_time),
    max(r.arrival_time),
    CAST(now() AS TIMESTAMP),
    false
FROM requests AS r
ANTI JOIN ingested_files AS f USING (file_id)
GROUP BY r.file_id;

CREATE TABLE ingested_files_keyed (
    file_id VARCHAR PRIMARY KEY,
    file_key INTEGER NOT NULL UNIQUE CHECK (file_key > 0),
    path VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    adapter VARCHAR,
    bytes BIGINT NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    duplicates_skipped BIGINT NOT NULL,
    min_arrival TIMESTAMP,
    max_arrival TIMESTAMP,
    ingested_at TIMESTAMP NOT NULL,
    mart_refreshed BOOLEAN NOT NULL DEFAULT false
);

INSERT INTO ingested_files_keyed (
    file_id, file_key, path, format, adapter, bytes, rows_read, rows_loaded, rows_quarantined,
    duplicates_skipped, min_arrival, max_arrival, ingested_at, mart_refreshed
)
SELECT
    file_id,
    -- one run of `sageserve ingest` stamps its files with one time; they were loaded by path
    CAST(row_number() OVER (ORDER BY ingested_at, path, file_id) AS INTEGER),
    path, format, adapter, bytes, rows_read, rows_loaded, rows_quarantined,
    duplicates_skipped, min_arrival, max_arrival, ingested_at, mart_refreshed
FROM ingested_files;

DROP TABLE ingested_files;

ALTER TABLE ingested_files_keyed RENAME TO ingested_files;

-- NOT NULL is set before the UPDATE: DuckDB refuses it after one in the same transaction.
-- The default 0 is no file's key (keys start at 1); the check below finds any row left at it.
ALTER TABLE requests ADD COLUMN file_key INTEGER DEFAULT 0;

ALTER TABLE requests ALTER COLUMN file_key SET NOT NULL;

ALTER TABLE requests ALTER COLUMN file_key DROP DEFAULT;

UPDATE requests SET file_key = f.file_key
FROM ingested_files AS f
WHERE f.file_id = requests.file_id;

SELECT CASE WHEN count(*) > 0 THEN error(
    'migration 0040: ' || count(*) || ' requests rows found no manifest row; nothing changed'
) END
FROM requests
WHERE file_key = 0;
