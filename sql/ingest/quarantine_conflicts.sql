-- Rows whose request_id is taken by a row with different values.
INSERT INTO requests_quarantine
SELECT $file_id, $path, _row, request_id, detail, raw, $now
FROM stage_dupes
WHERE kind = 'conflict'
