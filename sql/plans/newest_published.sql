-- Published plans, newest first (what `latest` must name is the first under its root).
SELECT plan_id, export_path FROM plans
WHERE verified AND export_path IS NOT NULL
ORDER BY created_at DESC
