-- Per region, the newest document a target accepted for an hour before $start: the fleet
-- running when a plan starting at $start is made.
SELECT plan_id, hour, region, document
FROM plan_applications
WHERE hour < $start
QUALIFY row_number() OVER (PARTITION BY region ORDER BY hour DESC, applied_at DESC) = 1
ORDER BY region
