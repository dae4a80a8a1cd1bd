-- Part of replacing a plan: its actions rows.
DELETE FROM plan_actions WHERE plan_id = $plan_id
