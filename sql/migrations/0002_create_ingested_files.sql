-- The ingest manifest: one row per loaded file (content hash + adapter parameters).
-- rows_read = rows_loaded + rows_quarantined + duplicates_skipped for every row.
CREATE TABLE ingested_files (
    file_id VARCHAR PRIMARY KEY,
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
