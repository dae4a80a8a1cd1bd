-- Part of replacing a plan: its routing rows.
DELETE FROM plan_routing WHERE plan_id = $plan_id
