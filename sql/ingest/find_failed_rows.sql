-- Rows failing any check of the compiled pandera schema, with reasons and raw values.
-- The checked slot takes the schema compiled to SQL over the staged source (validation/sql_checks.py).
CREATE TEMP TABLE stage_bad AS
WITH stage_checked AS (
    {{ checked }}
)
SELECT _row, request_id, _reason, _raw
FROM stage_checked
WHERE _reason <> ''
