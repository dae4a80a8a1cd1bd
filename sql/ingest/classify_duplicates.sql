-- Rows that passed the checks but whose request_id is taken, either by an earlier row of this
-- batch or by a loaded request. Same values everywhere: a re-delivery ('duplicate', skipped).
-- Different values: a 'conflict' (quarantined; the row loaded first is kept).
CREATE TEMP TABLE stage_dupes AS
WITH stage_checked AS (
    {{ checked }}
),
candidates AS (
    SELECT * FROM stage_checked SEMI JOIN stage_taken USING (request_id) WHERE _reason = ''
),
ranked AS (
    SELECT c.*, row_number() OVER (PARTITION BY c.request_id ORDER BY c._row) AS occurrence
    FROM candidates AS c
),
in_batch AS (
    SELECT
        later._row,
        later.request_id,
        CASE
            WHEN row(later.arrival_time, later.region, later.model, later.tier,
                     later.input_tokens, later.output_tokens, later.tenant, later.ttft_ms,
                     later.e2e_ms)
                IS NOT DISTINCT FROM
                 row(first.arrival_time, first.region, first.model, first.tier,
                     first.input_tokens, first.output_tokens, first.tenant, first.ttft_ms,
                     first.e2e_ms)
            THEN 'duplicate' ELSE 'conflict'
        END AS kind,
        'request_id: repeats row ' || CAST(first._row AS VARCHAR) || ' of this file' AS detail
    FROM ranked AS later
    JOIN ranked AS first ON first.request_id = later.request_id AND first.occurrence = 1
    WHERE later.occurrence > 1
),
in_warehouse AS (
    SELECT
        c._row,
        c.request_id,
        CASE
            WHEN row(c.arrival_time, c.region, c.model, c.tier, c.input_tokens,
                     c.output_tokens, c.tenant, c.ttft_ms, c.e2e_ms)
                IS NOT DISTINCT FROM
                 row(w.arrival_time, w.region, w.model, w.tier, w.input_tokens,
                     w.output_tokens, w.tenant, w.ttft_ms, w.e2e_ms)
            THEN 'duplicate' ELSE 'conflict'
        END AS kind,
        'request_id: already loaded from ' || f.path AS detail
    FROM ranked AS c
    JOIN requests AS w USING (request_id)
    JOIN ingested_files AS f ON f.file_key = w.file_key
    WHERE c.occurrence = 1
)
SELECT
    d._row, d.request_id, d.kind, d.detail,
    CAST(to_json(struct_pack(
        request_id := c.request_id, arrival_time := c.arrival_time, region := c.region,
        model := c.model, tier := c.tier, input_tokens := c.input_tokens,
        output_tokens := c.output_tokens
    )) AS VARCHAR) AS raw
FROM (SELECT * FROM in_batch UNION ALL SELECT * FROM in_warehouse) AS d
JOIN candidates AS c USING (_row)
