-- One plan's niw rows.
SELECT * EXCLUDE (plan_id) FROM plan_niw WHERE plan_id = $plan_id
