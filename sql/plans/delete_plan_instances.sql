-- Part of replacing a plan: its instances rows.
DELETE FROM plan_instances WHERE plan_id = $plan_id
