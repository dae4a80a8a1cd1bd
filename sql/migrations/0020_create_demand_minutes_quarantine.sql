-- Aggregate rows that failed validation or conflict with a loaded minute, with where and why.
CREATE TABLE demand_minutes_quarantine (
    file_id VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    row_number BIGINT,
    reason VARCHAR NOT NULL,
    raw VARCHAR,
    quarantined_at TIMESTAMP NOT NULL
)
