-- One plan's assignments rows.
SELECT * EXCLUDE (plan_id) FROM plan_assignments WHERE plan_id = $plan_id
