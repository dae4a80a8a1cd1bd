-- Rows that failed a check, with every failed check and the raw values.
INSERT INTO requests_quarantine
SELECT $file_id, $path, _row, request_id, _reason, _raw, $now
FROM stage_bad
