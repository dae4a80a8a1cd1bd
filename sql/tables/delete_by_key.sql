-- Replace-before-insert: the rows of {{ table }} whose {{ key }} (plan_id, origin,
-- selected_at) is $value.
DELETE FROM {{ table }} WHERE {{ key }} = $value
