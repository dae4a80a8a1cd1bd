-- Part of replacing a plan: its unmet rows.
DELETE FROM plan_unmet WHERE plan_id = $plan_id
