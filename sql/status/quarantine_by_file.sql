-- Quarantined rows per file and the most common reason.
SELECT path, count(*) AS rows, mode(reason) AS most_common_reason
FROM requests_quarantine
GROUP BY path
ORDER BY rows DESC
