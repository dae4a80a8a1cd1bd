-- A few quarantined rows of one file, for the report.
SELECT row_number, reason FROM demand_minutes_quarantine
WHERE file_id = $file_id ORDER BY row_number LIMIT $limit
