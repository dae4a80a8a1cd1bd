-- The first few problems of a file, for the report.
SELECT row_number, reason FROM requests_quarantine
WHERE file_id = $file_id
ORDER BY row_number NULLS FIRST
LIMIT $limit
