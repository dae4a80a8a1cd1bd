-- The file's reconciliation (read = loaded + quarantined + duplicates) and the span it covers
-- (to the end of its last minute: the mart's coverage reads the manifest's spans).
SELECT
    count(*) AS rows_read,
    count(*) FILTER (WHERE verdict = 'load') AS rows_loaded,
    count(*) FILTER (WHERE verdict IN ('invalid', 'conflict')) AS rows_quarantined,
    count(*) FILTER (WHERE verdict = 'duplicate') AS duplicates_skipped,
    min(minute) FILTER (WHERE verdict = 'load') AS min_arrival,
    max(minute) FILTER (WHERE verdict = 'load') + INTERVAL 59999 MILLISECOND AS max_arrival
FROM agg_checked
