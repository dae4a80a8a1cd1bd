-- Part of replacing a plan: its costs rows.
DELETE FROM plan_costs WHERE plan_id = $plan_id
