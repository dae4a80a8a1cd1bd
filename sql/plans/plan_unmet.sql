-- One plan's unmet rows.
SELECT * EXCLUDE (plan_id) FROM plan_unmet WHERE plan_id = $plan_id
