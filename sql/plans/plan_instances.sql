-- One plan's instances rows.
SELECT * EXCLUDE (plan_id) FROM plan_instances WHERE plan_id = $plan_id
