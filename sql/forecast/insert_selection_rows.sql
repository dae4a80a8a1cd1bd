-- Store a selection's rows of {{ table }} (staged frame registered as {{ staged }}).
INSERT INTO {{ table }} SELECT * FROM {{ staged }}
