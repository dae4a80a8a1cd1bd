-- Rows that failed validation or conflict with a loaded request, kept with where and why.
CREATE TABLE requests_quarantine (
    file_id VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    row_number BIGINT,
    request_id VARCHAR,
    reason VARCHAR NOT NULL,
    raw VARCHAR,
    quarantined_at TIMESTAMP NOT NULL
);
