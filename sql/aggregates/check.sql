-- Every staged aggregate row with its verdict: 'invalid' (failed checks, listed in reason),
-- 'duplicate' (same key and values as a row loaded before or earlier in this file: skipped),
-- 'conflict' (same key, other values: quarantined; the first is kept) or 'load'.
CREATE TEMP TABLE agg_checked AS
WITH typed AS (
    SELECT
        _row,
        TRY_CAST(minute AS TIMESTAMP) AS minute,
        CAST(region AS VARCHAR) AS region,
        CAST(model AS VARCHAR) AS model,
        CAST(tier AS VARCHAR) AS tier,
        TRY_CAST(requests AS BIGINT) AS requests,
        TRY_CAST(input_tokens AS BIGINT) AS input_tokens,
        TRY_CAST(output_tokens AS BIGINT) AS output_tokens,
        TRY_CAST(cv AS DOUBLE) AS cv,
        cv IS NOT NULL AND TRY_CAST(cv AS DOUBLE) IS NULL AS cv_unreadable,
        CAST(to_json(struct_pack(
            minute := CAST(minute AS VARCHAR), region := CAST(region AS VARCHAR),
            model := CAST(model AS VARCHAR), tier := CAST(tier AS VARCHAR),
            requests := CAST(requests AS VARCHAR), input_tokens := CAST(input_tokens AS VARCHAR),
            output_tokens := CAST(output_tokens AS VARCHAR), cv := CAST(cv AS VARCHAR)
        )) AS VARCHAR) AS raw
    FROM agg_raw
),
reasons AS (
    SELECT
        *,
        concat_ws('; ',
            CASE WHEN minute IS NULL THEN 'minute: missing or not a timestamp' END,
            CASE WHEN date_trunc('minute', minute) <> minute
                THEN 'minute: not the start of a minute' END,
            CASE WHEN minute < $min_time OR minute > $max_time
                THEN 'minute: outside ' || CAST($min_time AS VARCHAR) || ' .. '
                    || CAST($max_time AS VARCHAR) END,
            CASE WHEN region IS NULL OR NOT list_contains($regions, region)
                THEN 'region: unknown ' || coalesce(region, '(missing)') END,
            CASE WHEN model IS NULL OR NOT list_contains($models, model)
                THEN 'model: unknown ' || coalesce(model, '(missing)') END,
            CASE WHEN tier IS NULL OR NOT list_contains($tiers, tier)
                THEN 'tier: unknown ' || coalesce(tier, '(missing)') END,
            CASE WHEN requests IS NULL OR requests < 0
                THEN 'requests: missing, not a whole number or negative' END,
            CASE WHEN input_tokens IS NULL OR input_tokens < 0
                THEN 'input_tokens: missing, not a whole number or negative' END,
            CASE WHEN output_tokens IS NULL OR output_tokens < 0
                THEN 'output_tokens: missing, not a whole number or negative' END,
            CASE WHEN requests = 0 AND (input_tokens > 0 OR output_tokens > 0)
                THEN 'tokens without requests' END,
            CASE WHEN input_tokens > requests * $max_tokens OR output_tokens > requests * $max_tokens
                THEN 'tokens: above ' || CAST($max_tokens AS VARCHAR) || ' per request' END,
            CASE WHEN cv_unreadable OR isnan(cv) OR cv < 0 THEN 'cv: not a number ≥ 0' END
        ) AS reason
    FROM typed
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY minute, region, model, tier, reason = '' ORDER BY _row
        ) AS occurrence
    FROM reasons
),
firsts AS (
    SELECT * FROM ranked WHERE reason = '' AND occurrence = 1
)
SELECT
    r._row, r.minute, r.region, r.model, r.tier, r.requests, r.input_tokens, r.output_tokens,
    r.cv, r.raw,
    CASE
        WHEN r.reason <> '' THEN 'invalid'
        WHEN r.occurrence > 1 THEN
            CASE WHEN row(r.requests, r.input_tokens, r.output_tokens, r.cv)
                IS NOT DISTINCT FROM row(f.requests, f.input_tokens, f.output_tokens, f.cv)
            THEN 'duplicate' ELSE 'conflict' END
        WHEN w.minute IS NOT NULL THEN
            CASE WHEN row(r.requests, r.input_tokens, r.output_tokens, r.cv)
                IS NOT DISTINCT FROM row(w.requests, w.input_tokens, w.output_tokens, w.cv)
            THEN 'duplicate' ELSE 'conflict' END
        ELSE 'load'
    END AS verdict,
    CASE
        WHEN r.reason <> '' THEN r.reason
        WHEN r.occurrence > 1 THEN 'conflict: the key repeats row ' || CAST(f._row AS VARCHAR)
            || ' of this file with other values'
        ELSE 'conflict: the key was loaded before with other values (file '
            || coalesce(w.file_id, '?') || ')'
    END AS detail
FROM ranked AS r
-- equality joins only (a hash join); which rows they apply to is decided in the CASEs
LEFT JOIN firsts AS f
    ON f.minute = r.minute AND f.region = r.region AND f.model = r.model AND f.tier = r.tier
LEFT JOIN demand_minutes AS w
    ON w.minute = r.minute AND w.region = r.region AND w.model = r.model AND w.tier = r.tier
