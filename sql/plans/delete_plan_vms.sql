-- Part of replacing a plan: its vms rows.
DELETE FROM plan_vms WHERE plan_id = $plan_id
