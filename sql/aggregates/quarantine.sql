-- Invalid and conflicting rows, with the file, the record number and every reason.
INSERT INTO demand_minutes_quarantine
SELECT $file_id, $path, _row, detail, raw, $now
FROM agg_checked
WHERE verdict IN ('invalid', 'conflict')
ORDER BY _row
