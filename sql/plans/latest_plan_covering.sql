-- The newest verified plan made before $as_of whose hours include $hour (for the state now
-- and the warm start).
SELECT plan_id FROM plans
WHERE as_of <= $as_of AND start <= $hour AND start + hours * INTERVAL 1 HOUR > $hour
  AND verified
ORDER BY as_of DESC, created_at DESC
LIMIT 1
