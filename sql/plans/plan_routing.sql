-- One plan's routing rows.
SELECT * EXCLUDE (plan_id) FROM plan_routing WHERE plan_id = $plan_id
