-- The four numbers of the reconciliation, each counted from its own table. The file's loaded
-- rows are read once, by their integer file key (constant per row group: the zone maps skip
-- every other file's rows).
WITH source AS (
    {{ source }}
),
loaded AS (
    SELECT count(*) AS n, min(arrival_time) AS first, max(arrival_time) AS last
    FROM requests
    WHERE file_key = $file_key
)
SELECT
    (SELECT count(*) FROM source)
        + (SELECT count(DISTINCT line) FROM stage_rejects) AS rows_read,
    loaded.n AS rows_loaded,
    (SELECT count(*) FROM requests_quarantine WHERE file_id = $file_id) AS rows_quarantined,
    (SELECT count(*) FROM stage_dupes WHERE kind = 'duplicate') AS duplicates_skipped,
    loaded.first AS min_arrival,
    loaded.last AS max_arrival
FROM loaded
