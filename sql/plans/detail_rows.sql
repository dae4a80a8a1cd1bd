-- One plan's rows of a detail table ({{ table }}: plan_vms, plan_instances, … from planner.ilp.plan.PLAN_TABLES).
SELECT * EXCLUDE (plan_id) FROM {{ table }} WHERE plan_id = $plan_id
