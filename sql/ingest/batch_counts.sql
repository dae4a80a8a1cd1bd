-- The four numbers of the reconciliation, each counted from its own table.
WITH source AS (
    {{ source }}
)
SELECT
    (SELECT count(*) FROM source)
        + (SELECT count(DISTINCT line) FROM stage_rejects) AS rows_read,
    (SELECT count(*) FROM requests WHERE file_key = $file_key) AS rows_loaded,
    (SELECT count(*) FROM requests_quarantine WHERE file_id = $file_id) AS rows_quarantined,
    (SELECT count(*) FROM stage_dupes WHERE kind = 'duplicate') AS duplicates_skipped,
    (SELECT min(arrival_time) FROM requests WHERE file_key = $file_key) AS min_arrival,
    (SELECT max(arrival_time) FROM requests WHERE file_key = $file_key) AS max_arrival
