-- Store a selection's rows of {{ table }} (staged frame registered as {{ staged }}; columns
-- matched by name).
INSERT INTO {{ table }} BY NAME SELECT * FROM {{ staged }}
