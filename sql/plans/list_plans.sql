-- Stored plans, newest first ($limit rows).
SELECT plan_id, as_of, start, hours, status, gap, total_cost, verified, fallback, export_path,
       created_at
FROM plans
ORDER BY as_of DESC, created_at DESC
LIMIT $limit
