-- One plan's costs rows.
SELECT * EXCLUDE (plan_id) FROM plan_costs WHERE plan_id = $plan_id
