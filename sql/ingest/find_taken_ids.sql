-- Request ids that occur more than once in the batch or are already loaded. Usually
-- empty; only these ids need the row-by-row duplicate classification. Repeats are found on the
-- 64-bit hash of the id by sorting and comparing neighbours (~25 % cheaper than grouping the
-- hashes, ~45 % cheaper than grouping the strings); hash collisions are then confirmed on the
-- strings.
-- NOT MATERIALIZED: the source is referenced three times and DuckDB would otherwise hold every
-- request id of the file in memory; re-reading the id column is cheaper (and the later scans
-- stop at once when there is nothing to join).
CREATE TEMP TABLE stage_taken AS
WITH source AS NOT MATERIALIZED (
    {{ source }}
),
repeated_hashes AS (
    SELECT DISTINCT h
    FROM (
        SELECT h, lead(h) OVER (ORDER BY h) AS next_h
        FROM (SELECT hash(request_id) AS h FROM source WHERE request_id IS NOT NULL)
    )
    WHERE h = next_h
),
repeated AS (
    SELECT request_id
    FROM source
    SEMI JOIN repeated_hashes ON hash(source.request_id) = repeated_hashes.h
    GROUP BY request_id
    HAVING count(*) > 1
)
SELECT request_id FROM repeated
UNION
SELECT request_id FROM requests SEMI JOIN source USING (request_id)
