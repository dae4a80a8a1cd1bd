-- One plan's vms rows.
SELECT * EXCLUDE (plan_id) FROM plan_vms WHERE plan_id = $plan_id
