-- Store a plan's rows of a detail table (staged frame registered as {{ staged }}).
INSERT INTO {{ table }} BY NAME SELECT * FROM {{ staged }}
