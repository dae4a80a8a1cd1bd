-- No taken ids: nothing is a duplicate.
CREATE TEMP TABLE stage_dupes (
    _row BIGINT, request_id VARCHAR, kind VARCHAR, detail VARCHAR, raw VARCHAR
)
