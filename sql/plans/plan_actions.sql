-- One plan's actions rows.
SELECT * EXCLUDE (plan_id) FROM plan_actions WHERE plan_id = $plan_id
