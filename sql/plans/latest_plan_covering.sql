-- The plan in force at $hour: the newest verified plan made by $as_of for an earlier first
-- hour than the plan being made ($start) whose hours include $hour. Plans for $start itself
-- (the one a rerun replaces) are excluded: a rerun starts from the same fleet as the first run.
SELECT plan_id FROM plans
WHERE as_of <= $as_of AND start < $start
  AND start <= $hour AND start + hours * INTERVAL 1 HOUR > $hour
  AND verified
ORDER BY as_of DESC, created_at DESC
LIMIT 1
