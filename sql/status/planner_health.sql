-- The planner's health in one row: the newest plan, the newest ingested file and the newest
-- request (data freshness).
WITH newest_plan AS (
    SELECT plan_id, as_of, start, verified, created_at
    FROM plans
    ORDER BY created_at DESC
    LIMIT 1
),
newest_file AS (
    SELECT max(ingested_at) AS last_ingest FROM ingested_files
)
SELECT
    (SELECT plan_id FROM newest_plan) AS latest_plan,
    (SELECT as_of FROM newest_plan) AS latest_plan_as_of,
    (SELECT start FROM newest_plan) AS latest_plan_start,
    (SELECT verified FROM newest_plan) AS latest_plan_verified,
    (SELECT created_at FROM newest_plan) AS last_run,
    (SELECT count(*) FROM plans) AS plans,
    (SELECT last_ingest FROM newest_file) AS last_ingest,
    (SELECT max(arrival_time) FROM requests) AS newest_request
