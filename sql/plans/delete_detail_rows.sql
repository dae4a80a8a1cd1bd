-- Part of replacing a plan: its rows of a detail table ({{ table }}, from PLAN_TABLES).
DELETE FROM {{ table }} WHERE plan_id = $plan_id
