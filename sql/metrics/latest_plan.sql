-- The newest published plan (the one ops files point at): its header, every column, so
-- columns added later (e.g. the bound's source) reach the metrics without a change here.
SELECT * FROM plans
WHERE export_path IS NOT NULL
ORDER BY start DESC, created_at DESC
LIMIT 1
