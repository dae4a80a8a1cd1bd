-- Re-planning the same hour with the same inputs replaces the plan (idempotent).
DELETE FROM plans WHERE plan_id = $plan_id
