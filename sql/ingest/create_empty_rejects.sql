-- Formats without a text reader (Parquet) have no rejected lines; give them an empty table so
-- the rest of the ingest reads one shape.
CREATE TEMP TABLE stage_rejects (
    line BIGINT,
    column_name VARCHAR,
    error_type VARCHAR,
    csv_line VARCHAR,
    error_message VARCHAR
)
