-- Part of replacing a plan: its assignments rows.
DELETE FROM plan_assignments WHERE plan_id = $plan_id
