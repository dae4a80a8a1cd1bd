-- Every staged row was loaded or set aside as a duplicate: no row failed a check.
CREATE TEMP TABLE stage_bad (_row BIGINT, request_id VARCHAR, _reason VARCHAR, _raw VARCHAR)
