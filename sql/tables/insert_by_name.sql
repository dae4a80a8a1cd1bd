-- Store a frame's rows in {{ table }} (the frame registered as {{ staged }}; columns matched by
-- name): plans and their detail tables, forecasts, a selection's tables.
INSERT INTO {{ table }} BY NAME SELECT * FROM {{ staged }}
