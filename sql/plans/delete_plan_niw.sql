-- Part of replacing a plan: its niw rows.
DELETE FROM plan_niw WHERE plan_id = $plan_id
